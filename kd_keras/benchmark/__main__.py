"""Command line: `python -m kd_keras.benchmark MODEL [MODEL ...] --data DATASPEC [--out DIR]`."""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from kd_keras.cli.args import command_parser, parse
from kd_keras.version import __version__
from kd_keras.cli.errors import report_user_errors
from kd_keras.config.dataspec import EXAMPLES


def parser() -> argparse.ArgumentParser:
    prog = "python -m kd_keras.benchmark"
    p = command_parser(
        prog, "Measure model files (.keras, .tflite, .onnx, SavedModel) side by side: size, task metric on the test "
              "split, batch-1 latency (median, p90), throughput and peak RSS of a separate process.",
        [f"{prog} runs/fashion_mnist_small/teacher.keras kd.int8.tflite --data fashion_mnist_small --out runs/bench",
         f"{prog} kd.onnx --data recipes/cifar10_small.toml --providers CUDAExecutionProvider --out runs/gpu",
         f"{prog} kd.int8.tflite --data digits --threads 1 --no-xnnpack --out runs/ref_kernels"], __version__)
    p.add_argument("models", nargs="+", help="model files of one task")
    p.add_argument("--data", required=True, metavar="DATASPEC", help=f"the test data ({EXAMPLES})")
    p.add_argument("--out", default="runs/benchmark", help="output dir (default runs/benchmark)")
    p.add_argument("--overwrite", action="store_true", help="replace results already in --out")
    p.add_argument("--verbose", action="store_true",
                   help="show TensorFlow's start-up and tf.function retracing messages (hidden by default)")
    p.add_argument("--threads", type=int, default=2, help="runtime threads (2)")
    p.add_argument("--runs", type=int, default=50, help="timed batch-1 runs per model, >= 50 (50)")
    p.add_argument("--warmup", type=int, default=10, help="untimed runs first (10)")
    p.add_argument("--batch", type=int, default=32, help="batch size of the throughput run (32)")
    p.add_argument("--image-size", type=int, default=0, help="dense tasks: side of the timing input "
                                                             "(default: the recipe's report.image_size or 320/128)")
    p.add_argument("--providers", default="",
                   help="ONNX Runtime execution providers for .onnx models, comma-separated, e.g. "
                        "TensorrtExecutionProvider,CUDAExecutionProvider (needs onnxruntime-gpu); default CPU")
    p.add_argument("--no-xnnpack", action="store_true",
                   help="run .tflite models on LiteRT's reference kernels instead of its default XNNPACK delegate")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of the data spec's config, e.g. report.edge_max_images=20")
    p.add_argument("--custom-objects", dest="custom_objects", action="append", default=[], metavar="MODULE",
                   help="a module or .py file that registers the model's custom layers (repeatable)")
    return p


def run(args, argv) -> None:
    from kd_keras.benchmark.bench import benchmark
    from kd_keras.models.files import import_custom_objects

    import_custom_objects(args.custom_objects)
    if args.custom_objects:  # the timing worker process imports them too
        os.environ["KD_KERAS_CUSTOM_OBJECTS"] = os.pathsep.join(
            os.path.abspath(m) if m.endswith(".py") else m for m in args.custom_objects)

    if args.threads < 1 or args.batch < 1 or args.warmup < 0:
        raise ValueError(f"--threads and --batch must be >= 1 and --warmup >= 0, got {args.threads}, "
                         f"{args.batch}, {args.warmup}.")
    benchmark(args.models, args.data, args.out, args.threads, args.runs, args.warmup, args.batch, args.image_size,
              args.overrides, args.overwrite, command=shlex.join(["python", "-m", "kd_keras.benchmark", *argv]),
              providers=[p for p in args.providers.split(",") if p] or None, xnnpack=not args.no_xnnpack)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args, code = parse(parser(), argv)
    if args is None:
        return code
    return report_user_errors(run, args, argv,
                              interrupted="no results were written; run the same command again")


if __name__ == "__main__":
    sys.exit(main())
