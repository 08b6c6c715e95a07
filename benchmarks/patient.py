"""Patient, consistent teaching: test accuracy against the length of the schedule, baseline and KD on one plot.

Beyer et al. (CVPR 2022, "Knowledge distillation: A good teacher is patient
and consistent") show that a student taught on the teacher's labels of its own
exact, strongly mixed views (function matching) keeps improving over long
schedules, where a student trained on labels alone stops. This benchmark runs
`benchmarks/kd_methods.py` once per schedule length (the recipe's epochs times
each of `--multipliers`), every length with the same seeds, initial weights and
batches: the no-teacher baseline, and each of `--methods` at that length
(default: `kd`, the recipe's KD, and `fm`, function matching: MixUp views for
teacher and student alike, KD at T = 1 alone). With `train.teacher_views =
"epochs"` each epoch shows every image a view it has not shown before, and the
views pass costs one teacher epoch per student epoch, once per length and seed
(on cifar10_small a ResNet-56 epoch is about 2.5 small_cnn epochs; with
`--set train.teacher_views_runtime=tflite_int8` about 0.6 of one, so a KD
schedule then costs about 1.6x the baseline's).

It writes one plot (test accuracy mean and spread against epochs, per method,
the teacher as a line), a markdown table and, with `--json`, the table as JSON
(accuracies as fractions). Every length keeps its runs in `<out>/x<m>/`, so the
same command continues after an interruption.

Usage:
    python benchmarks/patient.py --config recipes/cifar10_small.toml --data ../shared/data/cifar10_small.npz \\
        --teacher saved_models/cifar10_small_resnet56.keras --seeds 0 1 2 --multipliers 1 3 5 10 \\
        --out runs/patient_cifar10_small --json recipes/results/patient_cifar10_small.json \\
        --plot recipes/results/patient_cifar10_small.png

Exits 2 on bad input, 0 when it ran.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="recipes/digits.toml", help="classification recipe")
    p.add_argument("--data", help="dataset path for the recipe (its data.path)")
    p.add_argument("--teacher", help="a trained teacher (.keras); default: the first run trains it")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--multipliers", type=int, nargs="+", default=[1, 3, 5, 10],
                   help="schedule lengths, as multiples of the recipe's epochs")
    p.add_argument("--methods", nargs="+", default=["kd", "fm"], help="kd_methods presets, run at every length")
    p.add_argument("--epochs", type=int, default=0, help="the base epochs (0: the recipe's)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="recipe override")
    p.add_argument("--out", default="runs/patient", help="output folder")
    p.add_argument("--json", default="", help="also write the table here (accuracies as fractions)")
    p.add_argument("--plot", default="", help="the plot's path (default <out>/patient.png)")
    args = p.parse_args(argv)
    if any(m < 1 for m in args.multipliers) or len(set(args.multipliers)) != len(args.multipliers):
        raise ValueError(f"--multipliers must be distinct integers >= 1, got {args.multipliers}.")
    if args.epochs < 0:
        raise ValueError(f"--epochs must be >= 0 (0: the recipe's), got {args.epochs}.")
    return args


def base_epochs(args) -> int:
    if args.epochs:
        return args.epochs
    from kd_keras.config import load_config

    return load_config(args.config, []).train.epochs


def length_args(args, epochs: int) -> list[str]:
    """kd_methods' arguments for one schedule length: every method at `epochs` epochs."""
    methods = [m if m.split(":")[0] == "kd" else f"{m}{',' if ':' in m else ':'}epochs={epochs}"
               for m in args.methods]
    out = ["--config", args.config, "--seeds", *map(str, args.seeds), "--epochs", str(epochs),
           "--methods", *methods, "--out", os.path.join(args.out, f"x{epochs}")]
    if args.data:
        out += ["--data", args.data]
    if args.teacher:
        out += ["--teacher", args.teacher]
    for s in args.set:
        out += ["--set", s]
    return out


