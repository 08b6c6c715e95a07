"""The benchmark plot: task metric against latency, bubble area proportional to file size."""

from __future__ import annotations

import math
import os


def bubble_plot(rows: list[dict], metric: str, path: str, title: str = "") -> None:
    """Writes a PNG (atomically): x = batch-1 latency (ms, log scale), y = `metric`, area = file size."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    draw_bubbles(ax, rows, metric, "latency_ms_median", title)
    save_figure(plt, fig, path)


def draw_bubbles(ax, rows: list[dict], metric: str, latency_key: str, title: str = "") -> None:
    """Each row as a bubble: x = its `latency_key` (ms, log scale), y = `metric`, area = file size."""
    biggest = max(r["size_bytes"] for r in rows) or 1
    for r in rows:
        y = r.get(metric)
        if y is None or r.get(latency_key) is None:
            continue
        y = 100 * y if metric == "accuracy" else y
        if not math.isfinite(y):
            continue
        area = 60 + 1500 * r["size_bytes"] / biggest
        ax.scatter(r[latency_key], y, s=area, alpha=0.45, edgecolors="k")
        ax.annotate(f"{r['name']}\n{r['size_bytes'] / 1e6:.2f} MB", (r[latency_key], y),
                    textcoords="offset points", xytext=(8, 6), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("latency, batch 1, median (ms, log scale)")
    ax.set_ylabel(f"{metric} (%)" if metric == "accuracy" else metric)
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.margins(0.15)


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(plt, fig, path: str) -> None:
    """Saves a figure as PNG atomically (a temporary file, then a rename) and closes it."""
    fig.tight_layout()
    tmp = path[: -len(".png")] + ".partial.png"
    fig.savefig(tmp, format="png")
    plt.close(fig)
    os.replace(tmp, path)
