"""Export a trained model for devices and servers, checked against the original.

`python -m kd_keras.export MODEL.keras --format tflite|onnx|saved_model|tftrt
[--quantize none|fp16|dynamic|int8] [--calibration DATASPEC] --out PATH`;
see `kd_keras.export.exporter.export_model` for the Python API.
"""

from kd_keras.export.converters import ConversionError, linked_tensorrt_version
from kd_keras.export.exporter import FORMATS, export_model

__all__ = ["ConversionError", "FORMATS", "export_model", "linked_tensorrt_version"]
