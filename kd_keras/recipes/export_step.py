"""`--export`: the end of a recipe run exports its students for devices and measures them.

Each KD student is exported to TFLite in the modes of
`report.export_quantize` (fp32 and int8 by default; int8 is calibrated on
the recipe's own training data), and the teacher in fp32 as the reference a
device would otherwise run. Every export passes the parity check of
`kd_keras.export`, then is scored on the test split and timed under LiteRT
(batch-1 latency, throughput, peak RSS of a separate process). A failed
export is reported in its row, not fatal: the trained models are kept.
"""

from __future__ import annotations

import os

from kd_keras.benchmark import report
from kd_keras.benchmark.bench import COLUMNS, time_model
from kd_keras.export.converters import ConversionError
from kd_keras.export.exporter import export_model
from kd_keras.models.runtimes import open_runtime

SUFFIX = {"none": "fp32", "fp16": "fp16", "dynamic": "dynamic", "int8": "int8"}


def plan(rows: list[dict], quantize: list[str], teacher: bool = True) -> list[tuple[str, str]]:
    """(model name, quantisation) pairs: the teacher in fp32 (unless it is a file already), every KD student (of
    the first pair) in each mode."""
    return [("teacher", "none")] * teacher + [(r["name"], q) for r in rows if r["role"] == "kd" and
                                              r.get("pair", 1) == 1 for q in quantize]


def export_and_measure(runner, rows: list[dict]) -> list[dict]:
    """Exports, checks, scores and times; returns one row per exported file."""
    cfg, task, rep = runner.cfg, runner.task, runner.cfg.report
    out = []
    loaded = getattr(runner, "file_teacher", None)
    as_file = loaded is not None and loaded.format != "keras"  # an ONNX/TFLite/SavedModel teacher is deployed as is
    if as_file:
        runner.log(f"\n== the teacher is already a {loaded.format} file ({os.path.basename(loaded.path)}), run by its "
                   f"own runtime: not converted to TFLite; the students compare with its row in the table")
    for name, quantize in plan(rows, rep.export_quantize, teacher=not as_file):
        path = os.path.join(runner.out_dir, f"{name}.{SUFFIX[quantize]}.tflite")
        row = {"name": os.path.basename(path), "of": name, "format": "tflite", "quantize": quantize,
               "threads": rep.export_threads}
        runner.log(f"\n== exporting {name} to TFLite ({quantize})")
        try:
            info = export_model(runner.trained[name], "tflite", path, quantize, overwrite=True,
                                threads=rep.export_threads, data=(cfg, runner.splits), log=runner.log)
        except (ConversionError, ValueError) as e:
            runner.log(f"   export failed: {e}")
            out.append({**row, "error": str(e)})
            continue
        runtime = open_runtime(path, rep.export_threads)
        metrics = task.evaluate(runtime, runner.test_ds, rep)
        timing = time_model(path, runner.timing_shape, rep.export_threads, rep.export_runs,
                            batch=rep.throughput_batch)
        out.append({**row, "size_bytes": info["size_bytes"], **metrics, **timing, "parity": info["parity"],
                    "parity_samples": info["parity_samples"], "input_shape": list(runner.timing_shape)})
        runner.log(f"   {name} {quantize}: {task.metric} "
                   f"{report.format_value(metrics[task.metric], task.columns()[0][2])}, "
                   f"{timing['latency_ms_median']:.3f} ms, {info['size_bytes'] / 1e6:.3f} MB")
    return out


def comparisons(exported: list[dict], task) -> list[str]:
    """Each quantised KD student against the teacher's fp32 TFLite and its own fp32 TFLite."""
    ok = {r["name"]: r for r in exported if "error" not in r}
    teacher = ok.get("teacher.fp32.tflite")
    lines = []
    for r in ok.values():
        if r["of"] == "teacher":
            continue
        parts = []
        if teacher:
            parts.append(f"{teacher['latency_ms_median'] / r['latency_ms_median']:.1f}x faster and "
                         f"{teacher['size_bytes'] / r['size_bytes']:.1f}x smaller than teacher.fp32.tflite")
        own = ok.get(f"{r['of']}.fp32.tflite")
        if own and own is not r:
            parts.append(f"{task.format_delta(r[task.metric] - own[task.metric])} against its fp32 TFLite")
        if parts:
            lines.append(f"- {r['name']}: " + "; ".join(parts) + ".")
    return lines


def markdown(exported: list[dict], task) -> list[str]:
    """The exported-models section of results.md."""
    if not exported:
        return []
    columns = [("file", "name", "str"), ("of", "of", "str"), ("quantize", "quantize", "str"), *task.columns(),
               *COLUMNS]
    good = [r for r in exported if "error" not in r]
    threads = exported[0]["threads"]
    lines = ["", f"## Exported (TFLite under LiteRT, XNNPACK, {threads} threads)", "", report.table(good, columns), ""]
    lines += comparisons(exported, task)
    lines += [f"- {r['name']}: export failed: {r['error']}" for r in exported if "error" in r]
    if good:
        which = "Every file in the table" if len(good) < len(exported) else "Every export"
        lines += ["", f"{which} passed its parity check against the Keras model on "
                      f"{good[0]['parity_samples']} test samples (see `parity` in results.json). Latency: batch 1, "
                      f"median and p90 of {good[0]['latency_runs']} runs in a separate process holding only "
                      f"LiteRT, whose peak RSS is shown."]
    return lines
