"""ImageNet-style ResNets: 18/34 built here, 50/101 from keras.applications."""

from __future__ import annotations

import keras

from kd_keras.models.heads import classifier
from kd_keras.models.preprocessing import default_size, image_input, preprocess
from kd_keras.models.registry import register_model

BN = dict(momentum=0.9, epsilon=1e-5)


def basic_block(x, filters: int, stride: int, name: str):
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = keras.layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_proj")(x)
        shortcut = keras.layers.BatchNormalization(**BN, name=f"{name}_proj_bn")(shortcut)
    y = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    y = keras.layers.BatchNormalization(**BN, name=f"{name}_bn1")(y)
    y = keras.layers.ReLU(name=f"{name}_relu1")(y)
    y = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    y = keras.layers.BatchNormalization(**BN, gamma_initializer="zeros", name=f"{name}_bn2")(y)
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def basic_resnet(num_classes, input_shape, blocks, name, image_size=None, small_input=None, dropout=0.0,
                 width: float = 1.0):
    """ResNet with basic blocks (He et al. 2016), raw 0-255 input.

    Args:
        blocks: blocks per stage, e.g. (2, 2, 2, 2) for ResNet-18.
        width: multiplies every layer's filters (64/128/256/512 at 1.0);
            0.5 gives a quarter of the parameters.
        image_size: side the network runs at (default: the input's side).
        small_input: use a 3x3 stride-1 stem without max-pool, the usual
            CIFAR adaptation; default: when `image_size` <= 64 (and not
            for inputs of unknown size).

    Stage outputs are named `stage{1..4}_out` for feature losses.
    """
    if not 0 < width <= 4:
        raise ValueError(f"ResNet width must be in (0, 4], got {width!r}.")
    stem, widths = max(8, round(64 * width)), [max(8, round(f * width)) for f in (64, 128, 256, 512)]
    size = image_size or default_size(input_shape)
    small = (size is not None and size <= 64) if small_input is None else bool(small_input)
    inputs = image_input(input_shape)
    x = preprocess(inputs, size, "imagenet")
    if small:
        x = keras.layers.Conv2D(stem, 3, padding="same", use_bias=False, name="stem_conv")(x)
    else:
        x = keras.layers.Conv2D(stem, 7, strides=2, padding="same", use_bias=False, name="stem_conv")(x)
    x = keras.layers.BatchNormalization(**BN, name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    if not small:
        x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    for stage, (n, filters) in enumerate(zip(blocks, widths), start=1):
        for b in range(n):
            stride = 2 if (b == 0 and stage > 1) else 1
            x = basic_block(x, filters, stride, name=f"stage{stage}_block{b + 1}")
        x = keras.layers.Identity(name=f"stage{stage}_out")(x)
    return keras.Model(inputs, classifier(x, num_classes, dropout), name=name)


@register_model(role="teacher")
def resnet18(num_classes, input_shape, image_size=None, small_input=None, dropout=0.0, width: float = 1.0):
    """ResNet-18 (He et al., Deep Residual Learning, CVPR 2016), built here."""
    return basic_resnet(num_classes, input_shape, (2, 2, 2, 2), "resnet18", image_size, small_input, dropout, width)


@register_model(role="teacher")
def resnet34(num_classes, input_shape, image_size=None, small_input=None, dropout=0.0, width: float = 1.0):
    """ResNet-34 (He et al., CVPR 2016), built here."""
    return basic_resnet(num_classes, input_shape, (3, 4, 6, 3), "resnet34", image_size, small_input, dropout, width)


def keras_app(app, name, num_classes, input_shape, weights, image_size, mode, dropout=0.0, minimum=32,
               bn_momentum=None, **app_kw):
    """Wraps a keras.applications backbone: raw input, own preprocessing, logits head.

    The backbone is built on our preprocessed tensor (`input_tensor`), so
    its layers are inlined and addressable by name for feature losses.
    `bn_momentum`, if given, replaces the momentum of every
    BatchNormalization layer of the backbone (None: keep keras.applications').
    """
    size = image_size or default_size(input_shape, minimum)
    if size < minimum:
        raise ValueError(f"{name} needs image_size >= {minimum}, got {size}.")
    inputs = image_input(input_shape)
    x = preprocess(inputs, size, mode)
    base = app(include_top=False, weights=weights, input_tensor=x, pooling=None, **app_kw)
    if bn_momentum is not None:
        if not 0.0 < bn_momentum < 1.0:
            raise ValueError(f"{name} bn_momentum must be in (0, 1), got {bn_momentum!r}.")
        for layer in base.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = float(bn_momentum)
    return keras.Model(inputs, classifier(base.output, num_classes, dropout), name=name)


@register_model(role="teacher")
def resnet50(num_classes, input_shape, weights=None, image_size=None, dropout=0.0):
    """ResNet-50 from keras.applications (He et al., CVPR 2016)."""
    return keras_app(keras.applications.ResNet50, "resnet50", num_classes, input_shape, weights, image_size,
                      "caffe", dropout)


@register_model(role="teacher")
def resnet101(num_classes, input_shape, weights=None, image_size=None, dropout=0.0):
    """ResNet-101 from keras.applications (He et al., CVPR 2016)."""
    return keras_app(keras.applications.ResNet101, "resnet101", num_classes, input_shape, weights, image_size,
                      "caffe", dropout)
