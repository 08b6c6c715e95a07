"""The classification hard-label loss and accuracy over the labelled examples of a batch.

A KD student with a transfer set (`data.unlabeled`) trains on batches that
mix labelled images with unlabelled ones. An unlabelled image carries the
label -1, which the pipeline's one-hot turns into an all-zero row: it never
meets a made-up label. The hard-label loss and the training accuracy count
the labelled rows only (a row that sums to more than zero); the
distillation loss, which needs no label, counts every row.

On a batch without unlabelled rows both equal Keras' categorical
cross-entropy on logits and `CategoricalAccuracy`.
"""

from __future__ import annotations

import keras
from keras import ops

from kd_keras.losses.registry import register_loss


def labelled_mask(y_true):
    """1.0 for a labelled row (its one-hot or mixed label sums to more than zero), 0.0 for an unlabelled one."""
    return ops.cast(ops.sum(ops.cast(y_true, "float32"), axis=-1) > 0.0, "float32")


@keras.saving.register_keras_serializable(package="kd_keras")
@register_loss("ce", kind="supervised")
class LabelledCrossentropy(keras.losses.Loss):
    """Categorical cross-entropy on logits, averaged over the labelled rows of the batch.

    `sum_i m_i CE(y_i, z_i) / max(1, sum_i m_i)` with `m_i` the labelled mask:
    a batch of unlabelled images only gives 0 (and a zero gradient), as
    `student_loss_weight = 0` would.

    Args:
        label_smoothing: applied to labelled rows only (an unlabelled row
            stays zero).
    """

    def __init__(self, label_smoothing: float = 0.0, name: str = "labelled_crossentropy", **kwargs):
        kwargs.setdefault("reduction", "sum")
        super().__init__(name=name, **kwargs)
        if not 0.0 <= float(label_smoothing) < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}.")
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "float32")
        mask = labelled_mask(y_true)
        if self.label_smoothing:
            k = ops.cast(ops.shape(y_true)[-1], "float32")
            y_true = (y_true * (1.0 - self.label_smoothing) + self.label_smoothing / k) * mask[:, None]
        logp = ops.log_softmax(ops.cast(y_pred, "float32"), axis=-1)
        ce = -ops.sum(y_true * logp, axis=-1)
        return ce * mask / ops.maximum(ops.sum(mask), 1.0)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


@keras.saving.register_keras_serializable(package="kd_keras")
class LabelledAccuracy(keras.metrics.CategoricalAccuracy):
    """Top-1 accuracy over the labelled rows of each batch (unlabelled rows, all zero, are not counted)."""

    def update_state(self, y_true, y_pred, sample_weight=None):
        mask = labelled_mask(y_true)
        sample_weight = mask if sample_weight is None else ops.cast(sample_weight, "float32") * mask
        return super().update_state(y_true, y_pred, sample_weight)
