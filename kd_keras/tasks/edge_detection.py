"""Edge detection: per-pixel boundary logits, class-balanced BCE, BSDS ODS/OIS."""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from kd_keras.data.edges import load_bsds, load_synthetic
from kd_keras.data.images import DenseSplits, drop_small
from kd_keras.metrics.edges import PixelF1, boundary_scores, missing_benchmark
from kd_keras.tasks.base import Task, center_crops, random_crops, single_image_forward
from kd_keras.teachers.cache import FINAL
from kd_keras.teachers.maps import split_maps

DEFAULT_PATCH = 96


def _image_and_label(example, teacher_map=None, exact=False) -> np.ndarray:
    """Image, label (and the teacher's map) as one HxWxC array, so that crops and flips treat them alike.

    uint8, unless there is a map or `exact`: then float16, where 0-255
    integers are exact and an unlabelled (transfer) image's NaN label stays
    NaN.
    """
    _, image, label, _ = example
    if teacher_map is None and not exact:
        return np.concatenate([image, np.round(label * 255).astype(np.uint8)[..., None]], axis=-1)
    parts = [image.astype(np.float16), np.round(label * 255).astype(np.float16)[..., None]]
    if teacher_map is not None:
        parts.append(teacher_map.astype(np.float16))
    return np.concatenate(parts, axis=-1)


