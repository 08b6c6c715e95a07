"""Converters: Keras model -> SavedModel, TFLite, ONNX or TF-TRT, each written to a path.

- TFLite: the TensorFlow converter on the Keras model's SavedModel export
  (fp32; fp16 weights; dynamic-range int8 weights; full-integer int8 with a
  representative dataset, Jacob et al., CVPR 2018).
- ONNX: tf2onnx, then ONNX Runtime's own quantisers (dynamic, static QDQ
  int8) or its fp16 converter.
- TF-TRT: `TrtGraphConverterV2` where TensorFlow is linked with TensorRT,
  which no pip wheel since TF 2.18 is; the GPU route there is ONNX.

Every converter raises `ConversionError` with the layer that failed when
it can tell.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile

import numpy as np

QUANTIZE = ("none", "fp16", "dynamic", "int8")
IO_TYPES = ("float", "int8", "uint8")


class ConversionError(ValueError):
    """The converter could not handle the model."""


def saved_model(model, out: str) -> None:
    """Keras `model.export` (a SavedModel for TF Serving; signature `serving_default`)."""
    model.export(out, format="tf_saved_model", verbose=False)


def tflite(model, out: str, quantize: str = "none", calibration=None, io_type: str = "float") -> None:
    """Converts through the model's SavedModel export and writes a `.tflite` file.

    Args:
        model: the Keras model.
        out: the file to write.
        quantize: "none", "fp16", "dynamic" or "int8" (full integer).
        calibration: int8: a list of float32 input arrays (HxWxC) from the
            training pipeline, the representative dataset.
        io_type: int8: "float" keeps float input and output (quantise and
            dequantise ops at the ends); "int8"/"uint8" makes them integer.
    """
    from kd_keras.models.runtimes import tflite_bytes

    try:
        flat = tflite_bytes(model, quantize, calibration, io_type)
    except Exception as e:  # ConverterError and friends
        raise ConversionError(describe_failure(model, e, "tflite")) from None
    with open(out, "wb") as f:
        f.write(flat)


def onnx(model, out: str, quantize: str = "none", calibration=None, opset: int = 17) -> None:
    """tf2onnx conversion, then ONNX Runtime quantisation or fp16 conversion."""
    import tensorflow as tf
    import tf2onnx

    spec = (tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32, name="image"),)
    fp32 = out if quantize == "none" else out + ".fp32.onnx"
    try:
        tf2onnx.convert.from_keras(model, input_signature=spec, opset=opset, output_path=fp32)
    except Exception as e:  # tf2onnx raises ValueError/KeyError/RuntimeError
        raise ConversionError(describe_failure(model, e, "onnx")) from None
    _check_onnx_ops(model, fp32)
    if quantize == "none":
        return
    try:
        _onnx_quantize(fp32, out, quantize, calibration)
    finally:
        os.remove(fp32)


def _check_onnx_ops(model, path: str) -> None:
    """tf2onnx keeps a TF op it cannot map as a node no ONNX runtime knows; fail on it here."""
    import onnx as onnx_lib

    graph = onnx_lib.load(path).graph
    for node in graph.node:
        if not onnx_lib.defs.has(node.op_type, node.domain or ""):
            os.remove(path)
            raise ConversionError(describe_failure(model, ValueError(f"'tf.{node.op_type}' op in {node.name}/"),
                                                   "onnx"))


def _onnx_quantize(src: str, out: str, quantize: str, calibration) -> None:
    import onnx as onnx_lib
    from onnxruntime import quantization as q

    if quantize == "fp16":
        from onnxruntime.transformers.float16 import convert_float_to_float16

        onnx_lib.save(convert_float_to_float16(onnx_lib.load(src), keep_io_types=True), out)
        return
    prepared = src + ".prep.onnx"  # shape inference and graph optimisation, as ONNX Runtime advises
    q.quant_pre_process(src, prepared, skip_symbolic_shape=True)
    try:
        if quantize == "dynamic":
            q.quantize_dynamic(prepared, out, weight_type=q.QuantType.QInt8)
            return
        name = onnx_lib.load(prepared).graph.input[0].name

        class Reader(q.CalibrationDataReader):
            def __init__(self):
                self.it = iter(calibration)

            def get_next(self):
                x = next(self.it, None)
                return None if x is None else {name: x[None].astype(np.float32)}

        q.quantize_static(prepared, out, Reader(), quant_format=q.QuantFormat.QDQ,
                          activation_type=q.QuantType.QInt8, weight_type=q.QuantType.QInt8, per_channel=True)
    finally:
        os.remove(prepared)


def linked_tensorrt_version() -> tuple:
    """The TensorRT version TensorFlow is linked with; (0, 0, 0) when it is not."""
    try:
        from tensorflow.compiler.tf2tensorrt import _pywrap_py_utils
    except ImportError:
        return (0, 0, 0)
    return tuple(_pywrap_py_utils.get_linked_tensorrt_version())


def require_tensorrt() -> tuple:
    """The linked TensorRT version; a one-line error naming the ONNX route when there is none."""
    import tensorflow as tf

    version = linked_tensorrt_version()
    if version == (0, 0, 0):
        raise ConversionError(
            f"TF-TRT is not available: TensorFlow {tf.__version__} is not linked with TensorRT "
            f"(get_linked_tensorrt_version() = (0, 0, 0), as in every pip wheel since TF 2.18); use the ONNX "
            f"route: --format onnx, then ONNX Runtime's TensorRT or CUDA execution provider (or trtexec).")
    return version


def tftrt(model, out: str, quantize: str = "none", calibration=None) -> None:
    """TF-TRT: a SavedModel whose supported subgraphs run as TensorRT engines.

    Raises:
        ConversionError: TensorFlow is not linked with TensorRT (every pip
            wheel since TF 2.18), naming the ONNX route; or TF-TRT failed.
    """
    import tensorflow as tf

    version = require_tensorrt()
    from tensorflow.python.compiler.tensorrt import trt_convert as trt

    precision = {"none": "FP32", "fp16": "FP16", "int8": "INT8"}[quantize]
    with tempfile.TemporaryDirectory(prefix="kd_keras_sm_") as sm:
        saved_model(model, sm)
        try:
            converter = trt.TrtGraphConverterV2(input_saved_model_dir=sm, precision_mode=precision,
                                                use_calibration=quantize == "int8")
            if quantize == "int8":
                converter.convert(calibration_input_fn=lambda: ((tf.constant(x[None]),) for x in calibration))
            else:
                converter.convert()
            converter.save(out)
        except Exception as e:  # RuntimeError from TF-TRT, errors from TensorRT
            shutil.rmtree(out, ignore_errors=True)
            raise ConversionError(f"TF-TRT conversion failed (TensorRT {'.'.join(map(str, version))}): "
                                  f"{type(e).__name__}: {_first_line(e)}; the ONNX route (--format onnx) "
                                  f"is the alternative.") from None


CONVERTERS = {"tflite": tflite, "onnx": onnx, "saved_model": saved_model, "tftrt": tftrt}
SUPPORTED = {"tflite": QUANTIZE, "onnx": QUANTIZE, "saved_model": ("none",), "tftrt": ("none", "fp16", "int8")}


def describe_failure(model, error: Exception, fmt: str) -> str:
    """One line naming the op and the Keras layer a converter failed on."""
    text = str(error)
    ops = re.findall(r"'(tf\.\w+)' op", text)
    layers = [layer.name for layer in model.layers
              if re.search(rf"(?:^|[/\"'( ]){re.escape(layer.name)}(?:_\d+)?/", text)]
    where = f" in layer {layers[-1]!r}" if layers else ""
    others = " or ".join(f"--format {f}" for f in CONVERTERS if f not in (fmt, "tftrt"))
    what = f"op {ops[0]}{where} is not supported by" if ops else f"{_first_line(error)}{where}, in"
    return f"cannot convert model {model.name!r} to {fmt}: {what} the {fmt} converter; " \
           f"replace that layer, or export with {others}."


def _first_line(e: Exception) -> str:
    lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    return (lines[0] if lines else type(e).__name__)[:200]
