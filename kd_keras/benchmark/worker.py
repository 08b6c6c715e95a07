"""Times one model in a process of its own and reports its peak memory.

Run as a script (`python kd_keras/benchmark/worker.py REQUEST_JSON`), not
as a module of the package: importing `kd_keras` would import TensorFlow,
and a LiteRT or ONNX Runtime model must be measured in a process that holds
only its runtime, as on a device. It loads `kd_keras/models/runtimes.py` by path,
opens the model, runs warm-up calls, then `runs` timed batch-1 calls and a
few batch-N calls, and prints one JSON line:
latency (median, p90, mean, min; ms), throughput (images/s) and RSS (MB):
`idle_rss_mb` after importing the runtime, `peak_rss_mb` (high-water mark) at the end.
"""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import sys
import time

import numpy as np


def _status_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process from /proc, in MB.

    Not `getrusage`: Linux keeps `ru_maxrss` across execve, so a child
    started by a big parent would report the parent's peak.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _runtimes():
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models", "runtimes.py")
    spec = importlib.util.spec_from_file_location("kd_keras_runtimes", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _time(fn, x) -> float:
    t0 = time.perf_counter()
    fn(x)
    return time.perf_counter() - t0


def measure(request: dict) -> dict:
    runtimes = _runtimes()
    fmt = runtimes.model_format(request["path"])
    if fmt == "tflite":
        import ai_edge_litert.interpreter  # noqa: F401
    elif fmt == "onnx":
        import onnxruntime  # noqa: F401
    else:
        import kd_keras.models  # noqa: F401  (TensorFlow, Keras and the custom layers: kd_keras/__init__ runs too)
        from kd_keras.models.files import import_custom_objects

        import_custom_objects(request.get("custom_objects") or [])  # the user's --custom-objects
    idle = _status_mb("VmRSS")
    options = {"providers": request["providers"]} if fmt == "onnx" and request.get("providers") else {}
    if fmt == "tflite":
        options["xnnpack"] = request.get("xnnpack", True)
    runtime = runtimes.open_runtime(request["path"], request["threads"], **options)
    rng = np.random.default_rng(0)
    shape = tuple(request["input_shape"])
    one = rng.uniform(0, 255, (1, *shape)).astype(np.float32)
    many = rng.uniform(0, 255, (request["batch"], *shape)).astype(np.float32)
    for _ in range(request["warmup"]):
        runtime(one)
    lat = sorted(_time(runtime, one) * 1000 for _ in range(request["runs"]))
    runtime(many)
    batch_times = [_time(runtime, many) for _ in range(request["batch_runs"])]
    return {
        "latency_ms_median": statistics.median(lat), "latency_ms_p90": lat[int(0.9 * (len(lat) - 1))],
        "latency_ms_mean": statistics.fmean(lat), "latency_ms_min": lat[0], "latency_runs": len(lat),
        "throughput": request["batch"] / statistics.median(batch_times), "throughput_batch": request["batch"],
        "idle_rss_mb": idle, "peak_rss_mb": _status_mb("VmHWM"),
        "engine": runtime.engine,
    }


if __name__ == "__main__":
    print(json.dumps(measure(json.loads(sys.argv[1]))))
