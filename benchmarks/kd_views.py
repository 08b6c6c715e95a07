"""Augmented KD without a live teacher: what the stored-views cache costs and what it keeps.

On a recipe with random augmentation (default: `recipes/cifar10_small.toml`,
flip + pad-4 crop), it measures in one run:

1. the one-time views pass (`kd_keras.TeacherViewsCache`, K views per image;
   default K = the epochs, one new view per image per epoch), and one teacher
   epoch (the same pass with K = 1), so the pass is also given as a multiple
   of a teacher epoch;
2. epoch times, interleaved round by round on the same batches and the same
   augmentation: the no-teacher baseline, KD from the stored views, and KD
   with the teacher running live. Target: views KD / baseline <= 1.15. An
   epoch is the steps per epoch times the median step of epochs 2..N (as in
   `kd_overhead.py`; median wall times are printed beside it);
3. accuracy: KD from the stored views against live-teacher KD, each for
   `--epochs` epochs and for every seed of `--seeds`, from the same initial
   weights and the same batch order, with the recipe's optimizer, schedule
   and KD loss (its first `[[distill]]` entry). Target: the views mean within
   0.3 pt of the live mean. Nothing is tuned here. All seeds share one
   train/validation split (seed 0's), so one views pass serves them all.
   `--variants` adds the no-teacher baseline (then the gap to the teacher
   recovered is printed) and KD from views whose pass ran the teacher as
   int8 TFLite (`train.teacher_views_runtime = "tflite_int8"`: its cost).
   Runs go seed by seed, each seed's variants in the order given.

Finished accuracy runs are recorded in `<out>/runs.json`, so the same
command continues after an interruption; the views caches are kept in
`<out>/teacher_cache` and reused. `--json` also writes the accuracy table
(fractions) for `recipes/results/`. A missed target is said in the report;
the exit code is 0 when the benchmark ran, 2 on bad input.

Usage:
    python benchmarks/kd_views.py --data ../shared/data/cifar10_small.npz \\
        --teacher saved_models/cifar10_small_resnet56.keras --seeds 0 1 2 3 4 --epochs 40 \\
        --variants "KD views" "KD live" baseline "KD views int8" --json recipes/results/kd_views_cifar10_small.json
    python benchmarks/kd_views.py --config recipes/digits.toml --teacher T.keras --seeds 0 --epochs 2  # quick
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # kd_overhead's EpochTimer, also when imported
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from bench_common import load_recipe, load_runs, run_cli  # noqa: E402

TARGETS = {"views_vs_baseline": 1.15, "accuracy_gap_pt": 0.3}
TIMED = ("baseline", "KD views", "KD live")
VARIANTS = ("KD views", "KD live", "baseline", "KD views int8")


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="recipes/cifar10_small.toml", help="classification recipe (augmentation, "
                                                                          "optimizer, student, KD loss)")
    p.add_argument("--data", help="dataset path for the recipe (its data.path)")
    p.add_argument("--teacher", required=True, help="the trained teacher, a .keras file")
    p.add_argument("--views", default="epochs", help="K, stored views per image: \"epochs\" (one per epoch of "
                                                      "--epochs) or a number")
    p.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2], help="training seeds of the accuracy runs")
    p.add_argument("--epochs", type=int, default=40, help="epochs of each accuracy run (0: skip them)")
    p.add_argument("--timing-epochs", type=int, default=3, help="epochs per timed variant and round (>= 2)")
    p.add_argument("--rounds", type=int, default=2, help="interleaved timing rounds")
    p.add_argument("--limit", type=int, default=0, help="keep at most this many train/test images (0: all)")
    p.add_argument("--variants", nargs="+", default=["KD views", "KD live"], help=f"accuracy runs, of {VARIANTS}")
    p.add_argument("--json", default="", help="also write the accuracy table here (recipes/results/...json)")
    p.add_argument("--out", default="runs/kd_views", help="progress, views cache and JSON output folder")
    args = p.parse_args(argv)
    args.views = args.views if args.views == "epochs" else int(args.views) if args.views.isdigit() else 0
    bad = [v for v in args.variants if v not in VARIANTS]
    if bad or len(set(args.variants)) != len(args.variants):
        raise ValueError(f"--variants must be distinct names from {', '.join(VARIANTS)}; got {args.variants}.")
    if args.views == 0 or args.epochs < 0 or args.timing_epochs < 2 or args.rounds < 0 or not args.seeds:
        raise ValueError(f"--views must be \"epochs\" or >= 1, --epochs >= 0, --timing-epochs >= 2, --rounds >= 0 "
                         f"(0: no timing) and --seeds non-empty, got {args.views}, {args.epochs}, "
                         f"{args.timing_epochs}, {args.rounds}, {args.seeds}.")
    if not os.path.isfile(args.teacher):
        raise FileNotFoundError(f"--teacher {args.teacher!r} does not exist; give a trained .keras teacher.")
    return args


def main(argv=None) -> int:
    return run_cli(argv, parse, Bench, print_report)


class Bench:
    def __init__(self, args):
        from kd_keras.losses import create_loss

        self.args = args
        self.cfg, self.task, self.splits = load_recipe(args, need_augmentation=True)
        d = self.cfg.distill[0]
        if d.augment or d.epochs:
            raise ValueError(f"{args.config}: the first [[distill]] entry {d.name!r} sets its own "
                             f"{'augment' if d.augment else 'epochs'}; this benchmark trains every variant on the "
                             f"recipe's augmentation and --epochs (use benchmarks/kd_methods.py for it).")
        self.teacher = keras.saving.load_model(args.teacher, compile=False)
        self.teacher.trainable = False
        self.kd = d
        self.loss = lambda: [create_loss(x.method, kind="distill", **x.options) for x in d.losses]
        os.makedirs(args.out, exist_ok=True)
        self.runs_path = os.path.join(args.out, "runs.json")
        self.runs = load_runs(self.runs_path)
        self.stored, self.stored_int8 = None, None
        from kd_keras.teachers.views import resolve_views

        self.k = resolve_views(args.views, max(args.epochs, 1))

    # ------------------------------------------------------------- pieces
    def student(self, seed):
        keras.utils.set_random_seed(seed)
        return self.task.create_model(self.cfg.student, self.splits)

    def distiller(self, variant, seed, epochs):
        from kd_keras import Distiller
        from kd_keras.training.optim import make_optimizer

        s = self.student(seed)
        steps = -(-self.splits.num_train // self.cfg.data.batch_size)
        if variant == "baseline":
            d = Distiller(student=s)
        else:
            d = Distiller(self.teacher, s, self.loss(), [x.weight for x in self.kd.losses], self.kd.student_loss_weight,
                          distill_warmup_steps=self.kd.warmup_epochs * steps)  # DKD's warm-up, as the recipes run it
        d.compile(make_optimizer(self.cfg.train, self.cfg.train.learning_rate, epochs, steps),
                  self.task.hard_loss(self.cfg.train.hard_loss), metrics=self.task.metrics())
        data = self.train_data(variant, d, seed)
        return d, s, data

    def train_data(self, variant, distiller, seed):
        from kd_keras.teachers.targets import TeacherTargets

        self.current = None
        if variant.startswith("KD views"):
            self.current = self.views(distiller, runtime="tflite_int8" if variant.endswith("int8") else "keras")
        stored = TeacherTargets("views", self.current) if self.current is not None else None
        train, _, _ = self.task.pipelines(self.splits, self.cfg.data, seed, stored)
        return train

    def callbacks(self):
        """The fit's callbacks: a stored views' epoch (each epoch its own view)."""
        return [self.current.epoch_callback()] if self.current is not None else []

    def views(self, distiller, k=None, directory="default", runtime="keras"):
        from kd_keras.teachers.cache import teacher_fingerprint
        from kd_keras.teachers.views import TeacherViewsCache

        attr = "stored" if runtime == "keras" else "stored_int8"
        if k is None and getattr(self, attr) is not None:
            return getattr(self, attr)
        key = teacher_fingerprint(self.teacher, distiller.teacher_layers)
        cache = TeacherViewsCache(distiller.teacher_outputs, key, self.cfg.data.augment, self.splits.input_shape,
                                  self.splits.num_classes,
                                  views=k or self.k, seed=0,
                                  directory=os.path.join(self.args.out, "teacher_cache") if directory else None,
                                  storage="auto" if directory else "memory", log=print, runtime=runtime,
                                  teacher=self.teacher)
        stored = cache.views(self.splits.train)
        if k is None:
            setattr(self, attr, stored)
        return stored

    def evaluate(self, student):
        _, val, test = self.task.pipelines(self.splits, self.cfg.data, 0)
        out = {"test": self.task.evaluate(student, test)["accuracy"]}
        if val is not None:
            out["val"] = self.task.evaluate(student, val)["accuracy"]
        return out

    def int8_teacher(self) -> dict:
        """The int8 TFLite teacher the int8 pass runs, on the test split, and both passes' seconds."""
        import tempfile

        import numpy as np

        from kd_keras.export.converters import tflite
        from kd_keras.models.runtimes import LiteRTRuntime

        if self.stored_int8 is None:  # every int8 run was done earlier: read its pass (and seconds) from disk
            self.distiller("KD views int8", 0, 1)
        calib = [x for x, _ in self.splits.train.take(256).as_numpy_iterator()]
        _, _, test = self.task.pipelines(self.splits, self.cfg.data, 0)
        with tempfile.TemporaryDirectory() as d:
            tflite(self.teacher, os.path.join(d, "t.tflite"), "int8", calib)
            rt = LiteRTRuntime(os.path.join(d, "t.tflite"), threads=os.cpu_count())
            hits = total = 0
            for x, y in test.as_numpy_iterator():
                hits += int((rt(x).argmax(-1) == y.argmax(-1)).sum())
                total += len(x)
        passes = {v: getattr(self, attr).info["pass_seconds"] for v, attr in (("keras", "stored"),
                                                                            ("tflite_int8", "stored_int8"))
                  if getattr(self, attr) is not None}
        return {"test": hits / total, "pass_seconds": passes, "examples": int(np.asarray(total))}

    # ---------------------------------------------------------------- run
    def run(self) -> dict:
        from kd_overhead import EpochTimer

        a = self.args
        probe, _, _ = self.distiller("KD live", 0, 1)
        # one teacher epoch: the same pass with one view and no disk copy, the second time (the first traces)
        self.views(probe, k=1, directory=None)
        one = self.views(probe, k=1, directory=None).info
        stored = self.views(probe)
        print(f"views pass: {stored.info['pass_seconds']:.1f} s for K = {self.k} "
              f"({'computed' if stored.info['computed'] else 'read from disk; the time of the pass that wrote it'}); "
              f"one teacher epoch (K = 1): {one['pass_seconds']:.1f} s")
        steps = -(-self.splits.num_train // self.cfg.data.batch_size)
        step_times = {v: [] for v in TIMED}
        wall = {v: [] for v in TIMED}
        for r in range(a.rounds):
            for variant in TIMED:
                d, s, data = self.distiller(variant, 0, a.timing_epochs)
                timer = EpochTimer()
                keras.utils.set_random_seed(0)
                d.fit(data, epochs=a.timing_epochs, callbacks=[timer, *self.callbacks()], verbose=0)
                step_times[variant] += timer.steps
                wall[variant] += timer.times[1:]
                print(f"timing round {r + 1}: {variant:9s} step {1000 * statistics.median(timer.steps):6.1f} ms, "
                      f"epoch wall {statistics.median(timer.times[1:]):6.2f} s")
        epoch = {v: steps * statistics.median(t) for v, t in step_times.items()} if step_times["baseline"] else {}
        for variant, seed in schedule(a.variants, a.seeds) if a.epochs else []:
            name = run_name(variant, seed, a.epochs, self.k)
            if name in self.runs:
                print(f"{name}: done by an earlier run: {self.runs[name]}")
                continue
            d, s, data = self.distiller(variant, seed, a.epochs)
            start = time.perf_counter()
            keras.utils.set_random_seed(seed)
            d.fit(data, epochs=a.epochs, callbacks=self.callbacks(), verbose=0)
            record = {**self.evaluate(s), "seconds": time.perf_counter() - start}
            print(f"{name}: {record}", flush=True)
            self.runs[name] = record
            from kd_keras.benchmark.report import write_json_atomic

            write_json_atomic(self.runs_path, self.runs)
        acc = {v: [self.runs[run_name(v, s, a.epochs, self.k)] for s in a.seeds] for v in a.variants} \
            if a.epochs else {}
        gap = (100 * (statistics.mean(r["test"] for r in acc["KD views"]) -
                      statistics.mean(r["test"] for r in acc["KD live"]))) \
            if "KD views" in acc and "KD live" in acc else None  # both ran
        ratios = {"pass_vs_teacher_epoch": stored.info["pass_seconds"] / max(one["pass_seconds"], 1e-9)}
        met = {}
        if epoch:
            ratios.update(views_vs_baseline=epoch["KD views"] / epoch["baseline"],
                          live_vs_baseline=epoch["KD live"] / epoch["baseline"])
            met["views_vs_baseline"] = ratios["views_vs_baseline"] <= TARGETS["views_vs_baseline"]
        if gap is not None:
            met["accuracy_gap_pt"] = abs(gap) <= TARGETS["accuracy_gap_pt"] or gap > 0
        teacher_test = self.evaluate(self.teacher)["test"] if acc else None
        int8 = self.int8_teacher() if "KD views int8" in a.variants and acc else None
        s = self.splits
        return {
            "command": shlex.join(["python", "benchmarks/kd_views.py", *sys.argv[1:]]),
            "data": f"{s.description}: {s.num_train} train / {s.num_val} val / {s.num_test} test",
            "augment": self.cfg.data.augment.random_ops, "teacher": f"{self.teacher.name} from {a.teacher}",
            "student": self.cfg.student.model, "kd": self.kd.name, "views": self.k,
            "batch_size": self.cfg.data.batch_size,
            "steps_per_epoch": steps, "timing_epochs": a.timing_epochs, "rounds": a.rounds,
            "pass_seconds": stored.info["pass_seconds"], "pass_computed": stored.info["computed"],
            "teacher_epoch_seconds": one["pass_seconds"], "bytes_per_image": stored.info["bytes_per_image"],
            "epoch_seconds": epoch, "epoch_wall_seconds_median": {v: statistics.median(t) for v, t in wall.items()
                                                                   if t},
            "ratios": ratios, "epochs": a.epochs, "seeds": a.seeds, "accuracy": acc, "views_minus_live_pt": gap,
            "teacher_test": teacher_test, "json": a.json, "int8_teacher": int8,
            "met": met, "cpus": os.cpu_count(), "tensorflow": tf.__version__, "keras": keras.__version__,
        }


def run_name(variant: str, seed: int, epochs: int, views: int) -> str:
    """The key of an accuracy run in runs.json; live runs do not depend on K, so runs with another K reuse them."""
    k = f"/K{views}" if variant.startswith("KD views") else ""
    return f"{variant}{k}/seed{seed}/epochs{epochs}"


def schedule(variants, seeds):
    """The order of the accuracy runs: seed by seed, each seed's variants in the order given, so that an
    interrupted benchmark has whole seeds."""
    return [(v, s) for s in seeds for v in variants]


def paired(r: dict, a: str, b: str):
    """Variant `a` minus `b` over the seeds both ran (pt): each seed's difference, mean, sd, paired t and its
    two-sided p. "Measurably loses" is p < 0.05 with a negative mean; None with fewer than 2 shared seeds."""
    acc = r["accuracy"]
    if a not in acc or b not in acc or len(r["seeds"]) < 2:
        return None
    seeds = list(r["seeds"])  # every variant ran every seed, in this order
    diffs = [100 * (x["test"] - y["test"]) for x, y in zip(acc[a], acc[b])]
    mean, sd = statistics.mean(diffs), statistics.stdev(diffs)
    t = mean / (sd / len(diffs) ** 0.5) if sd > 0 else float("inf") * (1 if mean >= 0 else -1)
    from scipy import stats

    p = float(2 * stats.t.sf(abs(t), len(diffs) - 1)) if sd > 0 else 0.0
    return {"seeds": seeds, "diffs_pt": diffs, "mean_pt": mean, "sd_pt": sd, "t": t, "p": p,
            "measurably_loses": bool(mean < 0 and p < 0.05)}


def table(r: dict) -> dict:
    """The accuracy table as `recipes/results/kd_views_*.json` keeps it: fractions, per source its runs."""
    sources = {}
    for v, runs in r["accuracy"].items():
        tests = [x["test"] for x in runs]
        sources[v] = {"test_mean": statistics.mean(tests), "test_std": statistics.stdev(tests) if len(tests) > 1
                      else 0.0, "val_mean": statistics.mean(x.get("val", float("nan")) for x in runs),
                      "runs": tests, "seconds_mean": statistics.mean(x["seconds"] for x in runs)}
    out = {"command": r["command"], "data": r["data"], "teacher": r["teacher"], "teacher_test": r["teacher_test"],
           "student": r["student"], "kd": r.get("kd"), "epochs": r["epochs"], "views": r["views"], "seeds": r["seeds"],
           "sources": sources, "views_minus_live_pt": r["views_minus_live_pt"],
           "target_pt": TARGETS["accuracy_gap_pt"], "met": r["met"].get("accuracy_gap_pt")}
    if "baseline" in sources and r["teacher_test"] is not None:
        gap = r["teacher_test"] - sources["baseline"]["test_mean"]
        out["gap_recovered"] = {v: (s["test_mean"] - sources["baseline"]["test_mean"]) / gap if gap > 0 else None
                                for v, s in sources.items() if v != "baseline"}
    for key, (a, b) in {"views_minus_live_paired": ("KD views", "KD live"),
                        "int8_minus_views_paired": ("KD views int8", "KD views")}.items():
        pair = paired(r, a, b)
        if pair:
            out[key] = pair
    if "KD views int8" in sources and "KD views" in sources:
        out["int8_minus_views_pt"] = 100 * (sources["KD views int8"]["test_mean"] - sources["KD views"]["test_mean"])
    if r.get("int8_teacher"):
        out["int8_teacher"] = r["int8_teacher"]
    return out


def print_report(r: dict) -> None:
    print(f"\ndata: {r['data']}; augmentation: {', '.join(r['augment'])}\nteacher: {r['teacher']}; "
          f"student: {r['student']}; KD: the recipe's first [[distill]] entry, {r.get('kd')!r}\n"
          f"{r['cpus']} CPUs, TF {r['tensorflow']}, Keras {r['keras']}\n")
    print(f"views pass: K = {r['views']}, {r['pass_seconds']:.1f} s "
          f"({r['ratios']['pass_vs_teacher_epoch']:.1f} teacher epochs of {r['teacher_epoch_seconds']:.1f} s), "
          f"{r['bytes_per_image']:,.0f} bytes per image{'' if r['pass_computed'] else ' (read from disk)'}\n")
    ratios, met = r["ratios"], r["met"]
    if r["epoch_seconds"]:
        print(f"batch {r['batch_size']}, {r['steps_per_epoch']} steps per epoch; epoch = steps x the median step of "
              f"epochs 2..{r['timing_epochs']} over {r['rounds']} interleaved round(s)\n")
        print("| variant | epoch (s) | median epoch wall time (s) |\n|---|---|---|")
        for v, t in r["epoch_seconds"].items():
            print(f"| {v} | {t:.2f} | {r['epoch_wall_seconds_median'][v]:.2f} |")
        print(f"\nKD views / baseline epoch  {ratios['views_vs_baseline']:.3f}  target <= "
              f"{TARGETS['views_vs_baseline']:.2f}: {'met' if met['views_vs_baseline'] else 'MISSED'}")
        print(f"KD live / baseline epoch   {ratios['live_vs_baseline']:.3f}")
    if r["accuracy"]:
        print(f"\ntest accuracy after {r['epochs']} epochs (validation in brackets), seeds {r['seeds']}:\n")
        print("| variant | " + " | ".join(f"seed {s}" for s in r["seeds"]) + " | mean | std |")
        print("|---|" + "---|" * (len(r["seeds"]) + 2))
        for v, runs in r["accuracy"].items():
            tests = [100 * x["test"] for x in runs]
            cells = " | ".join(f"{t:.2f}% ({100 * x.get('val', float('nan')):.1f}%)" for t, x in zip(tests, runs))
            std = statistics.stdev(tests) if len(tests) > 1 else 0.0
            print(f"| {v} | {cells} | {statistics.mean(tests):.2f}% | {std:.2f} |")
        if r["views_minus_live_pt"] is not None:
            print(f"\nKD views - KD live: {r['views_minus_live_pt']:+.2f} pt (target: within "
                  f"{TARGETS['accuracy_gap_pt']} pt, or above): {'met' if met['accuracy_gap_pt'] else 'MISSED'}")
        t = table(r)
        for key, what in (("views_minus_live_paired", "KD views - KD live"),
                          ("int8_minus_views_paired", "KD views int8 - KD views")):
            if key in t:
                q = t[key]
                print(f"{what}, paired over seeds {q['seeds']}: " + ", ".join(f"{d:+.2f}" for d in q["diffs_pt"]) +
                      f" pt; mean {q['mean_pt']:+.2f}, sd {q['sd_pt']:.2f}, t = {q['t']:.2f}, p = {q['p']:.2f}: " +
                      ("a measurable loss (p < 0.05)" if q["measurably_loses"]
                       else "not a measurable loss at p < 0.05"))
        if "int8_minus_views_pt" in t:
            print(f"KD views int8 - KD views: {t['int8_minus_views_pt']:+.2f} pt (the pass ran the teacher as int8 "
                  f"TFLite: train.teacher_views_runtime = \"tflite_int8\")")
        if r.get("int8_teacher"):
            i8 = r["int8_teacher"]
            p = i8["pass_seconds"]
            print(f"int8 TFLite teacher: {100 * i8['test']:.2f}% on test against {100 * r['teacher_test']:.2f}% "
                  f"(Keras); views pass " + ", ".join(f"{k} {v:.1f} s" for k, v in p.items()) +
                  (f" ({p['tflite_int8'] / p['keras']:.2f}x)" if len(p) == 2 and p["keras"] else ""))
        if "gap_recovered" in t:
            print(f"teacher {100 * r['teacher_test']:.2f}%; gap to the teacher recovered: " + ", ".join(
                f"{v} {100 * g:.1f}%" for v, g in t["gap_recovered"].items() if g is not None))
        secs = {v: statistics.mean(x["seconds"] for x in runs) for v, runs in r["accuracy"].items()}
        print("mean training time per run: " + ", ".join(f"{v} {s:.0f} s" for v, s in secs.items()))
        if r.get("json"):
            from kd_keras.benchmark.report import write_json_atomic

            write_json_atomic(r["json"], t)
            print(f"table written to {r['json']}")
    print(f"command: {r['command']}")


if __name__ == "__main__":
    sys.exit(main())
