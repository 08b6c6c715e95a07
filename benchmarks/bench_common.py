"""What the benchmarks share: the command-line frame, one-line errors on bad paths, recipe and data, resumed runs."""

from __future__ import annotations

import json
import os
import sys


def run_cli(argv, parse, bench_cls, print_report) -> int:
    """Parses, builds the benchmark, runs it, prints and writes `<out>/result.json`.

    Returns 0 when it ran (a missed target is said in the report and in `result["met"]`), 2 on bad input (one
    line on stderr).
    """
    try:
        args = parse(argv)
        bench = bench_cls(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    result = bench.run()
    print_report(result)
    from kd_keras.benchmark.report import write_json_atomic

    write_json_atomic(os.path.join(args.out, "result.json"), result)
    return 0


def check_paths(files: dict = None, folders: dict = None) -> None:
    """Raises a one-line ValueError for the first `{option: path}` that is not an existing file (folder)."""
    for kind, paths, exists in (("file", files or {}, os.path.isfile), ("folder", folders or {}, os.path.isdir)):
        for option, path in paths.items():
            if not exists(path):
                raise ValueError(f"{option} {path!r} is not an existing {kind}; give the path of one.")


def one_line_errors(main, argv=None) -> int:
    """Runs `main(argv)`: bad input (a ValueError or missing file, raised before the measurement) is one line on
    stderr and exit code 2, not a traceback; 0 otherwise."""
    try:
        main(argv)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def load_recipe(args, need_augmentation: bool = False):
    """`(cfg, task, splits)` of a classification recipe with a `[[distill]]` entry whose augmentation can be stored.

    Args:
        args: parsed arguments with `config`, `data` and `limit`.
        need_augmentation: also refuse a recipe without random augmentation.
    """
    from kd_keras.config import load_config, quote
    from kd_keras.tasks import TASKS

    sets = [f"data.path={quote(args.data)}"] if args.data else []
    if args.limit:
        sets.append(f"data.limit={args.limit}")
    cfg = load_config(args.config, sets)
    if cfg.task != "classification" or not cfg.distill:
        raise ValueError(f"{args.config} must be a classification recipe with a [[distill]] entry.")
    blocker = cfg.data.augment.replay_blocker
    if blocker or need_augmentation and not cfg.data.augment.active:
        raise ValueError(f"{args.config} needs replayable random augmentation (crop, flip, translate, mixup, "
                         f"cutmix){': ' + blocker if blocker else ''}.")
    task = TASKS["classification"]()
    return cfg, task, task.load(cfg.data, 0)


def load_runs(path: str) -> dict:
    """The finished runs recorded in `path` (a JSON object), or none."""
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)
