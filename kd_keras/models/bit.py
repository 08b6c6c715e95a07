"""BiT: ResNet-V2 with GroupNorm and weight standardisation.

Kolesnikov, Beyer, Zhai, Puigcerver, Yung, Gelly, Houlsby. Big Transfer
(BiT): General Visual Representation Learning. ECCV 2020.
https://arxiv.org/abs/1912.11370

The architecture follows google-research/big_transfer (`bit_tf2/models.py`):
pre-activation bottleneck units, stride on the 3x3 conv, GroupNorm with 32
groups, and weight-standardised convolutions. BiT-M weights cannot be
downloaded here; pass them as a local `.keras`/`.weights.h5` file.
"""

from __future__ import annotations

import keras
from keras import ops

from kd_keras.models.heads import classifier
from kd_keras.models.preprocessing import image_input, preprocess
from kd_keras.models.registry import register_model


@keras.saving.register_keras_serializable(package="kd_keras")
class StdConv2D(keras.layers.Conv2D):
    """Conv2D whose kernel is standardised (zero mean, unit variance per filter)
    at every call (Qiao et al., Weight Standardization, 2019)."""

    def convolution_op(self, inputs, kernel):
        mean = ops.mean(kernel, axis=(0, 1, 2), keepdims=True)
        var = ops.var(kernel, axis=(0, 1, 2), keepdims=True)
        return super().convolution_op(inputs, (kernel - mean) / ops.sqrt(var + 1e-10))


def _gn(name):
    return keras.layers.GroupNormalization(groups=32, epsilon=1e-5, name=name)


def _unit(x, filters: int, stride: int, name: str):
    """Pre-activation bottleneck unit; `filters` is the output width."""
    mid = filters // 4
    pre = keras.layers.ReLU(name=f"{name}_preact_relu")(_gn(f"{name}_preact_gn")(x))
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = StdConv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_proj")(pre)
    y = StdConv2D(mid, 1, use_bias=False, name=f"{name}_conv1")(pre)
    y = keras.layers.ReLU(name=f"{name}_relu1")(_gn(f"{name}_gn1")(y))
    y = StdConv2D(mid, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    y = keras.layers.ReLU(name=f"{name}_relu2")(_gn(f"{name}_gn2")(y))
    y = StdConv2D(filters, 1, use_bias=False, name=f"{name}_conv3")(y)
    return keras.layers.Add(name=f"{name}_out")([shortcut, y])


def resnet_v2_gn_ws(num_classes, input_shape, blocks, width: int, name: str, image_size: int = 224):
    inputs = image_input(input_shape)
    x = preprocess(inputs, image_size, "tf")
    x = StdConv2D(64 * width, 7, strides=2, padding="same", use_bias=False, name="root_conv")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="root_pool")(x)
    for stage, (n, f) in enumerate(zip(blocks, (256, 512, 1024, 2048)), start=1):
        for b in range(n):
            x = _unit(x, f * width, 2 if (b == 0 and stage > 1) else 1, name=f"block{stage}_unit{b + 1:02d}")
        x = keras.layers.Identity(name=f"block{stage}_out")(x)
    x = keras.layers.ReLU(name="pre_head_relu")(_gn("pre_head_gn")(x))
    return keras.Model(inputs, classifier(x, num_classes), name=name)


@register_model(role="teacher")
def bit_m_r50x1(num_classes, input_shape, image_size=224):
    """BiT-M R50x1 architecture (25.5M parameters with a 1000-class head).

    Args:
        image_size: side the network runs at; BiT-HyperRule uses 128 for
            images under 96x96 px and 224 (or 384/480) otherwise.
    """
    return resnet_v2_gn_ws(num_classes, input_shape, (3, 4, 6, 3), 1, "bit_m_r50x1", image_size)
