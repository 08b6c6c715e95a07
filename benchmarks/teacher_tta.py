"""Does HED's multi-scale test make a better edge teacher? ODS/OIS/AP of its maps, one pass against averaged.

Scores the teacher's map of each image (default: the published HED VGG-16
on the first 50 BSDS500 validation images, 19 thresholds, as the recipe's
validation rounds) as one pass and as `kd_keras.TeacherMapsCache` makes
it with `scales` / `flip`: the mean sigmoid probability over the scales
(and mirror images). These are the maps a KD student with
`teacher_scales` learns from, on images no student trained on.

    python benchmarks/teacher_tta.py --data ../shared/data/bsds500 --split val --images 50 \
        --scales 0.5 1 1.5

Needs the `teachers` and `edges` extras (`pip install -e ".[teachers,edges]"`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from kd_keras import TeacherMapsCache
from kd_keras.data.edges import load_bsds
from kd_keras.distiller import Distiller
from kd_keras.losses import EdgeKDLoss
from kd_keras.metrics.edges import boundary_scores
from kd_keras.models import create_model

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench_common, also when imported
from bench_common import check_paths, one_line_errors  # noqa: E402


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="a BSDS500-layout folder")
    p.add_argument("--split", default="val", help="images scored (never the student's training images)")
    p.add_argument("--images", type=int, default=50, help="the first N images of the split")
    p.add_argument("--thresholds", type=int, default=19)
    p.add_argument("--scales", type=float, nargs="+", default=[0.5, 1.0, 1.5])
    p.add_argument("--flip", action="store_true", help="also score the scales with mirror images")
    p.add_argument("--model", default="hed_vgg16")
    p.add_argument("--weights", default="bsds500")
    args = p.parse_args(argv)
    check_paths(folders={"--data": args.data})

    splits = load_bsds(args.data, ["train"], [], [args.split], 160, 0.0, 0, None)
    examples = [e for ex in splits.test.values() for e in ex][: args.images]
    teacher = create_model(args.model, input_shape=(None, None, 3), weights=args.weights)
    student = create_model("edge_unet", input_shape=(None, None, 3), widths=(4, 8, 8, 16))  # unused, for the API
    extract = Distiller(student=student, teacher=teacher, distillation_losses=[EdgeKDLoss()]).teacher_outputs
    settings = [((1.0,), False), (tuple(args.scales), False)] + ([(tuple(args.scales), True)] if args.flip else [])
    print(f"{args.model} ({args.weights}) on the first {len(examples)} {args.split} images, "
          f"{args.thresholds} thresholds")
    print("| teacher map | ODS | OIS | AP | pass (s) |\n|---|---|---|---|---|")
    for scales, flip in settings:
        cache = TeacherMapsCache(extract, "", storage="memory", verbose=0, scales=scales, flip=flip)
        start = time.perf_counter()
        maps = cache.maps([e[1] for e in examples])
        seconds = time.perf_counter() - start
        probs = [1 / (1 + np.exp(-m[..., 0].astype(np.float32))) for m in maps]
        s = boundary_scores(probs, [e[3] for e in examples], n_thresholds=args.thresholds)
        print(f"| {cache.tta} | {s['ods']:.3f} | {s['ois']:.3f} | {s['ap']:.3f} | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    sys.exit(one_line_errors(main))
