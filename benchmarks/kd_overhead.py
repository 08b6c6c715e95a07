"""What distillation costs per epoch, against the student trained alone.

Trains the same student from the same initial weights, on the same batches,
five ways, and prints epoch times and the ratios between them, all measured
in this one run:
- `plain fit`: the student's own `model.fit` (no Distiller);
- `baseline`: `kd_keras.Distiller` without a teacher (the recipes' baseline);
- `KD cached`: kd_keras KD with the teacher's outputs computed once
  (`kd_keras.TeacherOutputCache`; the one pass is timed separately);
- `KD live`: kd_keras KD with the teacher running every step;
- `keras KD live`: `keras.distillation.Distiller` with
  `LogitsDistillation(T, loss=keras.losses.KLDivergence())` (the loss object:
  the default string loss skips the softmax in Keras 3.15.1).

Targets: KD cached / baseline <= 1.10; kd_keras live / keras live <= 1.0 at
the same accuracy within noise; baseline step / plain-fit step <= 1.05.

An epoch time is the steps per epoch times the median step time over epochs
2..N (epoch 1 also traces the step) and over `--rounds` rounds: on a shared
2-core machine a stall can double one epoch's wall time, and the median step
is robust to it (the median epoch wall times are printed beside it). The
variants run interleaved, round by round, so drifting load hits them alike. The data has no random augmentation,
so the cache applies.

Usage:
    python benchmarks/kd_overhead.py                      # digits (offline), a teacher trained here
    python benchmarks/kd_overhead.py --data npz:../shared/data/cifar10_small.npz \\
        --teacher saved_models/cifar10_small_resnet56.keras --epochs 4 --batch-size 128

Exits 1 if a target is missed, 2 on bad input.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

TARGETS = {"cached_vs_baseline": 1.10, "ours_vs_keras_live": 1.0, "baseline_vs_plain_fit": 1.05}
VARIANTS = ("plain fit", "baseline", "KD cached", "KD live", "keras KD live")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="digits", help="classification DATASPEC (digits, npz:FILE, recipes/X.toml)")
    p.add_argument("--teacher", help=".keras teacher (default: train --teacher-model here for --teacher-epochs)")
    p.add_argument("--teacher-model", default="resnet20")
    p.add_argument("--teacher-epochs", type=int, default=8)
    p.add_argument("--student", default="small_cnn", help="registered student model (small_cnn)")
    p.add_argument("--epochs", type=int, default=6, help="epochs per variant and round (>= 2)")
    p.add_argument("--rounds", type=int, default=1, help="interleaved rounds over the five variants")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--temperature", type=float, default=4.0)
    p.add_argument("--learning-rate", type=float, default=3e-3)
    p.add_argument("--json", help="also write the measurements to this JSON file")
    args = p.parse_args(argv)
    if args.epochs < 2 or args.rounds < 1 or args.batch_size < 1:
        print(f"error: --epochs must be >= 2, --rounds and --batch-size >= 1, got {args.epochs}, {args.rounds}, "
              f"{args.batch_size}.", file=sys.stderr)
        return 2
    try:
        result = measure(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print_report(result)
    if args.json:
        from kd_keras.benchmark.report import write_json_atomic

        write_json_atomic(args.json, result)
    return 0 if all(result["met"].values()) else 1


class EpochTimer(keras.callbacks.Callback):
    """Wall time of each epoch, and of each training step after the first epoch."""

    def __init__(self):
        super().__init__()
        self.times, self.steps, self._epoch = [], [], 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._start = time.perf_counter()

    def on_train_batch_begin(self, batch, logs=None):
        self._step = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if self._epoch > 0:  # the first epoch also traces the step
            self.steps.append(time.perf_counter() - self._step)

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def measure(args) -> dict:
    from kd_keras import Distiller
    from kd_keras.config import dataspec
    from kd_keras.data.pipeline import classification_pipeline
    from kd_keras.losses import KDLoss
    from kd_keras.models import create_model
    from kd_keras.tasks import TASKS
    from kd_keras.teachers.cache import TeacherOutputCache, teacher_fingerprint

    task = TASKS["classification"]()
    cfg, splits = dataspec.load(args.data, task)
    shape, classes = splits.input_shape, splits.num_classes

    def pipeline(ds, training, outputs=None):
        return classification_pipeline(ds, classes, shape, args.batch_size if training else 256, training, None,
                                       seed=0, teacher_outputs=outputs)

    train, test = pipeline(splits.train, True), pipeline(splits.test, False)
    # A seeded shuffle reshuffles on each new pass over the same dataset object, so every variant gets a new
    # pipeline: then all of them see the same batches in the same order.
    ce = keras.losses.CategoricalCrossentropy(from_logits=True)

    if args.teacher:
        teacher = keras.saving.load_model(args.teacher, compile=False)
        teacher_note = f"loaded from {args.teacher}"
    else:
        keras.utils.set_random_seed(1)
        teacher = create_model(args.teacher_model, classes, shape)
        trainer = Distiller(student=teacher)
        trainer.compile(keras.optimizers.Adam(args.learning_rate), ce)
        print(f"training the teacher ({args.teacher_model}, {args.teacher_epochs} epochs)")
        trainer.fit(train, epochs=args.teacher_epochs, verbose=0)
        teacher_note = f"{args.teacher_model} trained here for {args.teacher_epochs} epochs"
    teacher.trainable = False

    keras.utils.set_random_seed(0)
    init = create_model(args.student, classes, shape).get_weights()

    def student():
        model = create_model(args.student, classes, shape)
        model.set_weights(init)
        return model

    def optimizer():
        return keras.optimizers.Adam(args.learning_rate)

    def metrics():
        return [keras.metrics.CategoricalAccuracy(name="accuracy")]

    cache_seconds, cached = None, None

    def build(variant):
        nonlocal cache_seconds, cached
        s = student()
        if variant == "plain fit":
            s.compile(optimizer(), ce, metrics=metrics())
            return s, s, pipeline(splits.train, True)
        if variant == "baseline":
            d = Distiller(student=s)
        elif variant == "keras KD live":
            d = keras.distillation.Distiller(
                teacher, s, keras.distillation.LogitsDistillation(args.temperature, loss=keras.losses.KLDivergence()),
                student_loss_weight=0.5)
        else:
            d = Distiller(teacher, s, [KDLoss(args.temperature)], student_loss_weight=0.5)
        d.compile(optimizer(), ce, metrics=metrics())
        if variant != "KD cached":
            return d, s, pipeline(splits.train, True)
        if cached is None:
            start = time.perf_counter()
            cache = TeacherOutputCache(d.teacher_outputs, teacher_fingerprint(teacher, d.teacher_layers),
                                       storage="memory", verbose=0, log=lambda m: None)
            cached = cache.outputs(splits.train)
            cache_seconds = time.perf_counter() - start
        return d, s, pipeline(splits.train, True, cached)

    times = {v: [] for v in VARIANTS}
    step_times = {v: [] for v in VARIANTS}
    accuracy = {v: [] for v in VARIANTS}
    steps = sum(1 for _ in train)
    for r in range(args.rounds):
        for variant in VARIANTS:
            model, s, data = build(variant)
            timer = EpochTimer()
            keras.utils.set_random_seed(0)
            model.fit(data, epochs=args.epochs, callbacks=[timer], verbose=0)
            times[variant] += timer.times[1:]
            step_times[variant] += timer.steps
            s.compile(metrics=["categorical_accuracy"], loss=ce)
            accuracy[variant].append(float(s.evaluate(test, verbose=0, return_dict=True)["categorical_accuracy"]))
            print(f"round {r + 1}: {variant:14s} epoch {statistics.median(timer.times[1:]):7.3f} s, step "
                  f"{1000 * statistics.median(timer.steps):6.1f} ms, test accuracy {100 * accuracy[variant][-1]:.2f}%")
    # steps x the median step time: robust to the occasional stall of a shared 2-core machine, which can double
    # one epoch's wall time; the plain epoch medians are reported beside it
    epoch = {v: steps * statistics.median(t) for v, t in step_times.items()}
    ratios = {
        "cached_vs_baseline": epoch["KD cached"] / epoch["baseline"],
        "live_vs_baseline": epoch["KD live"] / epoch["baseline"],
        "ours_vs_keras_live": epoch["KD live"] / epoch["keras KD live"],
        "baseline_vs_plain_fit": epoch["baseline"] / epoch["plain fit"],
        "cached_vs_plain_fit": epoch["KD cached"] / epoch["plain fit"],
    }
    return {
        "data": f"{splits.description}: {splits.num_train} train / {splits.num_test} test",
        "teacher": f"{teacher.name} ({teacher.count_params():,} params), {teacher_note}",
        "student": f"{args.student} ({create_model(args.student, classes, shape).count_params():,} params)",
        "batch_size": args.batch_size, "steps_per_epoch": steps, "epochs": args.epochs, "rounds": args.rounds,
        "epoch_seconds": epoch, "epoch_wall_seconds_median": {v: statistics.median(t) for v, t in times.items()},
        "epoch_wall_seconds_all": times,
        "accuracy": {v: statistics.mean(a) for v, a in accuracy.items()},
        "cache_pass_seconds": cache_seconds, "ratios": ratios,
        "met": {k: ratios[k] <= t for k, t in TARGETS.items()},
        "cpus": os.cpu_count(), "tensorflow": tf.__version__, "keras": keras.__version__,
        "command": " ".join(["python", "benchmarks/kd_overhead.py", *sys.argv[1:]]),
    }


def print_report(r: dict) -> None:
    print(f"\ndata: {r['data']}\nteacher: {r['teacher']}\nstudent: {r['student']}")
    print(f"batch {r['batch_size']}, {r['steps_per_epoch']} steps per epoch; epoch = steps x the median step of "
          f"epochs 2..{r['epochs']} over {r['rounds']} round(s); {r['cpus']} CPUs, TF {r['tensorflow']}, "
          f"Keras {r['keras']}\n")
    print("| variant | epoch (s) | step (ms) | median epoch wall time (s) | test accuracy |\n|---|---|---|---|---|")
    for v, t in r["epoch_seconds"].items():
        print(f"| {v} | {t:.3f} | {1000 * t / r['steps_per_epoch']:.2f} | {r['epoch_wall_seconds_median'][v]:.3f} | "
              f"{100 * r['accuracy'][v]:.2f}% |")
    print(f"\nteacher-output cache: one pass of {r['cache_pass_seconds']:.2f} s (once per run, not per epoch)\n")
    ratios, met = r["ratios"], r["met"]
    lines = [
        ("KD cached / baseline epoch", "cached_vs_baseline"),
        ("KD live / baseline epoch", "live_vs_baseline"),
        ("kd_keras KD live / keras.distillation KD live", "ours_vs_keras_live"),
        ("Distiller baseline step / plain model.fit step", "baseline_vs_plain_fit"),
        ("KD cached / plain model.fit epoch", "cached_vs_plain_fit"),
    ]
    for label, key in lines:
        target = TARGETS.get(key)
        verdict = f"target <= {target:.2f}: {'met' if met[key] else 'MISSED'}" if target else ""
        print(f"{label:50s} {ratios[key]:6.3f}  {verdict}")
    acc = r["accuracy"]
    print(f"\naccuracy, kd_keras KD live vs keras.distillation KD live: {100 * acc['KD live']:.2f}% vs "
          f"{100 * acc['keras KD live']:.2f}%; KD cached {100 * acc['KD cached']:.2f}%")
    print(f"command: {r['command']}")


if __name__ == "__main__":
    sys.exit(main())
