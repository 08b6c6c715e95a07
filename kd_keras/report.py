"""Measurements that compare teacher, baseline and KD students side by side."""

from __future__ import annotations

import json
import os
import statistics
import time

import numpy as np
import tensorflow as tf


def _forward(model):
    return tf.function(lambda x: model(x, training=False), reduce_retracing=True)


def latency_ms(model, input_shape, runs: int = 30, warmup: int = 5) -> float:
    """Median wall time of one batch-1 forward pass, in milliseconds.

    Keras CPU inference through a traced `tf.function` (the graph a served
    Keras model runs), after `warmup` untimed runs.
    """
    if runs < 20:
        raise ValueError(f"latency runs must be >= 20 for a stable median, got {runs}.")
    fn = _forward(model)
    x = tf.constant(np.random.default_rng(0).uniform(0, 255, (1, *input_shape)).astype("float32"))
    for _ in range(warmup):
        fn(x).numpy()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn(x).numpy()
        times.append(time.perf_counter() - t0)
    return 1000.0 * statistics.median(times)


def throughput(model, input_shape, batch: int = 64, runs: int = 5) -> float:
    """Images per second at the given batch size (best of `runs` timed batches)."""
    fn = _forward(model)
    x = tf.constant(np.random.default_rng(0).uniform(0, 255, (batch, *input_shape)).astype("float32"))
    fn(x).numpy()
    best = min(_timed(fn, x) for _ in range(runs))
    return batch / best


def _timed(fn, x) -> float:
    t0 = time.perf_counter()
    fn(x).numpy()
    return time.perf_counter() - t0


def write_json_atomic(path: str, data) -> None:
    tmp = f"{path}.partial"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, default=_jsonable)
        f.write("\n")
    os.replace(tmp, path)


def write_text_atomic(path: str, text: str) -> None:
    tmp = f"{path}.partial"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _jsonable(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"cannot serialise {type(o).__name__}")


def markdown_table(rows: list[dict], metric: str) -> str:
    """The side-by-side table printed at the end of a recipe."""
    header = ["model", "role", "arch", "params", "size (MB)", metric, "latency b1 (ms)",
              "throughput (img/s)", "train (s)", "KD"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        kd = r.get("kd") or {}
        kd_text = "; ".join(
            f"{l['method']}x{l['weight']:g}" + "".join(f" {k}={v}" for k, v in l.get("options", {}).items())
            for l in kd.get("losses", [])
        )
        if kd:
            kd_text += f"; CE weight {kd['student_loss_weight']:g}"
        lines.append("| " + " | ".join([
            r["name"], r["role"], r["arch"], f"{r['params']:,}", f"{r['size_bytes'] / 1e6:.2f}",
            f"{100 * r[metric]:.2f}%", f"{r['latency_ms_b1']:.2f}", f"{r['throughput']:.0f}",
            "loaded" if r["train_seconds"] is None else f"{r['train_seconds']:.1f}", kd_text or "-",
        ]) + " |")
    return "\n".join(lines)
