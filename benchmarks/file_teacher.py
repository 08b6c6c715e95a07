"""A teacher that is only a file: the same KD student from its ONNX and TFLite exports as from the Keras model?

On a classification recipe with replayable augmentation (default:
`recipes/cifar10_small.toml`, flip + pad-4 crop, 16 stored views per image)
and its trained Keras teacher, it exports the teacher to ONNX (tf2onnx),
TFLite fp32 and TFLite int8 (full-integer weights and activations, float
input and output, 256 training images to calibrate), then for each of the
four teachers, in one run:

1. its test accuracy and its largest logit difference from the Keras
   teacher on the test images (fixed inputs), both through its runtime;
2. the stored-views pass (`kd_keras.TeacherViewsCache`, the one place a file
   teacher runs), timed; the passes run one after another, and ratios to the
   Keras teacher's pass are printed;
3. a KD student per seed of `--seeds`, the recipe's first `[[distill]]`
   entry, from the same initial weights and the same batches whatever the
   teacher. Targets: ONNX and TFLite fp32 outputs within 1e-4 of Keras', and
   each fp32 file's mean student within the seeds' spread (or 0.5 pt) of the
   Keras teacher's.

Finished runs are kept in `<out>/runs.json` and each teacher's views in
`<out>/teacher_cache`, so the same command continues after an interruption.

Usage:
    python benchmarks/file_teacher.py --data ../shared/data/cifar10_small.npz \\
        --teacher saved_models/cifar10_small_resnet56.keras --seeds 0 1 --epochs 40
    python benchmarks/file_teacher.py --config recipes/digits.toml --teacher T.keras --seeds 0 --epochs 1  # quick

Exits 1 if a target is missed, 2 on bad input.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench_common, also when imported
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from bench_common import load_recipe, load_runs, run_cli  # noqa: E402

TEACHERS = ("keras", "onnx", "tflite", "tflite_int8")
FILES = {"onnx": "teacher.onnx", "tflite": "teacher.tflite", "tflite_int8": "teacher_int8.tflite"}
TARGETS = {"output_diff": 1e-4, "accuracy_gap_pt": 0.5}


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="recipes/cifar10_small.toml", help="classification recipe")
    p.add_argument("--data", help="dataset path for the recipe (its data.path)")
    p.add_argument("--teacher", required=True, help="the trained Keras teacher (.keras) that is exported")
    p.add_argument("--views", type=int, default=16, help="K, stored views per image")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="training seeds of the KD students")
    p.add_argument("--epochs", type=int, default=40, help="epochs of each KD student")
    p.add_argument("--limit", type=int, default=0, help="keep at most this many train/test images (0: all)")
    p.add_argument("--out", default="runs/file_teacher", help="exports, views caches, progress and JSON output")
    args = p.parse_args(argv)
    if args.views < 1 or args.epochs < 1:
        raise ValueError(f"--views and --epochs must be >= 1, got {args.views} and {args.epochs}.")
    if not os.path.isfile(args.teacher) or not args.teacher.endswith(".keras"):
        raise FileNotFoundError(f"--teacher {args.teacher!r} is not a .keras file; give the trained Keras teacher.")
    return args


def main(argv=None) -> int:
    return run_cli(argv, parse, Bench, print_report)


class Bench:
    def __init__(self, args):
        self.args = args
        self.cfg, self.task, self.splits = load_recipe(args)
        self.keras_teacher = keras.saving.load_model(args.teacher, compile=False)
        os.makedirs(args.out, exist_ok=True)
        self.runs_path = os.path.join(args.out, "runs.json")
        self.runs = load_runs(self.runs_path)

    def export(self) -> None:
        from kd_keras.export import converters

        train = np.stack([x for x, _ in self.splits.train.take(256).as_numpy_iterator()]).astype("float32")
        for name, file in FILES.items():
            path = os.path.join(self.args.out, file)
            if not os.path.exists(path):
                if name == "onnx":
                    converters.onnx(self.keras_teacher, path)
                else:
                    converters.tflite(self.keras_teacher, path, "int8" if name.endswith("int8") else "none", train)

    def teacher(self, name):
        from kd_keras.teachers.files import load_file_teacher

        if name == "keras":
            return self.keras_teacher
        return load_file_teacher(os.path.join(self.args.out, FILES[name]), self.splits.input_shape)

    def distiller(self, teacher, seed):
        from kd_keras import Distiller
        from kd_keras.losses import create_loss
        from kd_keras.training.optim import make_optimizer

        d = self.cfg.distill[0]
        keras.utils.set_random_seed(seed)
        student = self.task.create_model(self.cfg.student, self.splits)
        losses = [create_loss(l.method, kind="distill", **l.options) for l in d.losses]
        distiller = Distiller(teacher, student, losses, [l.weight for l in d.losses], d.student_loss_weight)
        steps = -(-self.splits.num_train // self.cfg.data.batch_size)
        distiller.compile(make_optimizer(self.cfg.train, self.cfg.train.learning_rate, self.args.epochs, steps),
                          self.task.hard_loss(self.cfg.train.hard_loss), metrics=self.task.metrics())
        return distiller, student

    def views(self, name, teacher, distiller):
        from kd_keras.teachers.cache import teacher_fingerprint
        from kd_keras.teachers.views import TeacherViewsCache

        cache = TeacherViewsCache(distiller.teacher_outputs, teacher_fingerprint(teacher, distiller.teacher_layers),
                                  self.cfg.data.augment, self.splits.input_shape, self.splits.num_classes,
                                  views=self.args.views, seed=0, directory=os.path.join(self.args.out, "teacher_cache"),
                                  log=print)
        return cache.views(self.splits.train)

    def test_images(self):
        xs, ys = zip(*self.splits.test.as_numpy_iterator())
        return np.stack(xs).astype("float32"), np.asarray(ys)

    def run(self) -> dict:
        from kd_keras.teachers.targets import TeacherTargets

        a = self.args
        self.export()
        x, y = self.test_images()
        reference = None
        teachers = {}
        for name in TEACHERS:
            teacher = self.teacher(name)
            logits = np.concatenate([np.asarray(teacher(x[i:i + 256])) for i in range(0, len(x), 256)])
            reference = logits if reference is None else reference
            distiller, _ = self.distiller(teacher, 0)
            stored = self.views(name, teacher, distiller)
            teachers[name] = {"accuracy": float((logits.argmax(-1) == y).mean()),
                              "max_diff": float(np.abs(logits - reference).max()),
                              "pass_seconds": stored.info["pass_seconds"], "pass_computed": stored.info["computed"],
                              "file_bytes": os.path.getsize(os.path.join(a.out, FILES[name])) if name in FILES
                              else os.path.getsize(a.teacher)}
            print(f"{name}: teacher {teachers[name]}")
            for seed in a.seeds:
                key = f"{name}/seed{seed}/epochs{a.epochs}/K{a.views}"
                if key in self.runs:
                    print(f"{key}: done by an earlier run: {self.runs[key]}")
                    continue
                distiller, student = self.distiller(teacher, seed)
                train, val, test = self.task.pipelines(self.splits, self.cfg.data, seed,
                                                        TeacherTargets("views", stored) if stored is not None else None)
                start = time.perf_counter()
                keras.utils.set_random_seed(seed)
                distiller.fit(train, epochs=a.epochs, verbose=0)
                record = {"test": self.task.evaluate(student, test)["accuracy"], "seconds": time.perf_counter() - start}
                if val is not None:
                    record["val"] = self.task.evaluate(student, val)["accuracy"]
                print(f"{key}: {record}")
                self.runs[key] = record
                from kd_keras.benchmark.report import write_json_atomic

                write_json_atomic(self.runs_path, self.runs)
        students = {n: [self.runs[f"{n}/seed{s}/epochs{a.epochs}/K{a.views}"] for s in a.seeds] for n in TEACHERS}
        means = {n: 100 * statistics.mean(r["test"] for r in runs) for n, runs in students.items()}
        spread = max(TARGETS["accuracy_gap_pt"], *(100 * (max(r["test"] for r in runs) - min(r["test"] for r in runs))
                                                   for runs in students.values()))
        met = {f"{n}_outputs": teachers[n]["max_diff"] <= TARGETS["output_diff"] for n in ("onnx", "tflite")}
        met.update({f"{n}_student": abs(means[n] - means["keras"]) <= spread for n in ("onnx", "tflite")})
        s = self.splits
        return {"command": " ".join(["python", "benchmarks/file_teacher.py", *sys.argv[1:]]),
                "data": f"{s.description}: {s.num_train} train / {s.num_val} val / {s.num_test} test",
                "student": self.cfg.student.model, "loss": [l.method for l in self.cfg.distill[0].losses],
                "views": a.views, "epochs": a.epochs, "seeds": a.seeds, "teachers": teachers, "students": students,
                "means": means, "spread_pt": spread, "met": met, "cpus": os.cpu_count(), "tensorflow": tf.__version__,
                "keras": keras.__version__}


def print_report(r: dict) -> None:
    print(f"\ndata: {r['data']}; student {r['student']}, loss {', '.join(r['loss'])}, {r['epochs']} epochs, "
          f"K = {r['views']} stored views\n{r['cpus']} CPUs, TF {r['tensorflow']}, Keras {r['keras']}\n")
    keras_pass = r["teachers"]["keras"]["pass_seconds"]
    print("| teacher | file (MB) | teacher test acc | max logit diff vs Keras | views pass (s) | pass / Keras' | "
          + " | ".join(f"student seed {s}" for s in r["seeds"]) + " | student mean | vs Keras teacher's |")
    print("|---|---|---|---|---|---|" + "---|" * (len(r["seeds"]) + 2))
    for name, t in r["teachers"].items():
        runs = r["students"][name]
        cells = " | ".join(f"{100 * x['test']:.2f}%" for x in runs)
        computed = "" if t["pass_computed"] else " (earlier run)"
        print(f"| {name} | {t['file_bytes'] / 1e6:.2f} | {100 * t['accuracy']:.2f}% | {t['max_diff']:.2e} | "
              f"{t['pass_seconds']:.1f}{computed} | {t['pass_seconds'] / keras_pass:.2f} | {cells} | "
              f"{r['means'][name]:.2f}% | {r['means'][name] - r['means']['keras']:+.2f} pt |")
    print(f"\ntargets: ONNX and TFLite fp32 logits within {TARGETS['output_diff']:g} of Keras'; their mean student "
          f"within {r['spread_pt']:.2f} pt (the largest seed spread, at least {TARGETS['accuracy_gap_pt']} pt) of the "
          f"Keras teacher's")
    for k, v in r["met"].items():
        print(f"  {k}: {'met' if v else 'MISSED'}")
    print(f"command: {r['command']}")


if __name__ == "__main__":
    sys.exit(main())
