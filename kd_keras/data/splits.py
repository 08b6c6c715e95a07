"""The splits every classification source returns, and what they share: the seeded validation draw and the resize."""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf


@dataclasses.dataclass
class DataSplits:
    """Unbatched `(image float32 HxWxC, label int32)` datasets plus metadata."""

    train: tf.data.Dataset
    val: tf.data.Dataset
    test: tf.data.Dataset
    num_classes: int
    input_shape: tuple
    num_train: int
    num_val: int
    num_test: int
    class_names: list
    description: str
    synthetic: bool = False
    skipped: int = 0  # bad image files left out (data.skip_bad_images)
    class_counts: dict = dataclasses.field(default_factory=dict)  # {"train"/"val"/"test": images per class}
    notes: list = dataclasses.field(default_factory=list)  # how mixed images were made one set (kd_keras.data.scan)
    unlabeled: int = 0  # training examples without a label (label -1): a transfer set (kd_keras.data.unlabeled)
    labelled_repeats: int = 1  # with a transfer set: how often each labelled image is in one pass


def split_val(n: int, val_fraction: float, seed: int):
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * val_fraction))
    return order[n_val:], order[:n_val]


def resize(image, image_size):
    if not image_size:
        return image
    return tf.image.resize(image, (image_size, image_size), method="bilinear")
