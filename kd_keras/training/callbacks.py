"""Callbacks of the training loop."""

from __future__ import annotations

import json
import math
import os

import keras

from kd_keras.cli.errors import ensure_space, model_bytes


class TrainingDiverged(RuntimeError):
    """Raised by a recipe when the loss became NaN or infinite."""


class NaNGuard(keras.callbacks.Callback):
    """Stops on a NaN/inf loss and restores the last good weights.

    Unlike `keras.callbacks.TerminateOnNaN`, which stops but leaves the
    NaN weights in place, this keeps a copy of the trainable model's weights
    (the student and any loss layers, never the frozen teacher) after each
    epoch that ended with a finite loss, and puts it back when training
    diverges. `diverged_epoch` and `diverged_step` (1-based; the step
    within that epoch) tell the caller what happened.

    Args:
        weights: the variables to snapshot and restore.
    """

    def __init__(self, weights):
        super().__init__()
        self._variables = list(weights)
        self.diverged_epoch = None
        self.diverged_step = None
        self.last_good_epoch = 0
        self._epoch = 0
        self._snapshot = None

    def on_train_begin(self, logs=None):
        self._snapshot = [v.numpy() for v in self._variables]

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch + 1
        if self.last_good_epoch < epoch:  # resumed by BackupAndRestore after `epoch` finished epochs
            self.last_good_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.diverged_epoch = self._epoch
            self.diverged_step = batch + 1
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.diverged_epoch is None:
            self._snapshot = [v.numpy() for v in self._variables]
            self.last_good_epoch = epoch + 1

    def on_train_end(self, logs=None):
        if self.diverged_epoch is not None:
            for v, value in zip(self._variables, self._snapshot):
                v.assign(value)


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` whose backups are written atomically.

    Keras writes the weights file and the epoch record in place, so a kill
    during the write leaves a truncated file. Here each is written to a
    temporary file and renamed, so the backup on disk is always a whole
    one: the previous epoch's or the new one.

    Args:
        backup_dir: folder of the backup (removed when training ends).
    """

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        tmp = self._weights_path[: -len(".weights.h5")] + ".partial.weights.h5"
        ensure_space(tmp, model_bytes(self.model))  # before HDF5 starts a file it could not finish
        self.model.save_weights(tmp, overwrite=True)
        os.replace(tmp, self._weights_path)
        tmp = self._training_metadata_path + ".partial"
        with open(tmp, "w") as f:
            json.dump({"epoch": self._current_epoch, "batch": self._last_batch_seen}, f)
        os.replace(tmp, self._training_metadata_path)

    @property
    def saved_epoch(self) -> int:
        """Epochs the backup on disk holds (0: none; training starts afresh)."""
        try:
            with open(self._training_metadata_path) as f:
                return int(json.load(f)["epoch"])
        except (OSError, ValueError, KeyError):
            return 0


def run_logs(log_dir: str, name: str) -> list:
    """CSV and TensorBoard logs of one training run: `<log_dir>/<name>.csv` and `<log_dir>/<name>/`.

    The CSV is appended to, so a resumed run continues its file.
    """
    os.makedirs(log_dir, exist_ok=True)
    return [keras.callbacks.CSVLogger(os.path.join(log_dir, f"{name}.csv"), append=True),
            keras.callbacks.TensorBoard(os.path.join(log_dir, name), histogram_freq=0, write_graph=False,
                                        update_freq="epoch", profile_batch=0)]
