"""Unlabelled images as a transfer set: baseline, KD, and KD with the transfer set, at equal optimizer steps.

Runs a transfer recipe (default `recipes/fashion_mnist_small_transfer.toml`: 100 labels per class, the rest of
the training split as unlabelled images) once per schedule length of `--epochs` (epochs over the labelled images,
so every variant of a pair takes `epochs x ceil(labelled / batch)` optimizer steps), each run with `--pairs`
pairs: pair k's baseline and KD students start from the same initial weights and see the same labelled batches
(seed train.seed + k - 1). Each run is one `python -m kd_keras.recipes.classification` process, timed whole.

For every variant (the baseline and each `[[distill]]` entry) and length it reports the test accuracy (mean,
sample sd, each pair), the validation accuracy of the last epoch (mean), the optimizer steps, the share of the
teacher-baseline gap recovered, and each run's wall time. Choose on validation, report on test.

A finished run (its `results.json` and `wall_seconds.json`) is reused, so the same command continues after an
interruption. Exits 2 on bad input, 1 if a run fails, 0 when it ran.

Usage:
    python benchmarks/transfer.py --epochs 45 135 --pairs 3 --out runs/transfer_fashion_mnist_small \\
        --results recipes/results/transfer_fashion_mnist_small
    python benchmarks/transfer.py --config recipes/cifar10_small_transfer.toml \\
        --data ../shared/data/cifar10_small.npz --epochs 120 --pairs 3 --out runs/transfer_cifar10_small \\
        --results recipes/results/transfer_cifar10_small
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import statistics
import subprocess
import sys
import time

DEFAULT_CONFIG = "recipes/fashion_mnist_small_transfer.toml"


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=DEFAULT_CONFIG, help="a classification recipe with data.unlabeled")
    p.add_argument("--data", default="", help="the recipe's data (--data)")
    p.add_argument("--epochs", type=int, nargs="+", default=[45, 135],
                   help="schedule lengths, in epochs over the labelled images")
    p.add_argument("--pairs", type=int, default=3, help="pairs per length (seeds train.seed .. +pairs-1)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="recipe override, every run")
    p.add_argument("--out", default="runs/transfer", help="one sub-folder per length")
    p.add_argument("--results", default="", help="write <results>.md and <results>.json")
    args = p.parse_args(argv)
    if any(e < 1 for e in args.epochs) or len(set(args.epochs)) != len(args.epochs) or args.pairs < 1:
        raise ValueError(f"--epochs must be distinct integers >= 1 and --pairs >= 1, got {args.epochs} and "
                         f"{args.pairs}.")
    if not os.path.isfile(args.config):
        raise ValueError(f"--config {args.config!r} is not a file; give a recipe, e.g. {DEFAULT_CONFIG}.")
    if args.data and not os.path.exists(args.data):
        raise ValueError(f"--data {args.data!r} does not exist; give the recipe's data file or folder.")
    return args


def command(args, epochs: int) -> list[str]:
    cmd = ["python", "-m", "kd_keras.recipes.classification", "--config", args.config]
    cmd += ["--data", args.data] if args.data else []
    cmd += ["--set", f"train.epochs={epochs}", "--set", f"train.pairs={args.pairs}", "--set", "report.export=false"]
    for s in args.set:
        cmd += ["--set", s]
    return cmd + ["--out", os.path.join(args.out, f"e{epochs}")]


def run_length(args, epochs: int) -> dict:
    """One length's run (reused when finished): its results and wall time."""
    cmd = command(args, epochs)
    out = cmd[-1]
    record = os.path.join(out, "wall_seconds.json")
    if not (os.path.isfile(record) and os.path.isfile(os.path.join(out, "results.json"))):
        print(f"== {epochs} epochs: {shlex.join(cmd)}", flush=True)
        start = time.perf_counter()
        with open(os.path.join(os.path.dirname(out) or ".", f"e{epochs}.log"), "w") as log:
            proc = subprocess.run([sys.executable, *cmd[1:], "--overwrite"], stdout=log, stderr=subprocess.PIPE,
                                  text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"the {epochs}-epoch run failed (exit {proc.returncode}): {proc.stderr.strip()[-400:]}")
        with open(record, "w") as f:
            json.dump({"seconds": time.perf_counter() - start}, f)
    with open(record) as f:
        seconds = json.load(f)["seconds"]
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    return {"epochs": epochs, "command": shlex.join(cmd), "wall_seconds": seconds, "results": results, "out": out}


def last_val(out: str, name: str):
    """The validation accuracy of the last epoch of model `name` (its CSV log), or None."""
    path = os.path.join(out, "logs", f"{name}.csv")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return float(rows[-1]["val_accuracy"]) if rows and rows[-1].get("val_accuracy") else None


