"""BiT: ResNet-V2 with GroupNorm and weight standardisation.

Kolesnikov, Beyer, Zhai, Puigcerver, Yung, Gelly, Houlsby. Big Transfer
(BiT): General Visual Representation Learning. ECCV 2020.
https://arxiv.org/abs/1912.11370

The architecture follows google-research/big_transfer (`bit_tf2/models.py`):
pre-activation bottleneck units, stride on the 3x3 conv, GroupNorm with 32
groups, weight-standardised convolutions, and the original's symmetric zero
padding before each strided conv and the root max-pool (not Keras "same").
BiT-M weights load from a local TF-Hub SavedModel folder
(`load_savedmodel_weights`, e.g. the unpacked https://tfhub.dev/google/bit/m-r50x1/1)
or a converted `.keras`/`.weights.h5` file; they cannot be downloaded here.
"""

from __future__ import annotations

import os
import re

import keras
import numpy as np
from keras import ops

from kd_keras.models.heads import classifier
from kd_keras.models.preprocessing import default_size, image_input, preprocess
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
    y = keras.layers.ZeroPadding2D(1, name=f"{name}_pad2")(y)
    y = StdConv2D(mid, 3, strides=stride, use_bias=False, name=f"{name}_conv2")(y)
    y = keras.layers.ReLU(name=f"{name}_relu2")(_gn(f"{name}_gn2")(y))
    y = StdConv2D(filters, 1, use_bias=False, name=f"{name}_conv3")(y)
    return keras.layers.Add(name=f"{name}_out")([shortcut, y])


