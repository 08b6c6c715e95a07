"""Arrays to training batches for `Distiller.fit(x, y, augment=..., teacher_cache=...)`.

The library's short path: the same pipeline and teacher caches the recipes
use, from arrays of raw images and labels, in one call.

- `teacher_cache="views"`: K augmented views per image are drawn, the
  teacher runs once on each (outside the training step), and training
  replays them (`kd_keras.TeacherViewsCache`); needs replayable random
  augmentation (flip, crop, translation, MixUp, CutMix).
- `"outputs"`: the teacher runs once per image (`kd_keras.TeacherOutputCache`);
  needs fixed inputs (no random augmentation).
- `"auto"`: views with random replayable augmentation, outputs without any,
  and a live teacher for RandAugment.
- `"off"`: the teacher runs in every training step, on the augmented batch.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from kd_keras.data.augment import AugmentConfig
from kd_keras.data.pipeline import classification_pipeline
from kd_keras.teachers.cache import FINAL, TeacherOutputCache, teacher_fingerprint
from kd_keras.teachers.views import TeacherViewsCache, resolve_views

CACHE_MODES = ("auto", "views", "outputs", "off")


def as_augment(augment) -> AugmentConfig:
    """`AugmentConfig` from None, a dict of its fields, or itself; unknown fields are named."""
    if augment is None:
        return AugmentConfig()
    if isinstance(augment, AugmentConfig):
        return augment
    if not isinstance(augment, dict):
        raise ValueError(f"augment must be a dict of AugmentConfig fields, e.g. {{\"flip\": True, \"translate\": "
                         f"0.1}}, got {augment!r}.")
    fields = {f.name for f in dataclasses.fields(AugmentConfig)}
    unknown = sorted(set(augment) - fields)
    if unknown:
        raise ValueError(f"augment got unknown field(s) {', '.join(unknown)}; valid: {', '.join(sorted(fields))}.")
    return AugmentConfig(**augment)


def int_labels(y, num_classes: int, what: str = "y", unlabelled: bool = False) -> np.ndarray:
    """Integer labels from int labels or one-hot rows, checked against the classes.

    With `unlabelled` (training labels), -1 or an all-zero row marks an image without a label (a transfer set's):
    it stays -1, the pipeline's one-hot makes it a zero row, and `kd_keras.losses.LabelledCrossentropy` skips it.
    """
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == num_classes:
        empty = ~y.any(-1)
        y = y.argmax(-1)
        if unlabelled:
            y = np.where(empty, -1, y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) and not np.all(np.equal(np.mod(y, 1), 0)):
        raise ValueError(f"{what} must be integer class labels of shape (n,) or one-hot rows of shape (n, "
                         f"{num_classes}), got shape {y.shape} and dtype {y.dtype}.")
    y = y.astype(np.int32)
    low = -1 if unlabelled else 0
    if len(y) and (y.min() < low or y.max() >= num_classes):
        raise ValueError(f"{what} has labels from {y.min()} to {y.max()}, but the student has {num_classes} outputs"
                         f"{' (-1: an unlabelled image)' if unlabelled else ''}.")
    return y


def images(x, what: str = "x") -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"{what} must be raw images of shape (n, height, width, 1 or 3), got {x.shape}.")
    if x.dtype.kind == "f" and x.size and 0.0 < float(np.nanmax(x)) <= 1.0 and float(np.nanmin(x)) >= 0.0:
        raise ValueError(f"{what} holds floats in [0, 1] (max {float(np.nanmax(x)):g}), but kd_keras' models take raw "
                         f"0-255 pixels and scale them themselves; pass {what} * 255 (or the uint8 images).")
    return x.astype(np.float32)


def training_batches(distiller, x, y, batch_size: int = 32, augment=None, teacher_cache: str = "auto",
                     teacher_views="epochs", seed: int = 0, directory: str | None = None, log=print,
                     epochs: int = 1, callbacks: list | None = None):
    """`(dataset, info)`: shuffled, augmented `(images, one-hot labels[, teacher outputs])` batches, and what
    the teacher cache did (`info["mode"]`: "views", "outputs" or "live"). With stored views, the callback
    that sets their epoch is appended to `callbacks`."""
    if teacher_cache not in CACHE_MODES:
        raise ValueError(f"teacher_cache must be one of {', '.join(CACHE_MODES)}, got {teacher_cache!r}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    aug = as_augment(augment)
    num_classes = int(distiller.student.outputs[0].shape[-1])
    x = images(x)
    labels = int_labels(y, num_classes, unlabelled=True)
    if len(x) != len(labels):
        raise ValueError(f"x has {len(x)} images but y has {len(labels)} labels.")
    examples = tf.data.Dataset.from_tensor_slices((x, labels))
    shape = tuple(x.shape[1:])
    mode = teacher_cache
    if mode == "auto":
        mode = ("off" if aug.replay_blocker else "views") if aug.active else "outputs"
    if not distiller.needs_teacher:
        mode = "off"
    if mode == "views" and (not aug.active or aug.replay_blocker):
        why = aug.replay_blocker or "there is no random augmentation to store views of"
        fix = "teacher_cache=\"outputs\"" if not aug.active else "teacher_cache=\"auto\" (a live teacher)"
        raise ValueError(f"teacher_cache=\"views\" cannot serve these inputs: {why}; use {fix}.")
    if mode == "outputs" and aug.active:
        raise ValueError(f"teacher_cache=\"outputs\" needs fixed inputs, but augment is on "
                         f"({', '.join(aug.random_ops)}); use teacher_cache=\"views\".")
    key = teacher_fingerprint(distiller.teacher, distiller.teacher_layers) if mode != "off" else ""
    if mode == "views":
        cache = TeacherViewsCache(distiller.teacher_outputs, key, aug, shape, num_classes,
                                  views=resolve_views(teacher_views, epochs), seed=seed, directory=directory, log=log)
        stored = cache.views(examples)
        if callbacks is not None:
            callbacks.append(stored.epoch_callback())
        ds = classification_pipeline(examples, num_classes, shape, batch_size, True, aug, seed, teacher_views=stored)
        return ds, {**{k: v for k, v in stored.info.items() if k != "path"}, "mode": "views"}
    if mode == "outputs":
        cache = TeacherOutputCache(distiller.teacher_outputs, key, directory=directory, log=log)
        outputs = cache.outputs(examples)
        ds = classification_pipeline(examples, num_classes, shape, batch_size, True, None, seed,
                                     teacher_outputs=outputs)
        return ds, {**{k: v for k, v in cache.last.items() if k != "path"}, "mode": "outputs"}
    ds = classification_pipeline(examples, num_classes, shape, batch_size, True, aug, seed)
    return ds, {"mode": "live"}


def validation_batches(data, num_classes: int, batch_size: int):
    """`validation_data` as `(x, y)` arrays (int or one-hot labels) to batches; anything else as it is."""
    if not (isinstance(data, tuple) and len(data) == 2 and all(isinstance(v, np.ndarray) for v in data)):
        return data
    x, y = images(data[0], "validation x"), int_labels(data[1], num_classes, "validation y")
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    return classification_pipeline(ds, num_classes, tuple(x.shape[1:]), max(batch_size, 128), False, cache=False)


__all__ = ["CACHE_MODES", "FINAL", "training_batches", "validation_batches"]
