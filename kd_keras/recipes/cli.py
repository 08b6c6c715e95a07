"""Command line shared by the task recipes: one-line errors, non-zero exits."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from kd_keras.cli.args import command_parser, parse
from kd_keras.version import __version__
from kd_keras.cli.errors import EXIT_INTERRUPTED, EXIT_NO_SPACE, EXIT_USER_ERROR, no_space
from kd_keras.config import catalog, load_config, quote
from kd_keras.export.converters import QUANTIZE
from kd_keras.training.callbacks import TrainingDiverged

EXIT_DIVERGED = 3


def parser(task: str, default_config: str, predict: bool = False) -> argparse.ArgumentParser:
    prog = f"python -m kd_keras.recipes.{task}"
    own = {"classification": f"{prog} --teacher my_teacher.keras --data my_images/ --student mobilenet_v3_small "
                             f"--export int8",
           "edge_detection": f"{prog} --config bsds500 --data ../shared/data/bsds500",
           "super_resolution": f"{prog} --config sr_t91 --data ../shared/data/sr"}[task]
    p = command_parser(prog, f"Train a teacher, a no-teacher baseline and KD students for {task}, and compare "
                             f"them side by side (accuracy, size, latency); optionally export the students.",
                       [f"{prog}                       # the offline default", f"{prog} --list",
                        f"{prog} --smoke --out runs/try   # seconds: checks a setup end to end", own], __version__)
    p.add_argument("--config", default=default_config,
                   help=f"a shipped recipe's name (--list) or a TOML file (default: {Path(default_config).stem})")
    p.add_argument("--list", action="store_true", help="list the shipped recipes of this task and exit")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set train.epochs=3 (repeatable)")
    p.add_argument("--data", metavar="PATH|NAME",
                   help="the data: a folder of class sub-folders (or train/ and test/ above them), an .npz file, or "
                        "a TensorFlow Datasets name; data.source is inferred from what it is")
    p.add_argument("--unlabeled", action="append", default=[], metavar="DIR|NPZ|rest",
                   help="classification: images without labels that the KD students also learn from, labelled by "
                        "the teacher (a transfer set): a folder (flat or nested), an .npz with x_unlabeled, or rest "
                        "(the training images data.labels_per_class leaves out); repeatable; same as --set "
                        "data.unlabeled=[...]")
    p.add_argument("--skip-bad-images", dest="skip_bad_images", action="store_true",
                   help="image folders: leave corrupt or too large image files out (counted in the report) instead "
                        "of refusing the folder; same as --set data.skip_bad_images=true")
    p.add_argument("--teacher", metavar="FILE",
                   help="your trained teacher: a .keras model of any architecture, or an .onnx, .tflite file or "
                        "SavedModel folder; same as --set teacher.model=FILE")
    p.add_argument("--student", metavar="NAME|FILE",
                   help="a registered model, sized from the data (python -m kd_keras.models lists them), or your own "
                        "student as a .keras file; same as --set student.model=...")
    p.add_argument("--custom-objects", dest="custom_objects", action="append", default=[], metavar="MODULE",
                   help="a module name or .py file to import before the model files load, to register the custom "
                        "layers they need (repeatable)")
    p.add_argument("--pairs", type=int, metavar="N",
                   help="train the baseline and each KD student N times, paired (same initial weights and batches "
                        "per pair, seeds train.seed .. +N-1), and report the mean, spread and wins; same as "
                        "--set train.pairs=N")
    p.add_argument("--out", help="output dir for models and results (default: runs/<recipe name>)"
                                 + ("; with --predict, the output PNG" if predict else ""))
    p.add_argument("--smoke", action="store_true",
                   help="shrink the run to seconds (1 epoch, 256 examples); a --set still wins")
    p.add_argument("--overwrite", action="store_true", help="replace results already in --out")
    p.add_argument("--verbose", action="store_true",
                   help="show TensorFlow's start-up and tf.function retracing messages (hidden by default)")
    p.add_argument("--export", nargs="?", const="recipe", default=None, metavar="MODES",
                   help="after training, export the teacher (fp32) and the KD students to TFLite, check parity, and "
                        f"add their measured rows to the results; MODES: comma-separated, of {', '.join(QUANTIZE)} "
                        "(default: the recipe's report.export_quantize, none and int8)")
    if predict:
        p.add_argument("--predict", metavar="IMAGE",
                       help="run a trained model on IMAGE (any size) and write a PNG to --out; no training")
        p.add_argument("--model", help="with --predict: the .keras model (default: the first KD student "
                                       "in runs/<recipe name>)")
    return p


def main(task_name: str, default_config: str, argv=None) -> int:
    """Parses arguments, runs the recipe, and turns user errors into one line."""
    from kd_keras.tasks import TASKS

    task = TASKS[task_name]()
    args, code = parse(parser(task_name, default_config, predict=hasattr(task, "predict")), argv)
    if args is None:
        return code
    if args.list:
        print(catalog.listing(task_name))
        return 0
    try:
        from kd_keras.recipes.runner import run

        args.config = catalog.resolve(args.config)

        given = list(args.overrides)
        overrides = flag_overrides(args, task_name, given, default_config)
        if args.smoke:
            overrides = task.smoke_overrides() + overrides
        cfg = load_config(args.config, overrides + given, smoke=args.smoke)
        if cfg.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {cfg.task!r} in {args.config}.")
        if cfg.task != task_name:
            raise ValueError(f"{args.config} is a recipe for {cfg.task}; run it with "
                             f"python -m kd_keras.recipes.{cfg.task} --config {args.config}.")
        if getattr(args, "predict", None):
            from kd_keras.recipes.predict import predict

            predict(task, cfg, args.predict, args.out, args.model, args.overwrite)
            return 0
        out = out_dir(args.out, os.path.join("runs", cfg.name + ("_smoke" if args.smoke else "")), cfg.data.path)
        argv = sys.argv[1:] if argv is None else list(argv)
        command = shlex.join(["python", "-m", f"kd_keras.recipes.{task_name}", *argv])
        run(cfg, task, out, overwrite=args.overwrite, command=command, export=args.export is not None)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_DIVERGED
    except OSError as e:
        written = no_space(e)
        if not written:
            raise
        where = f" in {out}" if "out" in locals() else ""
        print(f"error: no space left writing {written} (the disk, a quota or a file-size limit is full); finished "
              f"models and the last finished epoch are kept{where}: free space and run the same command to resume.",
              file=sys.stderr)
        return EXIT_NO_SPACE
    except KeyboardInterrupt:
        where = f" in {out}" if "out" in locals() else ""
        print(f"interrupted: finished models and the last finished epoch are kept{where}; run the same command to "
              f"resume.", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def out_dir(given: str | None, default: str, data_path: str) -> str:
    """The output folder: `--out`, else `default`; never inside a data folder, whose sub-folders are read as classes.

    Run from inside the data (`--data .`), the default goes beside the data folder instead, and says so.

    Raises:
        ValueError: an `--out` inside the data folder.
    """
    data = os.path.realpath(data_path) if data_path and os.path.isdir(data_path) else ""
    out = given or default
    inside = data and os.path.realpath(out).startswith(data.rstrip(os.sep) + os.sep)
    if not inside:
        return out
    if given:
        raise ValueError(f"--out {given!r} is inside the data folder {data_path!r}, whose sub-folders are read as "
                         f"classes; choose an --out outside it.")
    beside = os.path.join(os.path.dirname(data), default)
    print(f"output: {beside} (the default {default} would be inside the data folder {data_path!r})")
    return beside


def flag_overrides(args, task_name: str, given: list, default_config: str) -> list:
    """The `--set` assignments that `--data`, `--teacher`, `--student`, `--pairs`, `--custom-objects` and
    `--export MODES` stand for; an explicit `--set` of the same key comes after them and wins."""
    out = []
    for flag in ("data", "teacher", "student"):
        value = getattr(args, flag, None)
        if value is not None and not value.strip():  # `--data "$DIR"` with DIR unset
            raise ValueError(f"--{flag} is empty (an unset shell variable?); give a "
                             f"{'folder, .npz file or dataset name' if flag == 'data' else 'model name or file'}, "
                             f"or leave --{flag} out.")
    if args.data:
        keys = {o.split("=", 1)[0].strip() for o in given}
        if task_name == "classification" and "data.source" not in keys:
            out += infer_data(args.data)
        else:
            out.append(f"data.path={quote(args.data)}")
        if os.path.abspath(args.config) == os.path.abspath(default_config) and not _default_data(default_config,
                                                                                                args.data):
            stem = Path(args.data.rstrip("/\\")).stem or "data"  # the default recipe on other data
            out.append(f"name={quote(stem)}")
            if task_name == "classification":  # every image labelled, the teacher trained in the run unless
                out += ["data.labels_per_class=0", "teacher.weights=\"\""]  # --teacher gives one, one pair unless
                if args.pairs is None:  # --pairs says more
                    out.append("train.pairs=1")
    for role, value in (("teacher", args.teacher), ("student", args.student)):
        if value:
            out += [f"{role}.model={quote(value)}", f"{role}.options={{}}", f"{role}.weights=\"\""]
    if args.pairs is not None:
        out.append(f"train.pairs={args.pairs}")
    if args.skip_bad_images:
        out.append("data.skip_bad_images=true")
    if getattr(args, "unlabeled", None):
        if any(not u for u in args.unlabeled):
            raise ValueError("--unlabeled is empty; give a folder of images, an .npz file, or rest.")
        out.append("data.unlabeled=[" + ", ".join(quote(u) for u in args.unlabeled) + "]")
    if args.custom_objects:
        out.append("custom_objects=[" + ", ".join(quote(m) for m in args.custom_objects) + "]")
    if args.export not in (None, "recipe"):
        modes = [m.strip() for m in args.export.split(",") if m.strip()]
        bad = [m for m in modes if m not in QUANTIZE]
        if bad or not modes:
            raise ValueError(f"--export takes modes from {', '.join(QUANTIZE)} (comma-separated), got "
                             f"{args.export!r}; e.g. --export int8.")
        out.append("report.export_quantize=[" + ", ".join(quote(m) for m in modes) + "]")
    return out


def infer_data(value: str) -> list:
    """`--data`'s source from what it is: a folder, an `.npz` file, an embedded set (`digits`,
    `fashion_mnist_small`), or a TensorFlow Datasets name."""
    path = Path(value)
    if path.is_dir():
        if (path / "wnids.txt").exists() and (path / "train").is_dir():
            source = "tiny_imagenet"
        elif (path / "annotations.csv").exists() and (path / "images").is_dir():
            source = "mhist"
        else:
            source = "folder"
        return [f"data.source={quote(source)}", f"data.path={quote(value)}"]
    if path.is_file():
        if path.suffix.lower() != ".npz":
            raise ValueError(f"--data {value!r} is a file but not an .npz; pass a folder of class sub-folders, an "
                             f".npz with x_train, y_train, x_test, y_test, or a TensorFlow Datasets name.")
        return ["data.source=\"npz\"", f"data.path={quote(value)}"]
    if value in ("digits", "fashion_mnist_small"):  # the embedded sets
        return [f"data.source={quote(value)}", "data.path=\"\""]
    if _tfds_name(value):
        return ["data.source=\"tfds\"", f"data.name={quote(value)}", "data.path=\"\""]
    raise FileNotFoundError(f"--data {value!r} is not a folder or file here, nor a TensorFlow Datasets name; check "
                            f"the path (a folder of class sub-folders, or an .npz file).")


def _tfds_name(value: str) -> bool:
    """Whether `value` is a TensorFlow Datasets builder name (`cifar10`, `imagenette/320px-v2:1.0.0`)."""
    import re

    if not re.fullmatch(r"[a-z][a-z0-9_]*(/[\w.-]+)?(:[\w.]+)?", value):
        return False
    from kd_keras.data.tfds_source import missing_tfds

    if missing_tfds():
        return False
    import tensorflow_datasets as tfds

    return value.split(":")[0].split("/")[0] in tfds.list_builders(with_community_datasets=False)


def default_config_path(name: str) -> str:
    """The shipped recipe `name` (a file name in `recipes/`), from an installed package or a clone."""
    return str(catalog.recipes_dir() / name)


def _default_data(default_config: str, value: str) -> bool:
    """Whether `--data` names the data the default recipe already uses (its embedded source)."""
    return load_config(default_config).data.source == value
