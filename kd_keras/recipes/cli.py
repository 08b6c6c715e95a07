"""Command line shared by the task recipes: one-line errors, non-zero exits."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from kd_keras.cli.errors import EXIT_INTERRUPTED, EXIT_USER_ERROR
from kd_keras.config import catalog, load_config, quote
from kd_keras.training.callbacks import TrainingDiverged

EXIT_DIVERGED = 3


def parser(task: str, default_config: str, predict: bool = False) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"python -m kd_keras.recipes.{task}",
        description=f"Train a teacher, a no-teacher baseline and KD students for {task}, and compare them.",
    )
    p.add_argument("--config", default=default_config,
                   help=f"a shipped recipe's name (--list) or a TOML file (default: {Path(default_config).stem})")
    p.add_argument("--list", action="store_true", help="list the shipped recipes of this task and exit")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set train.epochs=3 (repeatable)")
    p.add_argument("--data", help="dataset path (npz file or folder); same as --set data.path=PATH")
    p.add_argument("--out", help="output dir for models and results (default: runs/<recipe name>); "
                                 "with --predict, the output PNG")
    p.add_argument("--smoke", action="store_true",
                   help="shrink the run to seconds (1 epoch, 256 examples); a --set still wins")
    p.add_argument("--overwrite", action="store_true", help="replace results already in --out")
    p.add_argument("--verbose", action="store_true",
                   help="show TensorFlow's start-up and tf.function retracing messages (hidden by default)")
    p.add_argument("--export", action="store_true",
                   help="after training, export the teacher (fp32) and the KD students (fp32, int8) to TFLite, check "
                        "parity, and add their measured rows to the results")
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
    args = parser(task_name, default_config, predict=hasattr(task, "predict")).parse_args(argv)
    if args.list:
        print(catalog.listing(task_name))
        return 0
    try:
        from kd_keras.recipes.runner import run

        args.config = catalog.resolve(args.config)

        overrides = list(args.overrides) + ([f"data.path={quote(args.data)}"] if args.data else [])
        if args.smoke:
            overrides = task.smoke_overrides() + overrides
        cfg = load_config(args.config, overrides, smoke=args.smoke)
        if cfg.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {cfg.task!r} in {args.config}.")
        if cfg.task != task_name:
            raise ValueError(f"{args.config} is a recipe for {cfg.task}; run it with "
                             f"python -m kd_keras.recipes.{cfg.task} --config {args.config}.")
        if getattr(args, "predict", None):
            from kd_keras.recipes.predict import predict

            predict(task, cfg, args.predict, args.out, args.model, args.overwrite)
            return 0
        out = args.out or os.path.join("runs", cfg.name + ("_smoke" if args.smoke else ""))
        argv = sys.argv[1:] if argv is None else list(argv)
        command = shlex.join(["python", "-m", f"kd_keras.recipes.{task_name}", *argv])
        run(cfg, task, out, overwrite=args.overwrite, command=command, export=args.export)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_DIVERGED
    except KeyboardInterrupt:
        where = f" in {out}" if "out" in locals() else ""
        print(f"interrupted: finished models and the last finished epoch are kept{where}; run the same command to "
              f"resume.", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def default_config_path(name: str) -> str:
    """The shipped recipe `name` (a file name in `recipes/`), from an installed package or a clone."""
    return str(catalog.recipes_dir() / name)
