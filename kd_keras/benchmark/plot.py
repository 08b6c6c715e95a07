"""The benchmark plot: task metric against latency, bubble area proportional to file size."""

from __future__ import annotations

import math
import os


def bubble_plot(rows: list[dict], metric: str, path: str, title: str = "") -> None:
    """Writes a PNG (atomically): x = batch-1 latency (ms, log scale), y = `metric`, area = file size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    biggest = max(r["size_bytes"] for r in rows) or 1
    for r in rows:
        y = r[metric]
        y = 100 * y if metric == "accuracy" else y
        if not math.isfinite(y):
            continue
        area = 60 + 1500 * r["size_bytes"] / biggest
        ax.scatter(r["latency_ms_median"], y, s=area, alpha=0.45, edgecolors="k")
        ax.annotate(f"{r['name']}\n{r['size_bytes'] / 1e6:.2f} MB", (r["latency_ms_median"], y),
                    textcoords="offset points", xytext=(8, 6), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("latency, batch 1, median (ms, log scale)")
    ax.set_ylabel(f"{metric} (%)" if metric == "accuracy" else metric)
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.margins(0.15)
    fig.tight_layout()
    tmp = path[: -len(".png")] + ".partial.png"
    fig.savefig(tmp, format="png")
    plt.close(fig)
    os.replace(tmp, path)
