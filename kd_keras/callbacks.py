"""Callbacks of the training loop."""

from __future__ import annotations

import math

import keras


class TrainingDiverged(RuntimeError):
    """Raised by a recipe when the loss became NaN or infinite."""


class NaNGuard(keras.callbacks.Callback):
    """Stops on a NaN/inf loss and restores the last good weights.

    Unlike `keras.callbacks.TerminateOnNaN`, which stops but leaves the
    NaN weights in place, this keeps a copy of the trainable model's weights
    (the student and any loss layers, never the frozen teacher) after each
    epoch that ended with a finite loss, and puts it back when training
    diverges. `diverged_epoch` (1-based) tells the caller what happened.

    Args:
        weights: the variables to snapshot and restore.
    """

    def __init__(self, weights):
        super().__init__()
        self._variables = list(weights)
        self.diverged_epoch = None
        self.last_good_epoch = 0
        self._epoch = 0
        self._snapshot = None

    def on_train_begin(self, logs=None):
        self._snapshot = [v.numpy() for v in self._variables]

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.diverged_epoch = self._epoch
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.diverged_epoch is None:
            self._snapshot = [v.numpy() for v in self._variables]
            self.last_good_epoch = epoch + 1

    def on_train_end(self, logs=None):
        if self.diverged_epoch is not None:
            for v, value in zip(self._variables, self._snapshot):
                v.assign(value)
