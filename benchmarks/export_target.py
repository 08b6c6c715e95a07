"""Deployment target: the int8 TFLite KD student against the teacher's fp32 TFLite.

Exports the teacher (fp32) and the KD student (fp32 and int8) of a finished
recipe run, measures all three in one benchmark run (LiteRT, batch 1, the
same thread count, each model in its own process) and prints the ratios
against the targets:
- the int8 student is at least 10x faster per image than the teacher's fp32 TFLite;
- it is at least 10x smaller;
- it loses at most 0.5 pt of accuracy against its own fp32 TFLite.

Usage (after the CIFAR-10 recipe, which writes runs/cifar10_small):
    python benchmarks/export_target.py --run runs/cifar10_small \\
        --data npz:../shared/data/cifar10_small.npz [--threads 2] [--out runs/export_target]

Exits 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import os
import sys

TARGETS = {"speedup": 10.0, "size_ratio": 10.0, "max_accuracy_loss_pt": 0.5}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default="runs/cifar10_small", help="recipe output dir with teacher.keras and kd.keras")
    p.add_argument("--student", default="kd", help="the KD student's name in the run (kd)")
    p.add_argument("--data", required=True,
                   help="DATASPEC of the run's data, e.g. npz:../shared/data/cifar10_small.npz")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=200, help="timed batch-1 runs per model (200)")
    p.add_argument("--out", default="runs/export_target")
    args = p.parse_args(argv)

    from kd_keras.benchmark import benchmark
    from kd_keras.export import export_model

    os.makedirs(args.out, exist_ok=True)
    files = {}
    try:
        for key, name, quantize in (("teacher", "teacher", "none"), ("fp32", args.student, "none"),
                                    ("int8", args.student, "int8")):
            files[key] = os.path.join(args.out, f"{name}.{'int8' if quantize == 'int8' else 'fp32'}.tflite")
            export_model(os.path.join(args.run, f"{name}.keras"), "tflite", files[key], quantize, args.data,
                         overwrite=True, threads=args.threads)
        results = benchmark(list(files.values()), args.data, args.out, args.threads, args.runs, overwrite=True,
                            command=" ".join(["python", "benchmarks/export_target.py", *(argv or sys.argv[1:])]))
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rows = {r["name"]: r for r in results["models"]}
    teacher, fp32, int8 = (rows[os.path.basename(files[k])] for k in ("teacher", "fp32", "int8"))
    measured = {
        "speedup": teacher["latency_ms_median"] / int8["latency_ms_median"],
        "size_ratio": teacher["size_bytes"] / int8["size_bytes"],
        "max_accuracy_loss_pt": 100 * (fp32["accuracy"] - int8["accuracy"]),
    }
    print(f"\nint8 KD student vs teacher fp32 TFLite, batch 1, {args.threads} threads "
          f"(teacher {teacher['latency_ms_median']:.3f} ms, {teacher['size_bytes'] / 1e6:.3f} MB, "
          f"{100 * teacher['accuracy']:.2f}%; student fp32 {fp32['latency_ms_median']:.3f} ms, "
          f"{100 * fp32['accuracy']:.2f}%; int8 {int8['latency_ms_median']:.3f} ms, "
          f"{int8['size_bytes'] / 1e6:.3f} MB, {100 * int8['accuracy']:.2f}%):")
    missed = 0
    for key, target in TARGETS.items():
        value = measured[key]
        ok = value <= target if key.startswith("max_") else value >= target
        missed += not ok
        print(f"  {key:22s} {value:8.2f}   target {'<=' if key.startswith('max_') else '>='} {target:g}   "
              f"{'PASS' if ok else 'MISS'}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