def main(argv=None) -> int:
    import kd_methods

    try:
        args = parse(argv)
        if args.teacher and not os.path.isfile(args.teacher):
            raise ValueError(f"--teacher {args.teacher!r} does not exist; give a trained .keras teacher or omit it.")
        for m in args.methods:
            kd_methods.method_entry(m, 1)  # an unknown method: one line, before anything trains
        base = base_epochs(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rows = {}
    for m in sorted(args.multipliers):
        epochs = m * base
        print(f"== schedule x{m}: {epochs} epochs", flush=True)
        code = kd_methods.main(length_args(args, epochs))
        if code:
            return code
        with open(os.path.join(args.out, f"x{epochs}", "summary.json")) as f:
            rows[epochs] = json.load(f)
        if args.teacher is None:  # the first length trained it; the others reuse it
            args.teacher = os.path.join(args.out, f"x{epochs}", f"seed{args.seeds[0]}", "teacher.keras")
    table = build_table(rows, shlex.join(["python", "benchmarks/patient.py", *(sys.argv[1:] if argv is None
                                                                              else argv)]))
    text = markdown(table)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "patient.md"), "w") as f:
        f.write(text)
    plot(table, args.plot or os.path.join(args.out, "patient.png"))
    if args.json:
        from kd_keras.benchmark.report import write_json_atomic

        write_json_atomic(args.json, table)
    print("\n" + text, flush=True)
    return 0


def build_table(rows: dict, command: str) -> dict:
    """`{epochs: summary}` from kd_methods as one table: per method, per length, mean, spread and runs."""
    methods: dict = {}
    for epochs, summary in sorted(rows.items()):
        for name, m in summary["methods"].items():
            key = name.split("@")[0]
            methods.setdefault(key, {})[str(epochs)] = {
                "test_mean": m["test_mean"] / 100, "test_std": m["test_std"] / 100,
                "runs": [r / 100 for r in m["runs"]], "gap_recovered": m.get("gap_recovered")}
    teacher = statistics.mean(s["teacher"] for s in rows.values()) / 100
    best = max(((k, e, v["test_mean"]) for k, by in methods.items() for e, v in by.items()), key=lambda t: t[2])
    return {"command": command, "teacher": teacher, "epochs": sorted(rows), "methods": methods,
            "best": {"method": best[0], "epochs": int(best[1]), "test_mean": best[2]},
            "student_reached_teacher": best[2] >= teacher}


def markdown(t: dict) -> str:
    lines = [f"# Patient teaching: test accuracy against the schedule\n\nCommand: `{t['command']}`\n",
             f"Teacher {100 * t['teacher']:.2f}% (test).\n",
             "| method | " + " | ".join(f"{e} epochs" for e in t["epochs"]) + " |",
             "|---|" + "---|" * len(t["epochs"])]
    for name, by in t["methods"].items():
        cells = [f"{100 * by[str(e)]['test_mean']:.2f} ± {100 * by[str(e)]['test_std']:.2f}" if str(e) in by else "-"
                 for e in t["epochs"]]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    b = t["best"]
    verdict = "at or above" if t["student_reached_teacher"] else "below"
    lines += ["", f"Best: {b['method']} at {b['epochs']} epochs, {100 * b['test_mean']:.2f}%, {verdict} the teacher "
                  f"(moonshot: a student at or above its teacher)."]
    return "\n".join(lines) + "\n"


def plot(t: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, by in t["methods"].items():
        xs = [e for e in t["epochs"] if str(e) in by]
        mean = [100 * by[str(e)]["test_mean"] for e in xs]
        std = [100 * by[str(e)]["test_std"] for e in xs]
        ax.errorbar(xs, mean, yerr=std, marker="o", capsize=3, label=name)
    ax.axhline(100 * t["teacher"], color="k", linestyle="--", label="teacher")
    ax.set_xlabel("student epochs")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Patient teaching: accuracy against the schedule")
    ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
