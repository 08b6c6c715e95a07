"""How hard does each edge loss pull? The gradient norm of each term on a student's logits, per batch.

A distillation weight only means something next to the label loss: this
prints, on the recipe's own training crops, the norm of the gradient of
`balanced_bce` (labels) and of each distillation term (teacher's map) with
respect to a trained student's edge logits, and the weight that would make
each term pull as hard as the label loss. Used to pick `cwd`'s weight for
recipes/results/bsds500_val_search_cwd.toml (no ODS is looked at).

    python benchmarks/edge_loss_scales.py --config recipes/bsds500.toml --data ../shared/data/bsds500 \
        --teacher runs/val_tta_seed0/teacher.keras --student runs/val_tta_seed0/baseline.keras

Any recipe run's `teacher.keras` and `baseline.keras` serve.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench_common, also when imported
from bench_common import check_paths, one_line_errors  # noqa: E402


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="an edge-detection recipe (its data and crops)")
    p.add_argument("--data", required=True, help="its data folder")
    p.add_argument("--teacher", required=True, help="the teacher, a .keras file")
    p.add_argument("--student", required=True, help="a trained student, a .keras file")
    p.add_argument("--batches", type=int, default=4)
    args = p.parse_args(argv)
    check_paths(files={"--config": args.config, "--teacher": args.teacher, "--student": args.student},
                folders={"--data": args.data})

    import keras
    import tensorflow as tf

    from kd_keras.config import load_config
    from kd_keras.losses import create_loss
    from kd_keras.tasks.edge_detection import EdgeDetectionTask

    cfg = load_config(args.config, [f"data.path={json.dumps(args.data)}"])  # as a recipe's --data
    task = EdgeDetectionTask()
    train = task.pipelines(task.load(cfg.data, 0), cfg.data, 0)[0]
    teacher, student = keras.models.load_model(args.teacher), keras.models.load_model(args.student)
    label = create_loss("balanced_bce", kind="supervised")
    terms = {"edge_kd (thick map)": create_loss("edge_kd"), "edge_kd thin": create_loss("edge_kd", thin=True),
             "cwd T=1": create_loss("cwd", temperature=1.0), "cwd T=4": create_loss("cwd", temperature=4.0)}

    def final(outputs):
        return outputs["final_output"] if isinstance(outputs, dict) else outputs

    def norm(fn, s):
        s = tf.Variable(s)
        with tf.GradientTape() as tape:
            value = fn(s)
        return float(tf.norm(tape.gradient(value, s)))

    norms = {name: [] for name in ["balanced_bce (labels)", *terms]}
    for x, y in train.take(args.batches):
        t, s = final(teacher(x, training=False)), final(student(x, training=False))
        norms["balanced_bce (labels)"].append(norm(lambda v: label(y, v), s))
        for name, loss in terms.items():
            norms[name].append(norm(lambda v, loss=loss: loss.compute_loss(t, v), s))
    ref = np.mean(norms["balanced_bce (labels)"])
    print(f"gradient norm on the student's logits, mean of {args.batches} batches of {cfg.data.batch_size} crops")
    print(f"{'term':<24}{'norm':>10}{'weight for the label pull':>28}")
    for name, values in norms.items():
        print(f"{name:<24}{np.mean(values):>10.2e}{ref / np.mean(values):>28.3g}")


if __name__ == "__main__":
    sys.exit(one_line_errors(main))
