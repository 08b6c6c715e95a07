"""CIFAR-style ResNets (He et al. 2016, section 4.2), as used by CRD and DKD.

`resnetN` has three stages of (N - 2) / 6 basic blocks with 16/32/64
filters; the `x4` variants have a 32-filter stem and 64/128/256 stages
(Tian et al., Contrastive Representation Distillation, ICLR 2020).
Stage outputs are named `stage{1..3}_out`.
"""

from __future__ import annotations

import keras

from kd_keras.models.heads import classifier
from kd_keras.models.preprocessing import default_size, image_input, preprocess
from kd_keras.models.registry import register_model
from kd_keras.models.resnet import BN, basic_block


def cifar_resnet(num_classes, input_shape, depth: int, filters, name: str, image_size=None):
    if (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n + 2, got {depth}.")
    n = (depth - 2) // 6
    inputs = image_input(input_shape)
    x = preprocess(inputs, image_size or default_size(input_shape), "imagenet")
    x = keras.layers.Conv2D(filters[0], 3, padding="same", use_bias=False, name="stem_conv")(x)
    x = keras.layers.BatchNormalization(**BN, name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    for stage, f in enumerate(filters[1:], start=1):
        for b in range(n):
            x = basic_block(x, f, 2 if (b == 0 and stage > 1) else 1, name=f"stage{stage}_block{b + 1}")
        x = keras.layers.Identity(name=f"stage{stage}_out")(x)
    return keras.Model(inputs, classifier(x, num_classes), name=name)


@register_model(role="teacher", shipped={"fashion_mnist_small": "fashion_mnist_small_resnet20.keras"})
def resnet20(num_classes, input_shape, image_size=None):
    """CIFAR ResNet-20, 0.27M parameters.

    Shipped weights `"fashion_mnist_small"`: trained on the embedded
    Fashion-MNIST subset, 28x28x1, 10 classes (the default recipe's
    teacher; card: `kd_keras/assets/fashion_mnist_small_resnet20.md`).
    """
    return cifar_resnet(num_classes, input_shape, 20, (16, 16, 32, 64), "resnet20", image_size)


@register_model(role="teacher")
def resnet56(num_classes, input_shape, image_size=None):
    """CIFAR ResNet-56, 0.86M parameters."""
    return cifar_resnet(num_classes, input_shape, 56, (16, 16, 32, 64), "resnet56", image_size)


@register_model(role="teacher")
def resnet110(num_classes, input_shape, image_size=None):
    """CIFAR ResNet-110, 1.7M parameters."""
    return cifar_resnet(num_classes, input_shape, 110, (16, 16, 32, 64), "resnet110", image_size)


@register_model(role="any")
def resnet8x4(num_classes, input_shape, image_size=None):
    """CIFAR ResNet-8x4 (CRD's student), 1.2M parameters."""
    return cifar_resnet(num_classes, input_shape, 8, (32, 64, 128, 256), "resnet8x4", image_size)


@register_model(role="teacher")
def resnet32x4(num_classes, input_shape, image_size=None):
    """CIFAR ResNet-32x4 (CRD's teacher), 7.4M parameters."""
    return cifar_resnet(num_classes, input_shape, 32, (32, 64, 128, 256), "resnet32x4", image_size)
