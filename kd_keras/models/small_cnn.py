"""A light custom CNN student."""

from __future__ import annotations

import keras

from kd_keras.models.heads import classifier
from kd_keras.models.preprocessing import default_size, image_input, preprocess
from kd_keras.models.registry import register_model


@register_model(role="student")
def small_cnn(num_classes, input_shape, image_size=None, widths=(32, 64, 128), dropout=0.0, bn_momentum=0.99):
    """Conv-BN-ReLU blocks, each followed by 2x2 max-pooling, then a linear head.

    The light student of the "ResNet-18 -> custom small CNN" experiment: a
    plain VGG-like stack (Simonyan & Zisserman, ICLR 2015) without
    residuals, a few hundred thousand parameters at the default widths.
    Block outputs are named `block{i}_out` for feature losses.

    Args:
        widths: filters per block; pooling stops once the map is 1x1.
        bn_momentum: BatchNormalization momentum of the moving averages
            (Keras' 0.99 by default; 0.9 is PyTorch's 0.1, for short
            schedules of few steps an epoch, whose 0.99 averages still
            lag the weights after the first epochs).
    """
    size = image_size or default_size(input_shape)
    inputs = image_input(input_shape)
    x = preprocess(inputs, size, "imagenet")
    for i, w in enumerate(widths, start=1):
        x = keras.layers.Conv2D(int(w), 3, padding="same", use_bias=False, name=f"block{i}_conv")(x)
        x = keras.layers.BatchNormalization(momentum=bn_momentum, name=f"block{i}_bn")(x)
        x = keras.layers.ReLU(name=f"block{i}_relu")(x)
        if x.shape[1] > 1:
            x = keras.layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
        x = keras.layers.Identity(name=f"block{i}_out")(x)
    return keras.Model(inputs, classifier(x, num_classes, dropout), name="small_cnn")
