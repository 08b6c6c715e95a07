"""KD methods side by side: the baseline and each method, several seeds, one table.

For every seed, one recipe run (`kd_keras.recipes.runner`) trains the
no-teacher baseline and one KD student per method, all from the same initial
weights, on the same batches (the seed's shuffle and augmentation), with the
recipe's optimizer and schedule; only the loss differs (and, for function
matching, the augmentation and the schedule's length). The teacher is the same
for every seed: `--teacher`, or the one the first seed trains. Stored augmented
views (`train.teacher_cache = "auto"`) are computed once and shared by every
seed and method that uses the same augmentation.

The table gives, per method: test accuracy mean and standard deviation over
the seeds and each run, validation accuracy mean, KD minus baseline, the
share of the teacher-baseline gap recovered, and epoch time relative to the
baseline (training wall time / epochs, outside the one-time views pass).
Choose on the validation column: the method (and the variant of a method,
`kd:temperature=2` beside `kd`) with the best validation mean is marked; the
test columns are reported, not chosen on.

Methods (presets; `NAME:key=value,...` changes one: `weight`,
`student_loss_weight`, `warmup_epochs`, `epochs`, or an option of the loss):
  kd        Hinton KD, T = 4, CE 0.1 + KD 0.9 (mdistiller's CIFAR setting)
  kd_std    KD with logit standardization, T = 2, CE 0.1 + KD 9 (Sun et al.'s code)
  dkd       DKD, alpha 1, beta 8, T = 4, CE and DKD equal, warm-up over 1/12 of the epochs
            (beta 8 is the paper's CIFAR-100 value; for 10 classes try dkd:beta=1 ... dkd:beta=4 and
            choose on validation: the non-target classes carry less there)
  dkd_std   DKD with logit standardization, T = 2, otherwise as dkd
  dist      DIST, beta = gamma = 1, T = 4, CE and DIST equal
  mlkd      MLKD, T = 2, 3, 4, 5, 6, the three levels weighted 1, CE and MLKD equal; its batch and
            class terms are normalised by the batch (equal to the paper's at its batch of 64)
  mlkd_std  MLKD with logit standardization, otherwise as mlkd
  fm        function matching (Beyer et al. 2022, patient and consistent): MixUp (alpha 1) on
            every batch, the teacher labelling the student's exact mixed view, KD at T = 1
            alone (student_loss_weight = 0), 3x the epochs
  fm5, fm10 the same over 5x and 10x the epochs
  fm_cutmix function matching with CutMix (alpha 1) views, 3x the epochs

A student other than the recipe's: `--set student.model=resnet20` (ResNet-56 -> ResNet-20 is
mdistiller's CIFAR pair, so its gap recovered reads against the papers' tables).

Finished seeds are kept in `<out>/seed<s>/`, so the same command continues
after an interruption (an interrupted seed resumes through the runner).

Usage:
    python benchmarks/kd_methods.py --seeds 0 1 2 3 4                      # the offline digits default
    python benchmarks/kd_methods.py --config recipes/cifar10_small.toml \\
        --data ../shared/data/cifar10_small.npz --teacher saved_models/cifar10_small_resnet56.keras \\
        --seeds 0 1 2 --methods kd kd_std dkd_std dist

Exits 2 on bad input.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def presets(epochs: int) -> dict:
    """The methods, as `[[distill]]` entries, for a recipe of `epochs` epochs."""
    warm = min(max(1, round(epochs / 12)), epochs - 1)  # DKD: 20 of 240 epochs
    return {
        "kd": {"student_loss_weight": 0.1, "losses": [{"method": "kd", "weight": 1.0, "temperature": 4.0}]},
        "kd_std": {"student_loss_weight": 0.1,
                   "losses": [{"method": "kd", "weight": 10.0, "temperature": 2.0, "standardize": True}]},
        "dkd": {"student_loss_weight": 0.5, "warmup_epochs": warm,
                "losses": [{"method": "dkd", "weight": 1.0, "alpha": 1.0, "beta": 8.0, "temperature": 4.0}]},
        "dkd_std": {"student_loss_weight": 0.5, "warmup_epochs": warm,
                    "losses": [{"method": "dkd", "weight": 1.0, "alpha": 1.0, "beta": 8.0, "temperature": 2.0,
                                "standardize": True}]},
        "dist": {"student_loss_weight": 0.5,
                 "losses": [{"method": "dist", "weight": 1.0, "beta": 1.0, "gamma": 1.0, "temperature": 4.0}]},
        "mlkd": {"student_loss_weight": 0.5, "losses": [{"method": "mlkd", "weight": 1.0}]},
        "mlkd_std": {"student_loss_weight": 0.5, "losses": [{"method": "mlkd", "weight": 1.0, "standardize": True}]},
        **{name: {"student_loss_weight": 0.0, "epochs": times * epochs, "augment": {f"{mix}_alpha": 1.0},
                  "losses": [{"method": "kd", "weight": 1.0, "temperature": 1.0}]}
           for name, times, mix in (("fm", 3, "mixup"), ("fm5", 5, "mixup"), ("fm10", 10, "mixup"),
                                    ("fm_cutmix", 3, "cutmix"))},
    }


ENTRY_KEYS = ("student_loss_weight", "warmup_epochs", "epochs")


def method_entry(spec: str, epochs: int) -> dict:
    """The `[[distill]]` entry of a method spec, `NAME` or `NAME:key=value,...`."""
    from kd_keras.config import parse_value

    name, _, args = spec.partition(":")
    table = presets(epochs)
    if name not in table:
        raise ValueError(f"unknown method {name!r} in --methods; choose from {', '.join(table)} "
                         f"(optionally NAME:key=value,...).")
    entry = json.loads(json.dumps(table[name]))
    loss = entry["losses"][0]
    for item in filter(None, args.split(",")):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ValueError(f"method {spec!r}: expected key=value after ':', got {item!r}.")
        value = parse_value(value)
        if key in ENTRY_KEYS:
            entry[key] = value
        elif key == "weight":
            loss["weight"] = value
        else:
            loss[key] = value
    entry["name"] = spec.replace(":", "@").replace(",", "@").replace("=", "")
    return entry


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="recipes/digits.toml", help="classification recipe (data, models, optimizer)")
    p.add_argument("--data", help="dataset path for the recipe (its data.path)")
    p.add_argument("--teacher", help="a trained teacher (.keras); default: the first seed trains it")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--methods", nargs="+", default=["kd", "kd_std", "dkd", "dkd_std", "dist", "mlkd", "fm"])
    p.add_argument("--epochs", type=int, default=0, help="student epochs (0: the recipe's)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="recipe override")
    p.add_argument("--out", help="output folder (default runs/kd_methods_<recipe>)")
    p.add_argument("--json", default="", help="also write the table here as JSON, accuracies as fractions "
                                              "(recipes/results/kd_methods_<recipe>.json)")
    return p.parse_args(argv)


def build_config(args, seed: int, teacher: str | None, out_root: str):
    from kd_keras.config import load_config, quote

    # Views passes kept beside the seeds, so a rerun or a resumed seed reuses them; a --set still wins.
    sets = [f"train.teacher_cache_dir={quote(os.path.join(out_root, 'teacher_cache'))}", *args.set]
    if args.data:
        sets.append(f"data.path={quote(args.data)}")
    if args.epochs:
        sets.append(f"train.epochs={args.epochs}")
    if teacher:
        sets += [f"teacher.weights={quote(teacher)}", "teacher.train_if_missing=false", "teacher.finetune=false"]
    sets += [f"train.seed={seed}", "report.latency_runs=20", "report.rounds=1"]
    base = load_config(args.config, sets)
    entries = [method_entry(m, base.train.epochs) for m in args.methods]
    names = [e["name"] for e in entries]
    if len(set(names)) != len(names):
        raise ValueError(f"--methods lists a method twice: {' '.join(args.methods)}.")
    from kd_keras.config import Config, from_dict, to_dict

    data = to_dict(base)
    data["distill"] = entries
    return from_dict(Config, data)


def final_val(out_dir: str, name: str, metric: str):
    """The last epoch's validation metric of a run, from its CSV log (None without a validation split)."""
    path = os.path.join(out_dir, "logs", f"{name}.csv")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        rows = list(csv.DictReader(f))
    keys = [k for k in (rows[-1] if rows else {}) if k.startswith("val_") and metric.split("_")[-1] in k
            and "loss" not in k]
    return float(rows[-1][keys[0]]) if keys else None


