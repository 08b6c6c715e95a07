"""Edge detectors: an HED-style teacher on a registry backbone, a tiny U-Net student.

Both take raw 0-255 images of any size and return one boundary logit per
pixel, shape `(H, W, 1)`; `sigmoid` of it is the edge probability.
"""

from __future__ import annotations

import re

import keras

from kd_keras.models.layers import ResizeLike
from kd_keras.models.preprocessing import image_input, preprocess
from kd_keras.models.registry import create_model, list_models, register_model

# Backbone layers that HED taps by default: the stem and each stage's output.
_SIDE_PATTERN = re.compile(r"^(stem_relu|stage\d+_out|block\d+_out)$")
BN = dict(momentum=0.9, epsilon=1e-5)


def side_layer_names(backbone: keras.Model) -> list[str]:
    """The stem and per-stage output layers of a registry backbone, in order."""
    return [layer.name for layer in backbone.layers if _SIDE_PATTERN.match(layer.name)]


@register_model(role="teacher", task="edge_detection")
def hed(input_shape=(None, None, 3), backbone: str = "resnet18", side_layers=(), backbone_options=None,
        backbone_weights=None, full_resolution_side: int = 32):
    """Holistically-nested edge detection on any registry backbone.

    A 1x1 convolution turns each tapped backbone map (stem, then every
    stage: strides 2, 4, 8, 16, 32 for a ResNet) into a side logit map,
    which is resized to the input; a learned 1x1 convolution fuses the side
    maps into the output. The fusion starts as their mean. ResNets start
    at stride 2, so a shallow full-resolution block (two 3x3 convolutions on
    the normalised image, the part VGG's conv1 plays in HED) adds a stride-1
    side output for pixel-accurate boundaries.

    Args:
        backbone: a classification model from the registry with named stage
            outputs (`stage{i}_out` or `block{i}_out`), e.g. "resnet18".
        side_layers: backbone layer names to tap (default: stem and stages).
        backbone_options: options of the backbone factory.
        backbone_weights: backbone weights ("imagenet" where available, or a
            file saved from the same classifier).
        full_resolution_side: filters of the stride-1 side block (0: none).

    Reference:
        Xie, Tu. Holistically-Nested Edge Detection. ICCV 2015.
        https://arxiv.org/abs/1504.06375 ; Liu et al. Richer Convolutional
        Features for Edge Detection (RCF). CVPR 2017.
    """
    classifiers = list_models(task="classification")
    if backbone not in classifiers:
        raise ValueError(f"hed backbone must be a registered classifier ({', '.join(classifiers)}), got {backbone!r}.")
    net = create_model(backbone, 2, input_shape, weights=backbone_weights or None, **dict(backbone_options or {}))
    names = list(side_layers) or side_layer_names(net)
    known = [layer.name for layer in net.layers]
    missing = [n for n in names if n not in known]
    if not names or missing:
        raise ValueError(f"hed side_layers {missing or names} are not layers of backbone {backbone!r}; "
                         f"pick from its stage outputs, e.g. {', '.join(side_layer_names(net)) or known[-5:]}.")
    image = net.inputs[0]
    sides = []
    if full_resolution_side:
        # Reuse the backbone's own input normalisation.
        known_names = {layer.name for layer in net.layers}
        x = net.get_layer("normalize").output if "normalize" in known_names else preprocess(image, None, "imagenet")
        for j in (1, 2):
            x = keras.layers.Conv2D(int(full_resolution_side), 3, padding="same", use_bias=False,
                                    name=f"side0_conv{j}")(x)
            x = keras.layers.BatchNormalization(**BN, name=f"side0_bn{j}")(x)
            x = keras.layers.ReLU(name=f"side0_relu{j}")(x)
        sides.append(keras.layers.Conv2D(1, 1, name="side0")(x))
    for i, layer in enumerate(names, start=1):
        s = keras.layers.Conv2D(1, 1, name=f"side{i}_score")(net.get_layer(layer).output)
        sides.append(ResizeLike(name=f"side{i}")([s, image]))
    x = keras.layers.Concatenate(name="sides")(sides) if len(sides) > 1 else sides[0]
    fuse = keras.layers.Conv2D(1, 1, kernel_initializer=keras.initializers.Constant(1.0 / len(sides)),
                               name="edge_logits")(x)
    return keras.Model(image, fuse, name=f"hed_{backbone}")


def _conv_bn_relu(x, filters: int, name: str):
    x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(**BN, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


@register_model(role="student", task="edge_detection")
def edge_unet(input_shape=(None, None, 3), widths=(8, 16, 32, 64)):
    """A tiny U-Net edge student (about 0.1 M parameters at the default widths).

    Each encoder level is two 3x3 conv-BN-ReLU layers then 2x2 max-pooling;
    each decoder level resizes to the skip, concatenates it and applies one
    conv-BN-ReLU. Encoder and decoder outputs are named `enc{i}_out` and
    `dec{i}_out` for feature losses.

    Args:
        widths: filters per encoder level, shallowest first.

    Reference:
        Ronneberger, Fischer, Brox. U-Net: Convolutional Networks for
        Biomedical Image Segmentation. MICCAI 2015.
        https://arxiv.org/abs/1505.04597
    """
    widths = [int(w) for w in widths]
    if not widths or min(widths) < 1:
        raise ValueError(f"edge_unet widths must be positive integers, got {widths!r}.")
    inputs = image_input(input_shape)
    x = preprocess(inputs, None, "imagenet")
    skips = []
    for i, w in enumerate(widths, start=1):
        if i > 1:
            x = keras.layers.MaxPooling2D(2, padding="same", name=f"enc{i}_pool")(x)
        x = _conv_bn_relu(x, w, f"enc{i}a")
        x = _conv_bn_relu(x, w, f"enc{i}b")
        x = keras.layers.Identity(name=f"enc{i}_out")(x)
        skips.append(x)
    for i in range(len(widths) - 1, 0, -1):
        skip = skips[i - 1]
        x = ResizeLike(name=f"dec{i}_up")([x, skip])
        x = keras.layers.Concatenate(name=f"dec{i}_cat")([x, skip])
        x = _conv_bn_relu(x, widths[i - 1], f"dec{i}")
        x = keras.layers.Identity(name=f"dec{i}_out")(x)
    out = keras.layers.Conv2D(1, 1, name="edge_logits")(x)
    return keras.Model(inputs, out, name="edge_unet")
