"""NaNGuard (stop on a NaN loss, name the epoch and step, restore the last good weights) and atomic writes."""

import keras
import numpy as np
import pytest
from conftest import tiny_classifier

from kd_keras import Distiller
from kd_keras.training.callbacks import NaNGuard


class Poison(keras.callbacks.Callback):
    """Sets a layer's kernel to NaN at the start of `epoch` (0-based), or of its batch `step`."""

    def __init__(self, layer, epoch, step=0):
        super().__init__()
        self.layer, self.epoch, self.step, self._epoch = layer, epoch, step, 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self._epoch == self.epoch and batch == self.step:
            self.layer.kernel.assign(np.full(self.layer.kernel.shape, np.nan, "float32"))


def test_nan_guard_restores_last_good_epoch(toy_data):
    x, y = toy_data
    student = tiny_classifier(name="s")
    d = Distiller(student=student)
    d.compile(keras.optimizers.SGD(0.01), keras.losses.CategoricalCrossentropy(from_logits=True))
    snapshots = []
    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, l: snapshots.append(student.get_weights()))
    guard = NaNGuard(student.weights)
    history = d.fit(x, y, batch_size=16, epochs=5, verbose=0,
                    callbacks=[Poison(student.get_layer("logits"), 2), guard, record])
    assert guard.diverged_epoch == 3 and guard.last_good_epoch == 2
    assert len(history.history["loss"]) == 3  # stopped in the poisoned epoch
    for restored, good in zip(student.get_weights(), snapshots[1]):
        np.testing.assert_array_equal(restored, good)
    assert all(np.isfinite(w).all() for w in student.get_weights())


def test_nan_guard_names_the_epoch_and_step(toy_data):
    x, y = toy_data
    student = tiny_classifier(name="s")
    d = Distiller(student=student)
    d.compile(keras.optimizers.SGD(0.01), keras.losses.CategoricalCrossentropy(from_logits=True))
    guard = NaNGuard(student.weights)
    d.fit(x, y, batch_size=16, epochs=4, verbose=0, callbacks=[Poison(student.get_layer("logits"), 1, 2), guard])
    assert (guard.diverged_epoch, guard.diverged_step, guard.last_good_epoch) == (2, 3, 1)  # 1-based


def failing_write(path, *args, **kwargs):
    with open(path, "wb") as f:
        f.write(b"half a file")  # what a kill mid-write leaves
    raise OSError("disk full")


def test_save_model_never_leaves_a_truncated_file(toy_data, tmp_path, monkeypatch):
    from kd_keras.recipes.runner import save_model

    model = tiny_classifier(name="m")
    path = str(tmp_path / "m.keras")
    save_model(model, path)
    good = open(path, "rb").read()
    monkeypatch.setattr(keras.Model, "save", lambda self, p, *a, **k: failing_write(p))
    with pytest.raises(OSError):
        save_model(model, path)
    assert open(path, "rb").read() == good  # the earlier model is intact under its name
    with pytest.raises(OSError):
        save_model(model, str(tmp_path / "new.keras"))
    assert not (tmp_path / "new.keras").exists()


def test_backup_is_written_atomically(toy_data, tmp_path, monkeypatch):
    from kd_keras.training.callbacks import AtomicBackupAndRestore

    x, y = toy_data
    student = tiny_classifier(name="s")
    d = Distiller(student=student)
    d.compile(keras.optimizers.SGD(0.01), keras.losses.CategoricalCrossentropy(from_logits=True))
    backup = AtomicBackupAndRestore(str(tmp_path / "b"), delete_checkpoint=False)
    d.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[backup])
    assert backup.saved_epoch == 2
    weights = (tmp_path / "b" / "latest.weights.h5").read_bytes()
    monkeypatch.setattr(Distiller, "save_weights", lambda self, p, *a, **k: failing_write(p))
    with pytest.raises(OSError):
        backup._save_model()
    assert (tmp_path / "b" / "latest.weights.h5").read_bytes() == weights and backup.saved_epoch == 2