def run_seed(args, seed: int, out_root: str, teacher: str | None) -> dict:
    from kd_keras.recipes.runner import run
    from kd_keras.tasks import TASKS

    out = os.path.join(out_root, f"seed{seed}")
    done = os.path.join(out, "results.json")
    if os.path.exists(done):
        print(f"seed {seed}: finished earlier, read from {done}", flush=True)
    else:
        cfg = build_config(args, seed, teacher, out_root)
        run(cfg, TASKS[cfg.task](), out, overwrite=False, log=lambda *a: print(*a, flush=True),
            command="benchmarks/kd_methods.py " + " ".join(sys.argv[1:]))
    with open(done) as f:
        results = json.load(f)
    metric = results["metric"]
    for row in results["models"]:
        row["val"] = final_val(out, row["name"], metric)
    return results


def summarize(all_results: list) -> tuple[str, dict]:
    """The markdown table over seeds and a summary dict."""
    metric = all_results[0]["metric"]
    by_name: dict[str, list] = {}
    epochs: dict[str, int] = {}
    for res in all_results:
        base_epochs = res["config"]["train"]["epochs"]
        for row in res["models"]:
            by_name.setdefault(row["name"], []).append(row)
            epochs[row["name"]] = (row["kd"] or {}).get("epochs") or base_epochs
    teacher = statistics.mean(r[metric] for r in by_name["teacher"]) * 100
    base_runs = [r[metric] * 100 for r in by_name["baseline"]]
    base = statistics.mean(base_runs)
    base_epoch = statistics.mean(r["train_seconds"] / epochs["baseline"] for r in by_name["baseline"])
    gap = teacher - base
    names = ["baseline"] + [n for n in by_name if n not in ("teacher", "baseline")]
    vals = {n: [r["val"] * 100 for r in by_name[n] if r.get("val") is not None] for n in names}
    chosen = max(names[1:], key=lambda n: statistics.mean(vals[n]) if vals[n] else -1) if len(names) > 1 else None
    lines = [f"Teacher {teacher:.2f}% (test); {len(all_results)} seeds; gap = teacher - baseline mean = {gap:.2f} pt.",
             "", "| method | test mean | std | runs | val mean | vs baseline | gap recovered | epochs | "
             "epoch time / baseline |", "|---|---|---|---|---|---|---|---|---|"]
    summary = {"teacher": teacher, "baseline": base, "chosen_on_val": chosen, "methods": {}}
    for n in names:
        runs = [r[metric] * 100 for r in by_name[n]]
        mean = statistics.mean(runs)
        std = statistics.stdev(runs) if len(runs) > 1 else 0.0
        val = f"{statistics.mean(vals[n]):.2f}" if vals[n] else "-"
        ratio = statistics.mean(r["train_seconds"] / epochs[n] for r in by_name[n]) / base_epoch
        delta = "" if n == "baseline" else f"{mean - base:+.2f} pt"
        rec = "" if n == "baseline" or gap <= 0 else f"{100 * (mean - base) / gap:.1f}%"
        mark = " (best on val)" if n == chosen else ""
        lines.append(f"| {n}{mark} | {mean:.2f} | {std:.2f} | {' / '.join(f'{x:.2f}' for x in runs)} | {val} | "
                     f"{delta} | {rec} | {epochs[n]} | {ratio:.2f} |")
        wins = sum(x > b for x, b in zip(runs, base_runs))
        summary["methods"][n] = {"test_mean": mean, "test_std": std, "runs": runs, "val_mean": vals[n] and
                                 statistics.mean(vals[n]), "gap_recovered": (mean - base) / gap if gap > 0 else None,
                                 "epoch_ratio": ratio, "wins": wins}
    passes = sorted({(r.get("kd") or {}).get("teacher_cache", {}) and
                     (r["kd"]["teacher_cache"] or {}).get("pass_seconds") or 0
                     for res in all_results for r in res["models"]} - {0})
    lines += ["", "Per-seed KD minus baseline (pt): " + "; ".join(
        f"{n}: " + ", ".join(f"{s['runs'][i] - base_runs[i]:+.2f}" for i in range(len(base_runs)))
        for n, s in summary["methods"].items() if n != "baseline")]
    if passes:
        lines.append(f"One-time teacher views passes (s, outside the epoch times; a pass serves one training set and "
                     f"augmentation, and the validation split, so the training set, is drawn per seed): "
                     f"{', '.join(f'{p:.1f}' for p in passes)}.")
    if chosen:
        c = summary["methods"][chosen]
        lines.append(f"Best on validation: {chosen}; its test gap recovered: "
                     f"{100 * c['gap_recovered']:.1f}%; beats the baseline in {c['wins']} of {len(base_runs)} seeds."
                     if c["gap_recovered"] is not None else f"Best on validation: {chosen}.")
    return "\n".join(lines) + "\n", summary


