"""Mobile students from keras.applications: MobileNetV2/V3, EfficientNet."""

from __future__ import annotations

import keras

from kd_keras.models.registry import register_model
from kd_keras.models.resnet import keras_app

_ALPHAS_V2 = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)

# keras.applications builds the MobileNets with BatchNormalization momentum
# 0.999, so the moving statistics keep 0.999**n of their start after n steps
# (70% after 355). A short run from scratch then evaluates at chance: on
# cifar10_small, MobileNetV2 after 5 epochs (355 steps) had 35% training
# accuracy and 10.00% test accuracy. Keras' own default, 0.99, is used instead;
# it is a hyperparameter, not a weight, so ImageNet weights load unchanged.
BN_MOMENTUM = 0.99


@register_model(role="student")
def mobilenet_v2(num_classes, input_shape, weights=None, image_size=None, alpha=1.0, dropout=0.0,
                 bn_momentum=BN_MOMENTUM):
    """MobileNetV2 (Sandler et al., CVPR 2018); `alpha` 1.0, 0.5 or 0.35 scales the width.

    `bn_momentum` 0.999 restores keras.applications' BatchNormalization (see `BN_MOMENTUM`).
    """
    if alpha not in _ALPHAS_V2:
        raise ValueError(f"mobilenet_v2 alpha must be one of {_ALPHAS_V2}, got {alpha!r}.")
    name = "mobilenet_v2" if alpha == 1.0 else f"mobilenet_v2_{alpha}".replace(".", "_")
    return keras_app(keras.applications.MobileNetV2, name, num_classes, input_shape, weights, image_size, "tf",
                      dropout, bn_momentum=bn_momentum, alpha=alpha)


@register_model(role="student")
def mobilenet_v3_small(num_classes, input_shape, weights=None, image_size=None, dropout=0.0,
                       bn_momentum=BN_MOMENTUM):
    """MobileNetV3-Small (Howard et al., ICCV 2019); normalises inside; `bn_momentum` as in `mobilenet_v2`."""
    return keras_app(keras.applications.MobileNetV3Small, "mobilenet_v3_small", num_classes, input_shape, weights,
                      image_size, "raw", dropout, bn_momentum=bn_momentum, include_preprocessing=True)


@register_model(role="student")
def mobilenet_v3_large(num_classes, input_shape, weights=None, image_size=None, dropout=0.0,
                       bn_momentum=BN_MOMENTUM):
    """MobileNetV3-Large (Howard et al., ICCV 2019); normalises inside; `bn_momentum` as in `mobilenet_v2`."""
    return keras_app(keras.applications.MobileNetV3Large, "mobilenet_v3_large", num_classes, input_shape, weights,
                      image_size, "raw", dropout, bn_momentum=bn_momentum, include_preprocessing=True)


@register_model(role="student")
def efficientnet_b0(num_classes, input_shape, weights=None, image_size=None, dropout=0.2):
    """EfficientNet-B0 (Tan & Le, ICML 2019); native size 224, normalises inside."""
    return keras_app(keras.applications.EfficientNetB0, "efficientnet_b0", num_classes, input_shape, weights,
                      image_size, "raw", dropout)


@register_model(role="student")
def efficientnet_b3(num_classes, input_shape, weights=None, image_size=None, dropout=0.3):
    """EfficientNet-B3 (Tan & Le, ICML 2019); native size 300, normalises inside."""
    return keras_app(keras.applications.EfficientNetB3, "efficientnet_b3", num_classes, input_shape, weights,
                      image_size, "raw", dropout)
