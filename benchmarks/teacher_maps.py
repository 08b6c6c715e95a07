"""How far whole-image teacher maps are from a live teacher on each crop, and what each costs.

For a dense teacher (default: the published HED VGG-16 on BSDS500 training
images) it compares, as edge probabilities, the teacher's map of the whole
image, cropped / flipped / rotated, with the teacher run live on the crop /
flipped / rotated image: the two differences `kd_keras.teachers.maps` makes.
It also times the teacher on one whole image against one crop, interleaved.

    python benchmarks/teacher_maps.py --data ../shared/data/bsds500 --images 8

Needs the `teachers` extra (`pip install -e ".[teachers]"`) for hed_vgg16.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import tensorflow as tf

from kd_keras.data.edges import load_bsds
from kd_keras.models import create_model

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench_common, also when imported
from bench_common import check_paths, one_line_errors  # noqa: E402


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="a BSDS500-layout folder")
    p.add_argument("--images", type=int, default=8, help="training images compared")
    p.add_argument("--patch", type=int, default=160, help="crop side (the recipe's data.patch_size)")
    p.add_argument("--model", default="hed_vgg16")
    p.add_argument("--weights", default="bsds500")
    args = p.parse_args(argv)
    check_paths(folders={"--data": args.data})

    splits = load_bsds(args.data, ["train"], [], ["test"], args.patch, 0.0, 0, args.images)
    teacher = create_model(args.model, input_shape=(None, None, 3), weights=args.weights)
    spec = tf.TensorSpec((1, None, None, 3), tf.float32)
    forward = tf.function(lambda x: tf.sigmoid(teacher(x, training=False)), input_signature=[spec])

    def prob(image):
        return forward(tf.constant(np.asarray(image, np.float32)[None])).numpy()[0, ..., 0]

    rng = np.random.default_rng(0)
    border, flip, rot = ("the whole image's map, cut to the crop", "the crop's map flipped, vs the flipped crop's",
                         "the crop's map rotated 90 degrees, vs the rotated crop's")
    diffs = {border: [], flip: [], rot: []}
    edge_share, agree = [], []
    whole_s, crop_s = [], []
    for _, image, _, _ in splits.train:
        start = time.perf_counter()
        whole = prob(image)
        whole_s.append(time.perf_counter() - start)
        h, w = image.shape[:2]
        y, x = rng.integers(0, h - args.patch + 1), rng.integers(0, w - args.patch + 1)
        crop = image[y: y + args.patch, x: x + args.patch]
        start = time.perf_counter()
        live = prob(crop)
        crop_s.append(time.perf_counter() - start)
        cut = whole[y: y + args.patch, x: x + args.patch]
        diffs[border].append(np.abs(cut - live).mean())
        agree.append(np.mean((cut > 0.5) == (live > 0.5)))
        diffs[flip].append(np.abs(prob(crop[:, ::-1]) - live[:, ::-1]).mean())
        diffs[rot].append(np.abs(prob(np.rot90(crop)) - np.rot90(live)).mean())
        edge_share.append(live.mean())

    print(f"# Whole-image teacher maps against a live teacher: {args.model} ({args.weights}), "
          f"{len(splits.train)} BSDS500 training images, {args.patch}-px crops\n")
    print(f"Mean edge probability of the live teacher on a crop: {np.mean(edge_share):.4f}\n")
    print("| compared with the live teacher on the crop | mean abs. probability difference (max over images) |")
    print("|---|---|")
    for name, values in diffs.items():
        print(f"| {name} | {np.mean(values):.4f} ({np.max(values):.4f}) |")
    print(f"\nPixels on the same side of 0.5 (whole-image map cropped vs live crop): {100 * np.mean(agree):.2f}%")
    ratio = np.median(whole_s[1:] or whole_s) / np.median(crop_s[1:] or crop_s)
    print(f"Teacher time, one whole image / one {args.patch}-px crop (medians, first call dropped): {ratio:.2f}")


if __name__ == "__main__":
    sys.exit(one_line_errors(main))
