"""Measures model files side by side: size, task metric, latency, throughput, memory.

For each model (`.keras`, `.tflite`, `.onnx`, SavedModel folder):
- file size;
- the task metric on the test split of a DATASPEC (in this process);
- batch-1 latency (median and p90 over `runs` calls, after warm-up) and
  batch-N throughput, timed in a separate process (`worker.py`) that holds
  only the model's runtime, which also reports that process's peak RSS.

Models are timed one after another with the same thread count, which every
figure states.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys

from kd_keras.benchmark import report
from kd_keras.config import dataspec
from kd_keras.models.runtimes import file_size, infer_task, model_format, open_runtime, sr_scale
from kd_keras.teachers.infer import infer_layout

RESULT_FILES = ("results.json", "results.md", "results.png")
WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "worker.py")


def model_name(path: str) -> str:
    return os.path.basename(os.path.normpath(path))


def time_model(path: str, input_shape, threads: int = 2, runs: int = 50, warmup: int = 10, batch: int = 32,
               batch_runs: int = 5, providers=None, xnnpack: bool = True) -> dict:
    """Latency, throughput and peak RSS of one model, measured in a fresh process.

    `providers`: ONNX Runtime execution providers for `.onnx` models;
    `xnnpack`: LiteRT's XNNPACK delegate for `.tflite` models.
    """
    if runs < 50:
        raise ValueError(f"--runs must be >= 50 for a stable median and p90, got {runs}.")
    request = {"path": os.path.abspath(path), "input_shape": [int(d) for d in input_shape], "threads": threads,
               "runs": runs, "warmup": warmup, "batch": batch, "batch_runs": batch_runs,
               "providers": list(providers or []), "xnnpack": xnnpack,
               "custom_objects": [os.path.abspath(m) if str(m).endswith(".py") else m
                                  for m in os.environ.get("KD_KERAS_CUSTOM_OBJECTS", "").split(os.pathsep) if m]}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, WORKER, json.dumps(request)], capture_output=True, text=True, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ValueError(f"timing {path!r} failed in its worker process: {tail[:200]}.")
    return json.loads(lines[-1])


def timing_shape(runtime, task, image_size: int = 0) -> tuple:
    """One input image's shape: the model's own, or `image_size` square for size-free dense models."""
    shape = runtime.input_shape
    if all(d is not None for d in shape):
        return tuple(shape)
    side = image_size or task.default_timing_size
    return (side, side, shape[-1] or 3)


def benchmark(paths: list[str], data: str, out_dir: str, threads: int = 2, runs: int = 50, warmup: int = 10,
              batch: int = 32, image_size: int = 0, overrides=(), overwrite: bool = False, command: str = "",
              providers=None, xnnpack: bool = True, log=print) -> dict:
    """Benchmarks model files on one DATASPEC; writes results.json, results.md and results.png.

    Args:
        paths: model files; all of one task.
        data: DATASPEC for the metric (its test split).
        out_dir: where results go; refused if it holds results, unless `overwrite`.
        threads: runtime threads, for the metric and the timing.
        runs: timed batch-1 calls per model (>= 50).
        warmup: untimed calls first.
        batch: batch size of the throughput measurement.
        image_size: dense tasks: side of the timing input (0: the task default).
        overrides: `key=value` overrides of the data spec's config.
        providers: ONNX Runtime execution providers for `.onnx` models
            (default CPU; e.g. CUDAExecutionProvider with onnxruntime-gpu).
        xnnpack: run `.tflite` models with LiteRT's XNNPACK delegate (its
            default); False times the built-in reference kernels.
    """
    if runs < 50:
        raise ValueError(f"--runs must be >= 50 for a stable median and p90, got {runs}.")
    from kd_keras.cli.lock import check_out_dir

    # a file, an unwritable place, a user's files, or earlier results: refused before measuring
    manifest = check_out_dir(out_dir, overwrite, {f"model {i + 1}": p for i, p in enumerate(paths)})
    if not paths:
        raise ValueError("no model given; pass one or more .keras, .tflite or .onnx files.")
    from kd_keras.tasks import TASKS

    runtimes = {}
    for p in paths:
        if not os.path.exists(p):
            raise FileNotFoundError(f"model {p!r} does not exist; check the path.")
        model_format(p)
    for p in paths:
        fmt = model_format(p)
        options = {"providers": providers} if providers and fmt == "onnx" else {}
        if fmt == "tflite":
            options["xnnpack"] = xnnpack
        runtimes[p] = open_runtime(p, threads, **options)
    tasks = {p: infer_task(r) for p, r in runtimes.items()}
    if len(set(tasks.values())) > 1:
        raise ValueError(f"models of different tasks cannot share a benchmark: {tasks}.")
    task = TASKS[next(iter(tasks.values()))]()
    if task.missing_extra():  # the benchmark scores the models: say so before loading any data
        raise ValueError(task.missing_extra())
    first = next(iter(runtimes.values()))
    scale = sr_scale(first) if task.name == "super_resolution" else None
    cfg, splits = dataspec.load(data, task, scale, overrides)
    scorers, adapted = {}, {}
    for p, runtime in runtimes.items():  # every model against the data before any is scored or timed
        why = misfit(runtime, splits, task)
        if why and task.name == "classification" and runtime.format != "keras" and \
                len(runtime.input_shape) == 3 and infer_layout(runtime.input_shape)[0] == "nchw":
            # a PyTorch-style file: scored through the adapter a teacher file gets (layout, size, value range)
            from kd_keras.teachers.files import open_file_teacher

            scorers[p], notes, adapted[p] = open_file_teacher(
                p, splits.input_shape, {}, task.sample_labelled(splits), list(splits.class_names or ()), threads,
                classes=splits.num_classes)
            for note in notes:
                log(f"   {model_name(p)}: {note}")
            continue
        if why:
            raise ValueError(f"model {p!r} {why}; benchmark a model on data of the shape and classes it was trained "
                             f"on (--data), and models of one input shape together.")
    _, _, test = task.pipelines(splits, cfg.data, cfg.train.seed)
    rows = []
    for p, runtime in runtimes.items():
        log(f"== {model_name(p)}: {task.metric} on {splits.num_test} test images of {splits.description}")
        metrics = task.evaluate(scorers.get(p, runtime), test, cfg.report)
        shape = timing_shape(runtime, task, image_size or cfg.report.image_size)
        log(f"   timing in a separate process: {runs} batch-1 runs on {'x'.join(map(str, shape))}, {threads} threads")
        timing = time_model(p, shape, threads, runs, warmup, batch, providers=providers, xnnpack=xnnpack)
        rows.append({"name": model_name(p), "file": os.path.abspath(p), "format": runtime.format,
                     "size_bytes": file_size(p), **metrics, **timing, "threads": threads,
                     "input_shape": list(shape), **({"adapter": adapted[p]} if p in adapted else {})})
        log(f"   {task.metric} {report.format_value(metrics[task.metric], task.columns()[0][2])}, "
            f"latency {timing['latency_ms_median']:.3f} ms (p90 {timing['latency_ms_p90']:.3f}), "
            f"{timing['throughput']:.0f} img/s, peak RSS {timing['peak_rss_mb']:.0f} MB")
    results = {"task": task.name, "metric": task.metric, "command": command, "threads": threads,
               "data": {"spec": data, "description": splits.description, "synthetic": splits.synthetic,
                        "num_test": splits.num_test},
               "models": rows, "environment": environment()}
    if overwrite:
        manifest.remove_owned()  # exactly an earlier run's files (kd_keras.cli.manifest)
    manifest.claim(RESULT_FILES)
    write(results, out_dir, task)
    log(f"\nresults in {os.path.abspath(out_dir)}")
    return results


def misfit(runtime, splits, task) -> str:
    """Why `runtime` cannot be scored on `splits` ("" if it can): another input shape, channels or class count."""
    want, got = tuple(runtime.input_shape), tuple(splits.input_shape)
    show = lambda shape: "x".join("?" if d is None else str(d) for d in shape)  # noqa: E731
    if task.name == "classification":
        if len(want) != len(got) or any(w is not None and g is not None and w != g for w, g in zip(want, got)):
            return f"takes {show(want)} inputs, but {splits.description} gives {show(got)} images"
        if splits.num_classes and runtime.output_channels != splits.num_classes:
            return f"has {runtime.output_channels} classes, but {splits.description} has {splits.num_classes}"
    elif want and got and want[-1] is not None and got[-1] is not None and want[-1] != got[-1]:
        return f"takes {want[-1]}-channel inputs, but {splits.description} gives {got[-1]}-channel images"
    return ""


def environment() -> dict:
    import numpy as np

    env = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "python": platform.python_version(),
           "cpus": os.cpu_count(), "machine": platform.machine(), "numpy": np.__version__}
    for module in ("tensorflow", "keras", "ai_edge_litert", "onnxruntime"):
        try:
            from importlib.metadata import version

            env[module] = version(module.replace("_", "-"))
        except Exception:  # not installed
            pass
    return env


COLUMNS = [("size", "size_bytes", "mb"), ("latency median (ms)", "latency_ms_median", "f3"),
           ("latency p90 (ms)", "latency_ms_p90", "f3"), ("throughput (img/s)", "throughput", "int"),
           ("peak RSS (MB)", "peak_rss_mb", "int")]


def markdown(results: dict, task) -> str:
    rows = results["models"]
    columns = [("model", "name", "str"), ("format", "format", "str"), *task.columns(), *COLUMNS]
    b = rows[0]["throughput_batch"] if rows else 0
    lines = [f"# Benchmark: {task.name}", ""]
    if results["command"]:
        lines += [f"Command: `{results['command']}`", ""]
    d = results["data"]
    lines += [f"Data: {d['description']}{' (SYNTHETIC)' if d['synthetic'] else ''}, {d['num_test']} test images.",
              "", report.table(rows, columns), "",
              f"Latency: batch 1, median and 90th percentile of {rows[0]['latency_runs'] if rows else 0} runs after "
              f"warm-up; throughput: batch {b}; {results['threads']} threads; each model timed in its own process, "
              f"whose peak RSS is shown (the runtime alone, before loading the model: "
              + ", ".join(f"{r['name']} {r['idle_rss_mb']:.0f} MB" for r in rows) + ").",
              "Engines: " + "; ".join(sorted({r["engine"] for r in rows})) + ".",
              f"Machine: {results['environment']['cpus']} CPUs, {results['environment']['machine']}."]
    return "\n".join(lines) + "\n"


def write(results: dict, out_dir: str, task) -> None:
    from kd_keras.benchmark.plot import bubble_plot

    os.makedirs(out_dir, exist_ok=True)
    report.write_json_atomic(os.path.join(out_dir, "results.json"), results)
    report.write_text_atomic(os.path.join(out_dir, "results.md"), markdown(results, task))
    bubble_plot(results["models"], task.metric, os.path.join(out_dir, "results.png"),
                title=f"{task.name}: {results['data']['description'][:60]}, {results['threads']} threads")
