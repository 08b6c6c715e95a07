"""Precise BatchNorm: recompute a model's BatchNormalization statistics after training.

BatchNormalization keeps an exponential moving average of batch statistics
while the weights move under it. When training is short or the learning rate
is high, that average describes weights the model no longer has, and the
model in inference mode can be far worse than in training mode. Measured on
cifar10_small: a MobileNetV2 after 5 epochs scored 10.4% in inference mode
(34.6% in training mode); recomputing the statistics on 50 training batches,
weights untouched, gave 32.6%.

`recalibrate_batchnorm` runs the model in training mode over a few batches
and sets every BatchNormalization layer's moving mean and variance to the
plain average of the batch statistics ("precise BN": Wu & Johnson,
"Rethinking 'Batch' in BatchNorm", 2021; pycls/Detectron2 `PreciseBN`).
Only the statistics change; trainable weights do not.
"""

from __future__ import annotations

import keras


def batchnorm_layers(model) -> list:
    """Every BatchNormalization layer of `model`, nested models included."""
    return [layer for layer in model._flatten_layers(include_self=False)
            if isinstance(layer, keras.layers.BatchNormalization)]


def _inputs(batch):
    """The model input of a `(x, y[, teacher outputs])` batch, or the batch itself."""
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def recalibrate_batchnorm(model, dataset, batches: int = 50) -> int:
    """Sets BatchNormalization moving statistics to their average over `batches` batches.

    With momentum `(k - 1) / k` at the k-th batch, each moving mean and
    variance ends as the equal-weight average of the batch means and
    variances (BatchNormalization's update rule, made cumulative). The model
    runs eagerly in training mode; each layer's momentum is restored after.

    Args:
        model: a Keras model (e.g. a student, never a frozen teacher).
        dataset: an iterable of batches, `x` or `(x, y, ...)`, from the
            training distribution (a `tf.data.Dataset` is fine).
        batches: how many batches to average (> 0).

    Returns:
        the number of batches used (fewer if the dataset ran out).

    Raises:
        ValueError: `batches` < 1.
    """
    if batches < 1:
        raise ValueError(f"precise BatchNorm needs batches >= 1, got {batches!r}.")
    layers = batchnorm_layers(model)
    if not layers:
        return 0
    momenta = [layer.momentum for layer in layers]
    old = [(layer.moving_mean.numpy(), layer.moving_variance.numpy()) for layer in layers]
    for layer in layers:  # the first batch replaces the old statistics entirely
        layer.moving_mean.assign(keras.ops.zeros_like(layer.moving_mean))
        layer.moving_variance.assign(keras.ops.zeros_like(layer.moving_variance))
    used = 0
    try:
        for batch in dataset:
            if used == batches:
                break
            used += 1
            for layer in layers:
                layer.momentum = (used - 1) / used
            model(_inputs(batch), training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    if used == 0:
        for layer, (mean, var) in zip(layers, old):
            layer.moving_mean.assign(mean)
            layer.moving_variance.assign(var)
        raise ValueError("precise BatchNorm got an empty dataset; nothing to average.")
    return used


class PreciseBatchNorm(keras.callbacks.Callback):
    """At the end of `fit`, recomputes the student's BatchNorm statistics.

    Works with `kd_keras.Distiller` (recalibrates `model.student`) and with a
    plain Keras model.

    Args:
        dataset: training batches, as given to `fit`.
        batches: batches to average (see `recalibrate_batchnorm`).
    """

    def __init__(self, dataset, batches: int = 50):
        super().__init__()
        if batches < 1:
            raise ValueError(f"precise BatchNorm needs batches >= 1, got {batches!r}.")
        self.dataset, self.batches, self.used = dataset, batches, 0

    def on_train_end(self, logs=None):
        target = getattr(self.model, "student", None) or self.model
        self.used = recalibrate_batchnorm(target, self.dataset, self.batches)
