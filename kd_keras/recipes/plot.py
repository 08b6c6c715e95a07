"""results.png of a recipe run: each model's metric against latency and size, and its training curves."""

from __future__ import annotations

import csv
import math
import os

from kd_keras.benchmark.plot import _pyplot, draw_bubbles, save_figure


def results_png(rows: list[dict], metric: str, label: str, out_dir: str, title: str) -> str:
    """Writes `<out_dir>/results.png` (atomically) and returns its path.

    Left: test `metric` against Keras batch-1 latency, bubble area = file
    size, for the teacher, the baseline, every KD student (and references).
    Right: each trained model's validation curve per epoch from
    `<out_dir>/logs/<name>.csv` (the validation metric, else the loss).
    """
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5), dpi=110)
    draw_bubbles(left, rows, metric, "latency_ms_b1", f"test {label} vs latency (area: file size)")
    shown = None
    for r in rows:
        curve = _curve(os.path.join(out_dir, "logs", f"{r['name']}.csv"), metric)
        if curve is None:
            continue
        key, values = curve
        shown = shown or key
        right.plot(range(1, len(values) + 1), [100 * v if metric == "accuracy" else v for v in values],
                   marker="o", markersize=3, label=r["name"])
    if shown:
        right.set_xlabel("epoch")
        right.set_ylabel(shown + (" (%)" if metric == "accuracy" and "loss" not in shown else ""))
        right.legend(fontsize=7)
        right.grid(True, alpha=0.3)
        right.set_title("training curves (validation split)", fontsize=9)
    else:
        right.axis("off")
    fig.suptitle(title, fontsize=10)
    path = os.path.join(out_dir, "results.png")
    save_figure(plt, fig, path)
    return path


def _curve(path: str, metric: str):
    """(column, values) of a Keras CSVLogger file: `val_<metric>`, else `val_loss`, else `loss`; None if absent."""
    if not os.path.isfile(path):
        return None
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for key in (f"val_{metric}", "val_loss", "loss"):
        values = [float(r[key]) for r in rows if r.get(key) not in (None, "")]
        if values and all(math.isfinite(v) for v in values):
            return key, values
    return None
