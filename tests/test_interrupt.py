"""Ctrl-C during fit: the running step finishes, then KeyboardInterrupt; a second Ctrl-C stops at once."""

import os
import signal

import keras
import pytest
from conftest import tiny_classifier

from kd_keras import Distiller
from kd_keras.training.interrupt import StopBetweenSteps


class CtrlC(keras.callbacks.Callback):
    """Sends SIGINT to this process `times` times when training batch `step` of the first epoch begins."""

    def __init__(self, step, times=1):
        super().__init__()
        self.step, self.times, self.ended = step, times, []

    def on_train_batch_begin(self, batch, logs=None):
        if batch == self.step:
            for _ in range(self.times):
                os.kill(os.getpid(), signal.SIGINT)

    def on_train_batch_end(self, batch, logs=None):
        self.ended.append(batch)


def fit(toy_data, ctrl_c):
    x, y = toy_data
    d = Distiller(student=tiny_classifier(name="s"))
    d.compile(keras.optimizers.SGD(0.01), keras.losses.CategoricalCrossentropy(from_logits=True))
    stop = StopBetweenSteps()
    with stop:
        d.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[ctrl_c, stop])
    return stop


def test_ctrl_c_lets_the_running_step_finish_then_interrupts(toy_data, capfd):
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT is not Python's here (a suite started in the background ignores it)")
    ctrl_c = CtrlC(step=2)
    with pytest.raises(KeyboardInterrupt):
        fit(toy_data, ctrl_c)
    assert ctrl_c.ended == [0, 1, 2]  # step 2 ran to its end; step 3 never began
    assert "Ctrl-C: stopping after this step" in capfd.readouterr().out
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Python's handler is back


def test_a_second_ctrl_c_stops_at_once(toy_data):
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT is not Python's here (a suite started in the background ignores it)")
    ctrl_c = CtrlC(step=2, times=2)
    with pytest.raises(KeyboardInterrupt):
        fit(toy_data, ctrl_c)
    assert ctrl_c.ended == [0, 1]  # step 2 did not end
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_ignored_sigint_stays_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with StopBetweenSteps():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
