"""Command line: `python -m kd_keras.export MODEL.keras --format FORMAT --out PATH [...]`."""

from __future__ import annotations

import argparse
import sys

from kd_keras.cli.args import command_parser, parse
from kd_keras.version import __version__
from kd_keras.cli.errors import report_user_errors
from kd_keras.config.dataspec import EXAMPLES


def parser() -> argparse.ArgumentParser:
    from kd_keras.export.converters import IO_TYPES, QUANTIZE
    from kd_keras.export.exporter import FORMATS

    prog = "python -m kd_keras.export"
    p = command_parser(
        prog, "Export a trained kd_keras model (TFLite/LiteRT, ONNX, SavedModel, TF-TRT), check it against the "
              "Keras model on real test data, and write it only if it matches.",
        [f"{prog} runs/fashion_mnist_small/kd.keras --format tflite --out kd.tflite",
         f"{prog} runs/fashion_mnist_small/kd.keras --format tflite --quantize int8 --calibration fashion_mnist_small "
         f"--out kd.int8.tflite",
         f"{prog} runs/fashion_mnist_small/kd.keras --format onnx --out kd.onnx"], __version__)
    p.add_argument("model", help="the trained .keras model")
    p.add_argument("--format", required=True, choices=FORMATS, help="the file to write")
    p.add_argument("--quantize", default="none", choices=QUANTIZE,
                   help="none (fp32), fp16, dynamic (int8 weights) or int8 (full integer, needs --calibration); "
                        "default none")
    p.add_argument("--calibration", metavar="DATASPEC",
                   help=f"real data: its training split calibrates int8, its test split checks parity ({EXAMPLES}); "
                        f"default: the task's embedded data")
    p.add_argument("--out", required=True, help="the .tflite/.onnx file or SavedModel folder to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--verbose", action="store_true",
                   help="show TensorFlow's start-up and tf.function retracing messages (hidden by default)")
    p.add_argument("--io-type", default="float", choices=IO_TYPES,
                   help="tflite int8: float (default), int8 or uint8 input/output")
    p.add_argument("--calibration-samples", type=int, default=200, help="int8 representative samples (200)")
    p.add_argument("--parity-samples", type=int, default=200, help="test samples of the parity check (200)")
    p.add_argument("--threads", type=int, default=2, help="runtime threads for the parity check (2)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (17)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of the data spec's config, e.g. data.scale=3")
    p.add_argument("--custom-objects", dest="custom_objects", action="append", default=[], metavar="MODULE",
                   help="a module or .py file that registers the model's custom layers (repeatable)")
    return p


MIN_OPSET, MAX_OPSET = 7, 18  # ONNX Runtime's oldest guaranteed opset; tf2onnx 1.17's newest


def run(args) -> None:
    from kd_keras.export.exporter import export_model
    from kd_keras.models.files import import_custom_objects

    import_custom_objects(args.custom_objects)

    if args.calibration_samples < 1 or args.parity_samples < 1 or args.threads < 1:
        raise ValueError(f"--calibration-samples, --parity-samples and --threads must be >= 1, got "
                         f"{args.calibration_samples}, {args.parity_samples}, {args.threads}.")
    if args.format == "onnx" and not MIN_OPSET <= args.opset <= MAX_OPSET:
        raise ValueError(f"--opset must be between {MIN_OPSET} (the oldest ONNX Runtime supports) and {MAX_OPSET} "
                         f"(the newest tf2onnx writes), got {args.opset}; the default, 17, suits ONNX Runtime and "
                         f"TensorRT.")
    export_model(args.model, args.format, args.out, args.quantize, args.calibration, args.overwrite, args.io_type,
                 args.calibration_samples, args.parity_samples, args.threads, args.opset, args.overrides)


def main(argv=None) -> int:
    args, code = parse(parser(), argv)
    return code if args is None else report_user_errors(run, args)


if __name__ == "__main__":
    sys.exit(main())