def variants(run: dict) -> list[dict]:
    """Per variant of one run: test and validation accuracy per pair, means, steps, gap recovered."""
    results, out = run["results"], run["out"]
    teacher = next(m for m in results["models"] if m["role"] == "teacher")["accuracy"]
    groups: dict = {}
    for m in results["models"]:
        if m["role"] not in ("baseline", "kd"):
            continue
        entry = "baseline" if m["role"] == "baseline" else m["kd"]["entry"]
        groups.setdefault(entry, []).append(m)
    base_mean = statistics.fmean(m["accuracy"] for m in groups["baseline"])
    table = []
    for entry, models in groups.items():
        tests = [m["accuracy"] for m in models]
        vals = [last_val(out, m["name"]) for m in models]
        kd = models[0].get("kd") or {}
        mean = statistics.fmean(tests)
        table.append({
            "variant": entry, "epochs": run["epochs"], "steps": models[0]["steps"],
            "transfer_images": kd.get("transfer_images", 0), "student_loss_weight": kd.get("student_loss_weight"),
            "test_mean": mean, "test_std": statistics.stdev(tests) if len(tests) > 1 else None,
            "val_mean": statistics.fmean(v for v in vals if v is not None) if any(v is not None for v in vals)
            else None,
            "gap_recovered": None if entry == "baseline" or teacher <= base_mean else
            (mean - base_mean) / (teacher - base_mean),
            "train_seconds_mean": statistics.fmean(m["train_seconds"] for m in models if m["train_seconds"]),
            "runs": [{"pair": m["pair"], "seed": m["seed"], "test": m["accuracy"], "val": v}
                     for m, v in zip(models, vals)],
        })
    return table


def markdown(runs: list[dict], rows: list[dict], teacher: float, argv) -> str:
    pct = lambda x: "-" if x is None else f"{100 * x:.2f}%"  # noqa: E731
    lines = [f"# Unlabelled images as a transfer set: {runs[0]['results']['recipe']}", "",
             f"Command: `python benchmarks/transfer.py {shlex.join(argv)}` ({time.strftime('%Y-%m-%d')}, 2 CPU "
             f"cores, one run after the other). Teacher {pct(teacher)} on the test split. Every variant of a pair "
             f"takes the same optimizer steps; KD + transfer streams its labelled and unlabelled images over them.",
             "", f"Data: {runs[0]['results']['data']['description']}, {runs[0]['results']['data']['num_train']:,} "
                 f"labelled training / {runs[0]['results']['data']['num_val']:,} validation / "
                 f"{runs[0]['results']['data']['num_test']:,} test images.", "",
             "| variant | epochs (labelled) | steps | unlabelled | val (mean) | test mean | test sd | each pair (test) "
             "| gap recovered |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        sd = "-" if r["test_std"] is None else f"{100 * r['test_std']:.2f}"
        each = " / ".join(f"{100 * x['test']:.2f}" for x in r["runs"])
        gap = "-" if r["gap_recovered"] is None else f"{100 * r['gap_recovered']:.0f}%"
        lines.append(f"| {r['variant']} | {r['epochs']} | {r['steps']:,} | {r['transfer_images']:,} | "
                     f"{pct(r['val_mean'])} | **{pct(r['test_mean'])}** | {sd} | {each} | {gap} |")
    lines += ["", "Wall time of each run (the whole command, all pairs, no export):"]
    lines += [f"- {r['epochs']} epochs: {r['wall_seconds']:.0f} s (`{r['command']}`)" for r in runs]
    lines += ["", "Paired differences against the baseline of the same pair (test):"]
    for run in runs:
        by = {}
        for r in (x for x in rows if x["epochs"] == run["epochs"]):
            by[r["variant"]] = {p["pair"]: p["test"] for p in r["runs"]}
        for name, tests in by.items():
            if name == "baseline":
                continue
            diffs = [100 * (tests[p] - by["baseline"][p]) for p in sorted(tests)]
            lines.append(f"- {run['epochs']} epochs, {name} - baseline: " + ", ".join(f"{d:+.2f}" for d in diffs)
                         + f" pt (mean {statistics.fmean(diffs):+.2f}, {sum(d > 0 for d in diffs)} wins of "
                           f"{len(diffs)})")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = parse(argv)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    try:
        runs = [run_length(args, e) for e in args.epochs]
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    rows = [r for run in runs for r in variants(run)]
    teacher = next(m for m in runs[0]["results"]["models"] if m["role"] == "teacher")["accuracy"]
    md = markdown(runs, rows, teacher, argv)
    print("\n" + md)
    if args.results:
        with open(args.results + ".md", "w") as f:
            f.write(md)
        with open(args.results + ".json", "w") as f:
            json.dump({"command": f"python benchmarks/transfer.py {shlex.join(argv)}", "teacher": teacher,
                       "variants": rows,
                       "runs": [{k: v for k, v in r.items() if k != "results"} for r in runs]}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
