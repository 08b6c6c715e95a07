"""results.png of a recipe run: each model's metric against latency and size, paired runs, and training curves."""

from __future__ import annotations

import csv
import math
import os

from kd_keras.benchmark.plot import draw_bubbles, pyplot, save_figure


def results_png(rows: list[dict], metric: str, label: str, out_dir: str, title: str, summaries: dict | None = None,
                delta=None) -> str:
    """Writes `<out_dir>/results.png` (atomically) and returns its path.

    Left: test `metric` against Keras batch-1 latency, bubble area = file
    size, for the teacher, the baseline, every KD student (and references).
    Middle, with paired runs (`summaries` of more than one pair): each
    pair's baseline and KD students side by side, the teacher as a line.
    Right: each trained model's validation curve per epoch from
    `<out_dir>/logs/<name>.csv` (the validation metric, else the loss), of
    the first pair.
    """
    plt = pyplot()
    paired = {e: s for e, s in (summaries or {}).items() if s["pairs"] > 1}
    fig, axes = plt.subplots(1, 3 if paired else 2, figsize=(16 if paired else 11, 4.5), dpi=110)
    left, right = axes[0], axes[-1]
    first = [r for r in rows if r.get("pair", 1) == 1]
    draw_bubbles(left, first, metric, "latency_ms_b1", f"test {label} vs latency (area: file size)")
    if paired:
        _pair_bars(axes[1], paired, metric, label, delta)
    shown = None
    for r in first:
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


def _pair_bars(ax, summaries: dict, metric: str, label: str, delta) -> None:
    """Bars per pair: the baseline, then each KD entry, labelled with its difference; the teacher as a line."""
    scale = 100 if metric == "accuracy" else 1
    first = next(iter(summaries.values()))
    pairs = [p["pair"] for p in first["per_pair"]]
    width = 0.8 / (1 + len(summaries))
    ax.bar([p - 0.4 + width / 2 for p in pairs], [scale * p["baseline"] for p in first["per_pair"]], width,
           label="baseline", color="0.6")
    for i, (entry, s) in enumerate(summaries.items(), start=1):
        xs = [p["pair"] - 0.4 + width * (i + 0.5) for p in s["per_pair"]]
        bars = ax.bar(xs, [scale * p["kd"] for p in s["per_pair"]], width, label=entry)
        for bar, p in zip(bars, s["per_pair"]):
            ax.annotate(delta(p["kd_minus_baseline"]) if delta else f"{p['kd_minus_baseline']:+.3g}",
                        (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=7)
    ax.axhline(scale * first["teacher"], color="k", linestyle="--", linewidth=1, label="teacher")
    values = [scale * v for s in summaries.values() for p in s["per_pair"] for v in (p["baseline"], p["kd"])]
    low, high = min(values + [scale * first["teacher"]]), max(values + [scale * first["teacher"]])
    pad = max(0.5, 0.25 * (high - low))
    ax.set_ylim(low - pad, high + pad)
    ax.set_xticks(pairs, [f"pair {p}" for p in pairs])
    ax.set_ylabel(f"test {label}" + (" (%)" if metric == "accuracy" else ""))
    parts = [f"{s['entry']} {delta(s['kd_minus_baseline']) if delta else s['kd_minus_baseline']} "
             f"({s['wins']}/{s['pairs']})" for s in summaries.values()]
    head = "vs baseline, mean (wins): " if len(parts) > 1 else ""
    title = head + "; ".join(parts) if len(parts) > 1 else (
        f"{first['entry']} - baseline: {delta(first['kd_minus_baseline']) if delta else first['kd_minus_baseline']} "
        f"mean, {first['wins']} wins of {first['pairs']}")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(True, axis="y", alpha=0.3)
