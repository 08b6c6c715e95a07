"""Mobile students from keras.applications: MobileNetV2/V3, EfficientNet."""

from __future__ import annotations

import keras

from kd_keras.models.registry import register_model
from kd_keras.models.resnet import _keras_app

_ALPHAS_V2 = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)


@register_model(role="student")
def mobilenet_v2(num_classes, input_shape, weights=None, image_size=None, alpha=1.0, dropout=0.0):
    """MobileNetV2 (Sandler et al., CVPR 2018); `alpha` 1.0, 0.5 or 0.35 scales the width."""
    if alpha not in _ALPHAS_V2:
        raise ValueError(f"mobilenet_v2 alpha must be one of {_ALPHAS_V2}, got {alpha!r}.")
    name = "mobilenet_v2" if alpha == 1.0 else f"mobilenet_v2_{alpha}".replace(".", "_")
    return _keras_app(keras.applications.MobileNetV2, name, num_classes, input_shape, weights, image_size, "tf",
                      dropout, alpha=alpha)


@register_model(role="student")
def mobilenet_v3_small(num_classes, input_shape, weights=None, image_size=None, dropout=0.0):
    """MobileNetV3-Small (Howard et al., ICCV 2019); normalises inside."""
    return _keras_app(keras.applications.MobileNetV3Small, "mobilenet_v3_small", num_classes, input_shape, weights,
                      image_size, "raw", dropout, include_preprocessing=True)


@register_model(role="student")
def mobilenet_v3_large(num_classes, input_shape, weights=None, image_size=None, dropout=0.0):
    """MobileNetV3-Large (Howard et al., ICCV 2019); normalises inside."""
    return _keras_app(keras.applications.MobileNetV3Large, "mobilenet_v3_large", num_classes, input_shape, weights,
                      image_size, "raw", dropout, include_preprocessing=True)


@register_model(role="student")
def efficientnet_b0(num_classes, input_shape, weights=None, image_size=None, dropout=0.2):
    """EfficientNet-B0 (Tan & Le, ICML 2019); native size 224, normalises inside."""
    return _keras_app(keras.applications.EfficientNetB0, "efficientnet_b0", num_classes, input_shape, weights,
                      image_size, "raw", dropout)


@register_model(role="student")
def efficientnet_b3(num_classes, input_shape, weights=None, image_size=None, dropout=0.3):
    """EfficientNet-B3 (Tan & Le, ICML 2019); native size 300, normalises inside."""
    return _keras_app(keras.applications.EfficientNetB3, "efficientnet_b3", num_classes, input_shape, weights,
                      image_size, "raw", dropout)