def resnet_v2_gn_ws(num_classes, input_shape, blocks, width: float, name: str, image_size: int = 224):
    inputs = image_input(input_shape)
    x = preprocess(inputs, image_size, "tf")
    x = keras.layers.ZeroPadding2D(3, name="root_pad")(x)
    x = StdConv2D(int(64 * width), 7, strides=2, use_bias=False, name="root_conv")(x)
    x = keras.layers.ZeroPadding2D(1, name="root_pool_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="root_pool")(x)
    for stage, (n, f) in enumerate(zip(blocks, (256, 512, 1024, 2048)), start=1):
        for b in range(n):
            x = _unit(x, int(f * width), 2 if (b == 0 and stage > 1) else 1, name=f"block{stage}_unit{b + 1:02d}")
        x = keras.layers.Identity(name=f"block{stage}_out")(x)
    x = keras.layers.ReLU(name="pre_head_relu")(_gn("pre_head_gn")(x))
    return keras.Model(inputs, classifier(x, num_classes), name=name)


def load_folder(model: keras.Model, path: str) -> None:
    """The registry's `folder_loader` for BiT: a TF-Hub SavedModel folder."""
    if not is_savedmodel(path):
        raise ValueError(f"weights folder {path!r} is not a TF-Hub SavedModel (it has no saved_model.pb); "
                         f"pass a BiT SavedModel folder, or a .keras or .weights.h5 file.")
    load_savedmodel_weights(model, path)


@register_model(role="teacher", folder_loader=load_folder)
def bit_m_r50x1(num_classes, input_shape, image_size=None):
    """BiT-M R50x1 architecture (25.5M parameters with a 1000-class head).

    Args:
        image_size: side the network runs at (default: the input's, at
            least 32); BiT-HyperRule uses 128 for images under 96x96 px and
            224 (or 384/480) otherwise.
    """
    size = image_size or default_size(input_shape, minimum=32)
    return resnet_v2_gn_ws(num_classes, input_shape, (3, 4, 6, 3), 1, "bit_m_r50x1", size)


@register_model(role="teacher", folder_loader=load_folder)
def bit_resnet(num_classes, input_shape, blocks=(2, 2, 2, 2), width: float = 0.5, image_size=None):
    """BiT's architecture (ResNetV2, GroupNorm, weight standardisation) at any depth and width.

    No published weights: a smaller teacher of the BiT family, trained from
    scratch where BiT-M R50x1 (94 MB, pretrained on ImageNet-21k) cannot be
    downloaded or shipped. The defaults make an "R26x0.5": 2 units per stage,
    half of R50x1's filters (3.5 M parameters with 10 classes).

    Args:
        blocks: bottleneck units per stage (R50: 3, 4, 6, 3).
        width: filter multiplier of R50x1; stage widths must stay multiples
            of 128 (GroupNorm's 32 groups of the bottleneck's quarter width).
        image_size: side the network runs at (default: the input's, at least 32).

    Reference:
        Kolesnikov et al. Big Transfer (BiT): General Visual Representation
        Learning. ECCV 2020. https://arxiv.org/abs/1912.11370
    """
    blocks = tuple(int(b) for b in blocks)
    if not blocks or len(blocks) > 4 or min(blocks) < 1:
        raise ValueError(f"bit_resnet blocks must be 1 to 4 positive unit counts, got {blocks!r}.")
    if not width > 0 or (256 * width) % 128:
        raise ValueError(f"bit_resnet width must make 256 * width a multiple of 128 (0.5, 1, 1.5, ...), got {width!r}.")
    size = image_size or default_size(input_shape, minimum=32)
    return resnet_v2_gn_ws(num_classes, input_shape, blocks, width, "bit_resnet", size)


# TF-Hub BiT variable paths (bit_tf2 naming) -> kd_keras layer and weight.
_HUB_NAMES = [
    (r"root_block/standardized_conv2d/kernel", "root_conv", 0),
    (r"block(\d+)/unit(\d+)/a/proj/standardized_conv2d/kernel", "block{0}_unit{1}_proj", 0),
    (r"block(\d+)/unit(\d+)/a/standardized_conv2d/kernel", "block{0}_unit{1}_conv1", 0),
    (r"block(\d+)/unit(\d+)/a/group_norm/(gamma|beta)", "block{0}_unit{1}_preact_gn", None),
    (r"block(\d+)/unit(\d+)/b/group_norm/(gamma|beta)", "block{0}_unit{1}_gn1", None),
    (r"block(\d+)/unit(\d+)/b/standardized_conv2d/kernel", "block{0}_unit{1}_conv2", 0),
    (r"block(\d+)/unit(\d+)/c/group_norm/(gamma|beta)", "block{0}_unit{1}_gn2", None),
    (r"block(\d+)/unit(\d+)/c/standardized_conv2d/kernel", "block{0}_unit{1}_conv3", 0),
    (r"(?:^|/)group_norm/(gamma|beta)", "pre_head_gn", None),
]


def _hub_target(name: str):
    """(layer name, weight index) of a TF-Hub BiT variable, or None (the head, counters)."""
    name = name.split(":")[0]
    for pattern, layer, index in _HUB_NAMES:
        m = re.search(pattern + "$", name)
        if m:
            groups = m.groups()
            if index is None:  # GroupNormalization weights: [gamma, beta]
                index = 0 if groups[-1] == "gamma" else 1
                groups = groups[:-1]
            block_unit = (groups[0], f"{int(groups[1]):02d}") if len(groups) >= 2 else ()
            return layer.format(*block_unit), index
    return None


def load_savedmodel_weights(model: keras.Model, path: str) -> int:
    """Loads BiT weights from a TF-Hub SavedModel folder into a registry BiT model.

    Every backbone variable must find its layer and shape; the
    classification head is not loaded (its classes differ), so fine-tune
    the model (`teacher.finetune = true` in a recipe).

    Returns:
        The number of variables loaded.
    """
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(path)
    except Exception as e:  # TF raises several types for a bad folder
        raise ValueError(f"cannot load the SavedModel {path!r} ({type(e).__name__}: "
                         f"{str(e).strip().splitlines()[0][:120]}).") from None
    variables = list(getattr(loaded, "variables", None) or [])  # the Reusable SavedModel API (TF-Hub)
    if not variables:  # any other SavedModel: every variable it tracks
        variables = [v for v in tf.train.TrackableView(loaded).descendants() if isinstance(v, tf.Variable)]
    values = {}
    for v in variables:
        target = _hub_target(v.name)
        if target is not None:
            values[target] = v.numpy()
    layers = {layer.name: layer for layer in model.layers}
    loaded_count = 0
    for layer_name in sorted({t[0] for t in values}):
        if layer_name not in layers:
            raise ValueError(f"{path!r} has weights for {layer_name!r}, which model {model.name!r} lacks; "
                             f"is it a BiT model of another depth?")
        layer = layers[layer_name]
        weights = layer.get_weights()
        for index, current in enumerate(weights):
            value = values.get((layer_name, index))
            if value is None:
                raise ValueError(f"{path!r} has no weight {index} of layer {layer_name!r}; not a BiT SavedModel?")
            if value.size != current.size:
                raise ValueError(f"{path!r}: {layer_name!r} weight {index} has shape {value.shape}, the model "
                                 f"needs {current.shape}; is it another BiT width?")
            weights[index] = np.reshape(value, current.shape)
            loaded_count += 1
        layer.set_weights(weights)
    expected = sum(len(layer.get_weights()) for layer in model.layers
                   if isinstance(layer, (StdConv2D, keras.layers.GroupNormalization)))
    if loaded_count != expected:
        raise ValueError(f"{path!r} gave {loaded_count} of the {expected} backbone weights of {model.name!r}; "
                         f"not a BiT SavedModel?")
    return loaded_count


def is_savedmodel(path: str) -> bool:
    return os.path.isdir(path) and os.path.exists(os.path.join(path, "saved_model.pb"))
