"""Ctrl-C during training: stop between steps, not inside one."""

from __future__ import annotations

import os
import signal
import sys
import threading

import keras


class StopBetweenSteps(keras.callbacks.Callback):
    """Turns Ctrl-C during `fit` into a `KeyboardInterrupt` raised at the next step's end.

    Python's own Ctrl-C handler raises `KeyboardInterrupt` at whatever
    Python line runs when the signal arrives: in a `tf.data` iterator, in
    Keras' step bookkeeping or in a callback writing a backup. TensorFlow
    then unwinds from a half-updated state, and on these CPUs that ended
    at least once in a heap-corruption abort (`free(): invalid next size`)
    instead of the interrupted run's one line. Here the first Ctrl-C only
    sets a flag, said in one line on stdout; the interrupt is raised
    from this callback once the running training or validation step has
    returned. A second Ctrl-C raises at once, for a step that never ends.

    Use it as a context manager around `fit` and pass it as a callback:
    the handler is installed on entering (from the main thread only,
    where Python delivers signals, and only over Python's own handler, so
    a process that ignores SIGINT keeps ignoring it) and Python's is put
    back on leaving, whatever ended the fit.
    """

    def __init__(self):
        super().__init__()
        self.requested = False
        self._previous = None

    def __enter__(self):
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):  # not when SIGINT is ignored
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
        return False

    def _on_sigint(self, signum, frame):
        if self.requested:  # a second Ctrl-C
            raise KeyboardInterrupt
        self.requested = True
        _say("Ctrl-C: stopping after this step (press Ctrl-C again to stop at once)\n")

    def _raise_if_requested(self, *args, **kwargs):
        if self.requested:
            raise KeyboardInterrupt

    on_train_batch_end = _raise_if_requested
    on_test_batch_end = _raise_if_requested
    on_epoch_end = _raise_if_requested


def _say(line: str) -> None:
    """Writes `line` to the process's stdout without Python's buffer.

    A signal handler that calls `print` while the main thread is inside a
    write to the same stream fails with "reentrant call"; `os.write` on the
    file descriptor does not.
    """
    try:
        os.write(sys.__stdout__.fileno(), line.encode())
    except (AttributeError, OSError, ValueError):  # no stdout (pythonw, a closed or detached stream)
        pass
