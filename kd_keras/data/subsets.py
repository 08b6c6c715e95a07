"""A labelled subset of the training split: the students' share when labels are scarce (`data.labels_per_class`)."""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from kd_keras.data.sources import DataSplits


def labelled_subset(splits: DataSplits, per_class: int, seed: int) -> DataSplits:
    """`splits` with a training split of `per_class` images of each class, drawn with `seed`, in their order.

    The validation and test splits are unchanged.

    Raises:
        ValueError: a class with fewer than `per_class` training images.
    """
    keep = _labelled_mask(splits, per_class, seed)
    return dataclasses.replace(splits, train=_select(splits.train, keep), num_train=int(keep.sum()))


def left_out(splits: DataSplits, per_class: int, seed: int) -> tuple[tf.data.Dataset, int]:
    """The training images `labelled_subset(splits, per_class, seed)` leaves out, in their order, and their count:
    `data.unlabeled = "rest"`, the transfer set whose labels no student sees."""
    keep = _labelled_mask(splits, per_class, seed)
    return _select(splits.train, ~keep), int((~keep).sum())


def _labelled_mask(splits: DataSplits, per_class: int, seed: int) -> np.ndarray:
    labels = np.fromiter((int(y) for y in splits.train.map(lambda x, y: y).as_numpy_iterator()), np.int64)
    rng = np.random.default_rng(seed)
    keep = np.zeros(len(labels), bool)
    for c in range(splits.num_classes):
        where = np.flatnonzero(labels == c)
        if len(where) < per_class:
            name = splits.class_names[c] if c < len(splits.class_names) else c
            raise ValueError(f"data.labels_per_class = {per_class}, but class {name!r} has {len(where)} training "
                             f"images; set it to {len(where)} or fewer (0: every image).")
        keep[rng.choice(where, per_class, replace=False)] = True
    return keep


def _select(ds: tf.data.Dataset, keep: np.ndarray) -> tf.data.Dataset:
    mask = tf.constant(keep)

    def kept(i, example):
        return tf.gather(mask, i)

    def example_of(i, example):
        return example

    out = ds.enumerate().filter(kept).map(example_of)
    return out.apply(tf.data.experimental.assert_cardinality(int(keep.sum())))  # Keras then counts the steps
