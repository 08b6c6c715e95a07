"""Precise BatchNorm: statistics recomputed from training batches, weights untouched."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kd_keras
from kd_keras.training.precise_bn import batchnorm_layers, recalibrate_batchnorm


def tiny_bn_model():
    inputs = keras.Input((4, 4, 2))
    x = keras.layers.Conv2D(3, 1, use_bias=False, name="conv")(inputs)
    x = keras.layers.BatchNormalization(momentum=0.999, name="bn1")(x)
    inner = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(5),
                              keras.layers.BatchNormalization(name="bn_nested")], name="head")
    return keras.Model(inputs, inner(x))


def test_statistics_become_the_average_of_the_batch_statistics():
    keras.utils.set_random_seed(0)
    model = tiny_bn_model()
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0 * k, 1.0 + k, (8, 4, 4, 2)).astype("float32") for k in range(3)]
    weights = [w.numpy().copy() for w in model.trainable_weights]
    used = recalibrate_batchnorm(model, [(b, np.zeros(8)) for b in batches] * 2, batches=3)
    assert used == 3
    conv = model.get_layer("conv").kernel.numpy()[0, 0]          # (2, 3)
    feats = [b.reshape(-1, 2) @ conv for b in batches]            # what bn1 sees in training mode
    bn1 = model.get_layer("bn1")
    np.testing.assert_allclose(bn1.moving_mean.numpy(), np.mean([f.mean(0) for f in feats], 0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn1.moving_variance.numpy(), np.mean([f.var(0) for f in feats], 0), rtol=1e-4)
    assert bn1.momentum == 0.999                                   # restored
    assert len(batchnorm_layers(model)) == 2                       # the nested one too
    nested = model.get_layer("head").get_layer("bn_nested")
    assert not np.allclose(nested.moving_mean.numpy(), 0.0)
    for before, after in zip(weights, model.trainable_weights):
        np.testing.assert_array_equal(before, after.numpy())


def test_callback_recalibrates_the_distillers_student_and_fixes_lagging_statistics():
    keras.utils.set_random_seed(0)
    student = tiny_bn_model()
    x = np.random.default_rng(1).normal(5.0, 2.0, (64, 4, 4, 2)).astype("float32")
    y = keras.utils.to_categorical(np.arange(64) % 5, 5)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    distiller = kd_keras.Distiller(student=student)
    distiller.compile(keras.optimizers.SGD(0.0), keras.losses.CategoricalCrossentropy(from_logits=True))
    # lr 0: only the statistics can change. With momentum 0.999 four steps leave bn1 near its start (0).
    distiller.fit(ds, epochs=1, verbose=0)
    lagging = student.get_layer("bn1").moving_mean.numpy().copy()
    callback = kd_keras.PreciseBatchNorm(ds, batches=4)
    distiller.fit(ds, epochs=1, verbose=0, callbacks=[callback])
    assert callback.used == 4
    conv = student.get_layer("conv").kernel.numpy()[0, 0]
    true_mean = (x.reshape(-1, 2) @ conv).mean(0)
    precise = student.get_layer("bn1").moving_mean.numpy()
    np.testing.assert_allclose(precise, true_mean, rtol=1e-4, atol=1e-4)
    assert np.abs(lagging - true_mean).max() > 10 * np.abs(precise - true_mean).max()


def test_bad_batch_count_and_empty_data():
    with pytest.raises(ValueError, match="batches >= 1, got 0"):
        kd_keras.PreciseBatchNorm([], batches=0)
    model = tiny_bn_model()
    with pytest.raises(ValueError, match="empty dataset"):
        recalibrate_batchnorm(model, [], batches=2)
    np.testing.assert_array_equal(model.get_layer("bn1").moving_variance.numpy(), 1.0)  # left as it was
