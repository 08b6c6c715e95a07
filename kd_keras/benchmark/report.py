"""Measurements that compare teacher, baseline and KD students side by side."""

from __future__ import annotations

import json
import math
import os
import statistics
import time

import numpy as np
import tensorflow as tf


def _forward(model):
    return tf.function(lambda x: model(x, training=False), reduce_retracing=True)


def _input(input_shape, batch):
    return tf.constant(np.random.default_rng(0).uniform(0, 255, (batch, *input_shape)).astype("float32"))


def _timed(fn, x) -> float:
    t0 = time.perf_counter()
    fn(x).numpy()
    return time.perf_counter() - t0


def measure_speed(models: dict, input_shape, runs: int = 30, batch: int = 64, rounds: int = 3,
                  warmup: int = 10) -> dict:
    """Batch-1 latency and batch-N throughput of several models, measured alike.

    Keras CPU inference through a traced `tf.function` (the graph a served
    Keras model runs). The models are timed in interleaved rounds, so a
    slow phase of the machine hits all of them rather than one; per model,
    latency is the median over all `rounds * runs` batch-1 calls, in ms,
    and throughput is images/s of the fastest batch of `batch` images.
    Call it after training, when no input pipeline runs in the background.

    Args:
        models: name -> keras.Model.
        input_shape: one raw input image's shape.
        runs: timed batch-1 calls per model and round (>= 20).
        batch: batch size of the throughput measurement.
        rounds: interleaved rounds.
        warmup: untimed calls per model before timing.

    Returns:
        name -> {"latency_ms_b1": float, "throughput": float}.
    """
    if runs < 20:
        raise ValueError(f"latency runs must be >= 20 for a stable median, got {runs}.")
    one, many = _input(input_shape, 1), _input(input_shape, batch)
    fns = {name: _forward(m) for name, m in models.items()}
    for fn in fns.values():
        fn(many).numpy()
        for _ in range(warmup):
            fn(one).numpy()
    lat = {name: [] for name in fns}
    best = {name: float("inf") for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            lat[name] += [_timed(fn, one) for _ in range(runs)]
            best[name] = min(best[name], min(_timed(fn, many) for _ in range(3)))
    return {name: {"latency_ms_b1": 1000.0 * statistics.median(lat[name]), "throughput": batch / best[name]}
            for name in fns}


def write_json_atomic(path: str, data) -> None:
    tmp = f"{path}.partial"
    with open(tmp, "w") as f:
        json.dump(_finite(data), f, indent=2, default=_jsonable)
        f.write("\n")
    os.replace(tmp, path)


def write_text_atomic(path: str, text: str) -> None:
    tmp = f"{path}.partial"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _finite(o):
    """Writes inf/nan (e.g. the PSNR of identical images) as strings: valid JSON."""
    if isinstance(o, float) and not math.isfinite(o):
        return str(o)
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    return o


def _jsonable(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"cannot serialise {type(o).__name__}")


def format_value(value, fmt: str) -> str:
    """Formats a value: "pct" (0.912 -> 91.20%), "f2"/"f3"/"f4" (decimals), "int" (1,234),
    "mb" (bytes -> 0.46 MB), "str"."""
    if value is None:
        return "-"
    if fmt == "str":
        return str(value)
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    if fmt == "pct":
        return f"{100 * value:.2f}%"
    if fmt == "int":
        return f"{value:,.0f}"
    if fmt == "mb":
        return f"{value / 1e6:.3f} MB"
    return f"{value:.{int(fmt[1:])}f}"


def table(rows: list[dict], columns) -> str:
    """A markdown table: one row per dict, `columns` = `(header, key, format)`."""
    lines = ["| " + " | ".join(c[0] for c in columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(format_value(r.get(key), fmt) for _, key, fmt in columns) + " |")
    return "\n".join(lines)


def markdown_table(rows: list[dict], columns) -> str:
    """The side-by-side table printed at the end of a recipe.

    Args:
        rows: one dict per model.
        columns: metric columns, `(header, row key, format)` (see `format_value`).
    """
    header = ["model", "role", "arch", "params", "size (MB)", *[c[0] for c in columns], "latency b1 (ms)",
              "throughput (img/s)", "train (s)", "KD"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        kd = r.get("kd") or {}
        kd_text = "; ".join(
            f"{l['method']}x{l['weight']:g}" + "".join(f" {k}={v}" for k, v in l.get("options", {}).items())
            for l in kd.get("losses", [])
        )
        if kd:
            kd_text += f"; label-loss weight {kd['student_loss_weight']:g}"
        if kd.get("transfer_images"):
            kd_text += f"; +{kd['transfer_images']} transfer images"
        if kd.get("teacher_scales") or kd.get("teacher_flip"):
            tta = (kd.get("teacher_cache") or {}).get("tta") or "multi-scale"
            kd_text += f"; teacher maps over {tta}"
        lines.append("| " + " | ".join([
            r["name"], r["role"], r["arch"], format_value(r["params"], "int"), f"{r['size_bytes'] / 1e6:.2f}",
            *[format_value(r.get(key), fmt) for _, key, fmt in columns], format_value(r.get("latency_ms_b1"), "f2"),
            format_value(r.get("throughput"), "f0"), _trained(r), kd_text or "-",
        ]) + " |")
    return "\n".join(lines)


def _trained(row) -> str:
    if row["train_seconds"] is not None:
        return f"{row['train_seconds']:.1f}"
    return "-" if row["role"] == "reference" else "loaded"


def model_notes(rows: list[dict], metric: str, format_delta) -> list[str]:
    """The lines under the results table: where the teacher came from, and each KD student's gain and budget.

    A KD student whose optimizer steps differ from the baseline's by more than 5% (a transfer set adds its
    images to every epoch; an entry's own `epochs`) is flagged with both counts: part of its gain can be the
    longer training.
    """
    bases = {r.get("pair", 1): r for r in rows if r["role"] == "baseline"}  # each KD student's own pair
    lines = []
    teacher = next((r for r in rows if r["role"] == "teacher"), None)
    larger = sorted({r["arch"]: r for r in rows if r["role"] in ("baseline", "kd") and teacher and teacher.get("params")
                     and (r.get("params") or 0) > teacher["params"]}.values(), key=lambda r: r["name"])
    for r in larger:
        lines.append(f"- note: the student {r['arch']} ({r['params']:,} parameters) is {r['params'] / teacher['params']:.1f}x "
                     f"larger than its teacher ({teacher['params']:,}): distillation here compresses nothing; a "
                     f"student smaller than the teacher is the usual aim.")
    for r in rows:
        kd = r.get("kd") or {}
        base = bases.get(r.get("pair", 1)) or next(iter(bases.values()))
        if r["role"] == "teacher" and r.get("source", "").startswith("loaded from"):
            lines.append(f"- teacher {r['arch']}: {r['source']}.")
        if r["role"] != "kd":
            continue
        if kd.get("own_student"):
            lines.append(f"- {r['name']}: a different student ({r['arch']}) than the baseline's, so no KD gain "
                         f"is computed; compare it with the teacher.")
        else:
            g = r["gap_recovered"]
            lines.append(f"- {r['name']}: {format_delta(r[metric] - base[metric])} vs baseline; " + (
                f"recovers {100 * g:.1f}% of the teacher-baseline gap." if g is not None
                else "the baseline is not below the teacher, so there is no gap to recover."))
        if kd.get("teacher_outputs"):
            lines.append(f"  {kd['teacher_outputs'][0].upper()}{kd['teacher_outputs'][1:]}.")
        if kd.get("transfer_images"):
            same = (f", within the baseline's {base['steps']:,} optimizer steps" if r.get("steps") and
                    r.get("steps") == base.get("steps") else "")
            lines.append(f"  It also trained on {kd['transfer_images']:,} unlabelled transfer images "
                         f"({', '.join(kd['transfer'])}), labelled by the teacher alone{same}.")
        steps, base_steps = r.get("steps"), base.get("steps")
        if steps and base_steps and abs(steps - base_steps) > 0.05 * base_steps:  # whole epochs rarely match exactly
            lines.append(f"  It trained {steps:,} optimizer steps, the baseline {base_steps:,}: part of the "
                         f"difference can be the {'longer' if steps > base_steps else 'shorter'} training. For "
                         f"equal budgets set the baseline's train.epochs and this entry's own epochs to match.")
    return lines
