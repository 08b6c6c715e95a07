"""How long a student's BatchNorm moving averages lag its weights: a short schedule's validation reads low until
then (`kd_keras.recipes.runner` prints a note)."""

from __future__ import annotations

import math

import keras


def batchnorm_momentum(model) -> float:
    """The largest BatchNormalization momentum in `model` (0: none)."""
    def walk(layer):
        yield layer
        for inner in getattr(layer, "layers", None) or []:
            yield from walk(inner)

    return max((float(l.momentum) for l in walk(model) if isinstance(l, keras.layers.BatchNormalization)),
               default=0.0)


def batchnorm_lag_epochs(model, steps_per_epoch: int) -> int:
    """Epochs until `model`'s BatchNorm moving averages hold less than a quarter of their start (0: no BatchNorm).

    A moving average of momentum m keeps m^k of its initial value after k steps; at 0.99 a quarter is left after
    138 steps, which is 18 epochs of 8 steps: the validation of a short schedule reads low until then.
    """
    m = batchnorm_momentum(model)
    if not 0.0 < m < 1.0:
        return 0
    return math.ceil(math.log(0.25) / math.log(m) / max(steps_per_epoch, 1))
