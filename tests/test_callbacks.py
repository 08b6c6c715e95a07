"""NaNGuard: stop on a NaN loss and restore the last good epoch's weights."""

import keras
import numpy as np
from conftest import tiny_classifier

from kd_keras import Distiller
from kd_keras.callbacks import NaNGuard


class PoisonAtEpoch(keras.callbacks.Callback):
    def __init__(self, layer, epoch):
        super().__init__()
        self.layer, self.epoch = layer, epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            self.layer.kernel.assign(np.full(self.layer.kernel.shape, np.nan, "float32"))


def test_nan_guard_restores_last_good_epoch(toy_data):
    x, y = toy_data
    student = tiny_classifier(name="s")
    d = Distiller(student)
    d.compile(keras.optimizers.SGD(0.01), keras.losses.CategoricalCrossentropy(from_logits=True))
    snapshots = []
    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, l: snapshots.append(student.get_weights()))
    guard = NaNGuard(student.weights)
    history = d.fit(x, y, batch_size=16, epochs=5, verbose=0,
                    callbacks=[PoisonAtEpoch(student.get_layer("logits"), 2), guard, record])
    assert guard.diverged_epoch == 3 and guard.last_good_epoch == 2
    assert len(history.history["loss"]) == 3  # stopped in the poisoned epoch
    for restored, good in zip(student.get_weights(), snapshots[1]):
        np.testing.assert_array_equal(restored, good)
    assert all(np.isfinite(w).all() for w in student.get_weights())