class EdgeDetectionTask(Task):
    """Edge detection, scored with the BSDS benchmark (ODS, OIS, AP).

    Data sources: "shapes" (the synthetic default) and "bsds" (the BSDS500
    layout, see `kd_keras.data.edges.load_bsds`). Training uses random
    crops with flips and 90-degree rotations; the test split is scored on
    whole images.
    """

    name = "edge_detection"
    accepts = ("maps",)
    metric = "ods"
    metric_label = "ODS"
    default_hard_loss = {"method": "balanced_bce"}
    sources = ("shapes", "bsds")
    default_timing_size = 320

    def missing_extra(self) -> str:
        return missing_benchmark()

    def smoke_overrides(self):
        return ["data.limit=12", "data.repeats=1", "report.edge_thresholds=9", "report.workers=1",
                "report.image_size=64"]

    def load(self, cfg, seed: int) -> DenseSplits:
        self.check_source(cfg.source)
        patch = cfg.patch_size or DEFAULT_PATCH
        if cfg.source == "shapes":
            size = cfg.image_size or 96
            if patch > size:
                raise ValueError(f"data.patch_size={patch} is larger than the synthetic images ({size} px); "
                                 f"lower data.patch_size or raise data.image_size.")
            n = cfg.limit or 0
            return load_synthetic(min(n, 300) if n else 300, min(n, 40) if n else 40, min(n, 40) if n else 40,
                                  size, seed)
        return load_bsds(cfg.resolved_path(), cfg.train_sets or ["train"], cfg.val_sets, cfg.test_sets or ["test"],
                         patch, cfg.val_fraction, seed, cfg.limit)

    def samples_per_epoch(self, splits, data_cfg) -> int:
        return splits.num_train * max(1, data_cfg.repeats)

    def maps_blocker(self, data_cfg) -> str:
        return ""

    def transfer_blocker(self) -> str:
        return ""

    def with_transfer(self, splits, images: list, data_cfg) -> DenseSplits:
        """`splits` with unlabelled transfer images added to the training examples.

        Their label is NaN everywhere, which `balanced_bce` and the pixel F1
        ignore, so only the teacher's map (the distillation losses) teaches
        on them. Images smaller than the training crop are dropped with a
        counted warning.
        """
        patch = data_cfg.patch_size or DEFAULT_PATCH
        examples = [(f"transfer/{name}", image, np.full(image.shape[:2], np.nan, np.float32),
                     np.zeros((0, *image.shape[:2]), bool)) for name, image in images]
        examples, _ = drop_small(examples, patch, "transfer", size=lambda e: e[1].shape[:2])
        return dataclasses.replace(splits, train=splits.train + examples,
                                   description=f"{splits.description} + {len(examples)} unlabelled transfer images")

    def map_images(self, splits) -> list:
        return [e[1] for e in splits.train]

    def pipelines(self, splits, cfg, seed: int, targets=None):
        """Returns (train, val, test): batched random training crops, centre-cropped validation, test examples.

        Args:
            targets: `TeacherTargets` of kind "maps": the teacher's map of
                each whole training image (aligned with `map_images`), with
                their `layout`; training batches are then
                `(images, labels, {"final_output": maps, ...})`, each map
                cropped, flipped and rotated with its image.
        """
        self.check_targets(targets)
        teacher_maps, teacher_layout = (targets.data, targets.layout) if targets is not None else (None, None)
        patch = cfg.patch_size or DEFAULT_PATCH
        maps = teacher_maps if teacher_maps is not None else [None] * len(splits.train)
        layout = teacher_layout or [(FINAL, maps[0].shape[-1] if teacher_maps else 0)]
        exact = any(np.isnan(e[2]).any() for e in splits.train)  # transfer images: keep their NaN labels
        stacked = [_image_and_label(e, m, exact) for e, m in zip(splits.train, maps)]

        def split(crop):
            crop = tf.cast(crop, tf.float32)
            return crop[..., :3], crop[..., 3:4] / 255.0

        def split_with_map(crop):
            crop = tf.cast(crop, tf.float32)
            return crop[..., :3], crop[..., 3:4] / 255.0, split_maps(crop[..., 4:], layout)

        train = (random_crops(stacked, patch, max(1, cfg.repeats), cfg.augment.flip, seed)
                 .map(split if teacher_maps is None else split_with_map)
                 .batch(cfg.batch_size).prefetch(tf.data.AUTOTUNE))
        val = None
        if splits.val:
            crops = center_crops([_image_and_label(e) for e in splits.val], patch)
            val = tf.data.Dataset.from_tensor_slices(crops).map(split).batch(cfg.batch_size)
        return train, val, splits.test

    def samples(self, splits, cfg, split: str, n: int, seed: int = 0) -> list:
        """Training: random crops (`data.patch_size`); test: whole images."""
        if split == "test":
            return [np.asarray(e[1], np.float32) for examples in splits.test.values() for e in examples][:n]
        passes = -(-n // len(splits.train))
        crops = random_crops([e[1] for e in splits.train], cfg.patch_size or DEFAULT_PATCH, passes, True, seed)
        return [np.asarray(c, np.float32) for c in crops.take(n)]

    def metrics(self):
        return [PixelF1()]

    def columns(self):
        return [("ODS", "ods", "f3"), ("OIS", "ois", "f3"), ("AP", "ap", "f3"), ("pixel F1", "pixel_f1", "f3")]

    def format_delta(self, delta: float) -> str:
        return f"{delta:+.3f} ODS"

    def report_notes(self, rows):
        r = rows[0]
        return [f"ODS/OIS/AP: BSDS protocol (pyEdgeEval: NMS, thinning, matching within "
                f"{r.get('benchmark_max_dist', 0.0075)} of the diagonal, every annotator) on "
                f"{r['benchmark_images']} test images at {r.get('benchmark_thresholds', 99)} thresholds; "
                f"pixel F1 at probability 0.5 on all test images."]

    def probabilities(self, model, images) -> list:
        """Edge probability maps (HxW, 0-1) of whole images of any size."""
        forward = single_image_forward(model)
        return [tf.sigmoid(np.asarray(forward(tf.constant(im[None], tf.float32)), np.float32))[0, ..., 0].numpy()
                for im in images]

    def evaluate(self, model, test: dict, report_cfg=None) -> dict:
        """BSDS ODS/OIS/AP over every test set together, and the pixel F1 at 0.5.

        With `report_cfg.edge_max_images`, ODS/OIS/AP use the first N test
        images (the pixel F1 still uses all); `benchmark_images` says how
        many were scored.
        """
        examples = [e for examples in test.values() for e in examples]
        probs = self.probabilities(model, [e[1] for e in examples])
        kw, n = {}, len(examples)
        if report_cfg is not None:
            kw = dict(n_thresholds=report_cfg.edge_thresholds, max_dist=report_cfg.edge_max_dist,
                      workers=report_cfg.workers or None, log=print)
            n = min(n, report_cfg.edge_max_images or n)
        scores = boundary_scores(probs[:n], [e[3] for e in examples[:n]], **kw)
        scores["benchmark_images"] = n
        if report_cfg is not None:
            scores["benchmark_thresholds"] = report_cfg.edge_thresholds
            scores["benchmark_max_dist"] = report_cfg.edge_max_dist
        f1 = PixelF1()
        for p, e in zip(probs, examples):
            f1.update_state(e[2][None, ..., None], (p[None, ..., None] > 0.5).astype("float32") * 2 - 1)
        scores["pixel_f1"] = float(f1.result())
        return scores

    def predict(self, model, image: np.ndarray) -> np.ndarray:
        """The edge map of an RGB uint8 image as a uint8 grey image (255 = edge)."""
        prob = self.probabilities(model, [image])[0]
        return np.round(prob * 255).astype(np.uint8)
