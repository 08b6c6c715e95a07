"""`export_model`: convert a trained Keras model, check parity on real data, then write it.

The exported file appears only once it is converted and its parity check
passed: conversion writes a `.partial` file next to the output, which is
renamed at the end or removed on any failure. An existing output is kept
unless `overwrite`.
"""

from __future__ import annotations

import os
import shutil

from kd_keras.cli.errors import check_new_output
from kd_keras.config import dataspec
from kd_keras.export import converters, parity
from kd_keras.export.converters import IO_TYPES, QUANTIZE, SUPPORTED, ConversionError
from kd_keras.models.runtimes import RUNTIMES, KerasRuntime, file_size, infer_task, sr_scale
from kd_keras.training.precision import as_float32, is_float32

FORMATS = tuple(SUPPORTED)
EXTENSIONS = {"tflite": ".tflite", "onnx": ".onnx"}
DEFAULT_DATA = {"classification": "digits", "edge_detection": "shapes", "super_resolution": "skimage"}


def check_request(fmt: str, quantize: str, calibration: str | None, out: str, overwrite: bool,
                  io_type: str = "float") -> None:
    """Refuses a bad request before any work: format, mode, calibration, output path."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; valid formats: {', '.join(FORMATS)}.")
    if quantize not in QUANTIZE:
        raise ValueError(f"unknown quantisation {quantize!r}; valid modes: {', '.join(QUANTIZE)}.")
    if quantize not in SUPPORTED[fmt]:
        raise ValueError(f"--format {fmt} supports --quantize {', '.join(SUPPORTED[fmt])}, not {quantize!r}; "
                         f"use --format tflite or onnx for {quantize}.")
    if io_type not in IO_TYPES:
        raise ValueError(f"unknown --io-type {io_type!r}; valid types: {', '.join(IO_TYPES)}.")
    if io_type != "float" and (fmt, quantize) != ("tflite", "int8"):
        raise ValueError(f"--io-type {io_type} needs --format tflite --quantize int8 (got {fmt}, {quantize}).")
    if quantize == "int8" and not calibration:
        raise ValueError("int8 quantisation needs calibration data: pass --calibration DATASPEC "
                         f"(the training split of e.g. {dataspec.EXAMPLES}).")
    ext = EXTENSIONS.get(fmt)
    if ext and not out.endswith(ext):
        raise ValueError(f"--out for --format {fmt} must end in {ext}, got {out!r}.")
    if not ext and os.path.splitext(out)[1] in (".tflite", ".onnx", ".keras"):
        raise ValueError(f"--format {fmt} writes a folder; --out {out!r} looks like a file.")
    check_new_output(out, overwrite)
    if os.path.exists(out):  # --overwrite: replace only an export of the same kind, never anything else
        why = _not_an_export(out, fmt)
        if why:
            raise ValueError(f"--out {out!r} exists and {why}, so --overwrite will not replace it; choose another "
                             f"--out or move it away.")
    tmp = _partial_path(out, fmt)
    if os.path.exists(tmp):
        raise ValueError(f"{tmp!r} exists (the temporary output of an interrupted export, or someone's file); "
                         f"remove it or choose another --out.")


def _not_an_export(path: str, fmt: str) -> str:
    """Why `path` is not a file this exporter writes for `fmt` ("" if it is one)."""
    if fmt == "tflite":
        if not os.path.isfile(path):
            return "is a folder, not a .tflite file"
        with open(path, "rb") as f:
            return "" if f.read(8)[4:8] == b"TFL3" else "is not a TFLite model (no TFL3 identifier)"
    if fmt == "onnx":
        return "" if os.path.isfile(path) else "is a folder, not an .onnx file"
    if not os.path.isdir(path):
        return "is a file, not a SavedModel folder"
    return "" if os.path.isfile(os.path.join(path, "saved_model.pb")) else "is not a SavedModel (no saved_model.pb)"


def export_model(model, fmt: str, out: str, quantize: str = "none", calibration: str | None = None,
                 overwrite: bool = False, io_type: str = "float", calibration_samples: int = 200,
                 parity_samples: int = 200, threads: int = 2, opset: int = 17, data_overrides=(),
                 data=None, log=print) -> dict:
    """Exports a Keras model and checks it against the original on real test data.

    Args:
        model: a `.keras` path or a loaded Keras model (a kd_keras model:
            raw 0-255 images in, preprocessing inside).
        fmt: "tflite", "onnx", "saved_model" or "tftrt".
        out: the file (tflite, onnx) or folder (saved_model, tftrt) to write.
        quantize: "none", "fp16", "dynamic" or "int8".
        calibration: DATASPEC (see `kd_keras.config.dataspec`): its training split
            calibrates int8, its test split checks parity. Required for
            int8; otherwise it defaults to the task's embedded data.
        overwrite: replace an existing `out`.
        io_type: TFLite int8: "float", "int8" or "uint8" input and output.
        calibration_samples: representative samples for int8.
        parity_samples: test samples for the parity check.
        threads: threads of the runtime that runs the export for parity.
        opset: ONNX opset.
        data_overrides: `key=value` overrides of the data spec's config.
        data: `(config, splits)` already loaded (a recipe run); replaces
            `calibration`.
        log: where progress lines go.

    Returns:
        A report: format, quantisation, path, size, parity measures,
        thresholds and the data used.

    Raises:
        ValueError: a bad request, an unloadable model, data that does not
            fit the model, a failed conversion (`ConversionError`) or a
            parity check below its threshold.
    """
    model_path = os.fspath(model) if isinstance(model, (str, os.PathLike)) else None
    own = dataspec.run_config(model_path) if model_path and data is None and not calibration else None
    check_request(fmt, quantize, calibration or (data and "recipe data") or (own and "its run's data"), out, overwrite,
                  io_type)
    if fmt == "tftrt":
        converters.require_tensorrt()  # before any work
    reference = KerasRuntime(model, threads)
    if not is_float32(reference.model):  # trained in mixed precision: deploy in float32
        reference = KerasRuntime(as_float32(reference.model), threads)
    model = reference.model
    task_name = infer_task(reference)
    from kd_keras.tasks import TASKS

    task = TASKS[task_name]()
    scale = sr_scale(reference) if task_name == "super_resolution" else None
    spec = calibration or DEFAULT_DATA[task_name]
    if own is not None and own.task == task_name:  # a model in a run folder: its own run's data
        spec = f"the data of its run ({own.name}, recorded in {os.path.dirname(model_path) or '.'})"
        data = (own, task.load(own.data, own.train.seed))
    cfg, splits = data if data is not None else dataspec.load(spec, task, scale, data_overrides)
    test = task.samples(splits, cfg.data, "test", parity_samples, cfg.train.seed)
    _check_fits(reference, test, spec)
    calib = None
    if quantize == "int8":
        calib = task.samples(splits, cfg.data, "train", calibration_samples, cfg.train.seed)
        _check_fits(reference, calib, spec)
    log(f"exporting {model.name} to {fmt} ({quantize}); data: {splits.description}")

    tmp = _partial_path(out, fmt)
    _remove(tmp)
    try:
        if fmt == "tflite":
            converters.tflite(model, tmp, quantize, calib, io_type)
        elif fmt == "onnx":
            converters.onnx(model, tmp, quantize, calib, opset)
        elif fmt == "tftrt":
            converters.tftrt(model, tmp, quantize, calib)
        else:
            converters.saved_model(model, tmp)
        runtime_format = "saved_model" if fmt == "tftrt" else fmt
        candidate = RUNTIMES[runtime_format](tmp, threads)
        measures = parity.compare(task_name, reference, candidate, test)
        failures = parity.check(task_name, quantize, measures)
        if failures:
            raise ValueError(f"parity check failed for {fmt} {quantize} on {len(test)} test samples of "
                             f"{splits.description}: {'; '.join(failures)}; nothing was written. Try a milder "
                             f"--quantize, or more --calibration-samples for int8.")
        if os.path.exists(out):
            _remove(out)
        os.replace(tmp, out)
    finally:
        _remove(tmp)
    report = {"file": out, "format": fmt, "quantize": quantize, "io_type": io_type, "task": task_name,
              "source_model": model.name, "size_bytes": file_size(out), "parity": measures,
              "parity_thresholds": parity.THRESHOLDS[task_name][parity.precision(quantize)],
              "parity_samples": len(test), "calibration_samples": len(calib) if calib else 0,
              "data": splits.description}
    shown = ", ".join(f"{k} {v:.6g}" for k, v in measures.items())
    log(f"wrote {out} ({report['size_bytes'] / 1e6:.3f} MB); parity on {len(test)} test samples: {shown}")
    return report


def _check_fits(reference, samples, spec) -> None:
    if not samples:
        raise ValueError(f"data spec {spec!r} gave no samples; check that its splits are not empty.")
    want = reference.input_shape
    got = samples[0].shape
    if len(got) != len(want) or any(w is not None and w != g for w, g in zip(want, got)):
        shown = "x".join("?" if w is None else str(w) for w in want)
        raise ValueError(f"data spec {spec!r} gives {'x'.join(map(str, got))} inputs but the model takes {shown}; "
                         f"pass --calibration with the data the model was trained on (e.g. a recipe .toml).")


def _partial_path(out: str, fmt: str) -> str:
    ext = EXTENSIONS.get(fmt, "")
    stem = out[: -len(ext)] if ext else out.rstrip("/")
    return f"{stem}.partial{ext}"


def _remove(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


__all__ = ["ConversionError", "FORMATS", "check_request", "export_model"]