def main(argv=None) -> int:
    args = parse(argv)
    try:
        if any(s < 0 for s in args.seeds) or args.epochs < 0:
            raise ValueError(f"--seeds and --epochs must be >= 0, got {args.seeds} and {args.epochs}.")
        if args.teacher and not os.path.isfile(args.teacher):
            raise ValueError(f"--teacher {args.teacher!r} does not exist; give a trained .keras teacher or omit it.")
        out_root = args.out or os.path.join("runs", f"kd_methods_{Path(args.config).stem}")
        cfg = build_config(args, args.seeds[0], args.teacher, out_root)  # every mistake before anything trains
        from kd_keras.recipes.validate import validate
        from kd_keras.tasks import TASKS

        task = TASKS[cfg.task]()
        if task.name != "classification":
            raise ValueError(f"--config {args.config!r} is a {task.name} recipe; the methods benchmark "
                             f"compares classification methods.")
        cfg.data.resolved_path()
        validate(cfg, task, out_root)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    os.makedirs(out_root, exist_ok=True)
    results, teacher = [], args.teacher
    for seed in args.seeds:
        res = run_seed(args, seed, out_root, teacher)
        results.append(res)
        if teacher is None:
            teacher = os.path.join(out_root, f"seed{seed}", "teacher.keras")
    table, summary = summarize(results)
    command = " ".join(sys.argv[1:] if argv is None else argv)
    head = f"# KD methods on {cfg.name}\n\nCommand: `python benchmarks/kd_methods.py {command}`\n\n"
    text = head + table
    with open(os.path.join(out_root, "table.md"), "w") as f:
        f.write(text)
    with open(os.path.join(out_root, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    if args.json:
        from kd_keras.benchmark.report import write_json_atomic

        write_json_atomic(args.json, json_table(summary, "python benchmarks/kd_methods.py " + command))
    print("\n" + text, flush=True)
    return 0


def _fraction(percent):
    """A percentage as a fraction; None when there is none (no validation split: an empty list)."""
    return percent / 100 if isinstance(percent, (int, float)) else None


def json_table(summary: dict, command: str) -> dict:
    """The table as `recipes/results/kd_methods_*.json` keeps it: accuracies and gap recovered as fractions."""
    methods = {}
    for n, m in summary["methods"].items():
        if n == "baseline":
            continue
        methods[n] = {"test_mean": m["test_mean"] / 100, "test_std": m["test_std"] / 100,
                      "val_mean": _fraction(m["val_mean"]),
                      "gap_recovered": m["gap_recovered"], "runs": [r / 100 for r in m["runs"]], "wins": m["wins"],
                      "epoch_ratio": m["epoch_ratio"], "chosen": n == summary["chosen_on_val"]}
    base = summary["methods"]["baseline"]
    return {"command": command, "teacher": summary["teacher"] / 100,
            "baseline": {"test_mean": base["test_mean"] / 100, "test_std": base["test_std"] / 100,
                         "val_mean": _fraction(base["val_mean"]),
                         "runs": [r / 100 for r in base["runs"]]},
            "methods": methods, "chosen": summary["chosen_on_val"]}


if __name__ == "__main__":
    sys.exit(main())
