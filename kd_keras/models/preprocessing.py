"""In-graph preprocessing, so every model eats raw 0-255 images.

Only built-in Keras layers are used, so a saved student loads with plain
`keras.models.load_model` and an exported one needs no hidden contract.
"""

from __future__ import annotations

import keras
import numpy as np

# Normalisation conventions of the model families.
IMAGENET_MEAN = (123.675, 116.28, 103.53)  # RGB, 0-255 scale
IMAGENET_STD = (58.395, 57.12, 57.375)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
MODES = ("imagenet", "tf", "caffe", "unit", "raw")


def preprocess(inputs, image_size: int | None, mode: str, channels: int = 3, caffe_mean=CAFFE_MEAN_BGR):
    """Applies grey-to-RGB, resize and normalisation to a raw 0-255 tensor.

    Args:
        inputs: symbolic NHWC tensor with raw pixel values 0-255.
        image_size: side the network runs at; `None` keeps the input size.
        mode: `"imagenet"` (mean/std), `"tf"` ([-1, 1]), `"caffe"` (BGR,
            mean-subtracted, as keras.applications ResNet), `"unit"`
            ([0, 1]) or `"raw"` (the network normalises itself).
        channels: channels the network expects.
        caffe_mean: the BGR mean `"caffe"` mode subtracts (models trained in
            Caffe differ in its last digits, e.g. HED's).

    Returns:
        The preprocessed symbolic tensor.
    """
    if mode not in MODES:
        raise ValueError(f"preprocessing mode must be one of {', '.join(MODES)}, got {mode!r}.")
    x = inputs
    if x.shape[-1] == 1 and channels == 3:
        x = keras.layers.Concatenate(axis=-1, name="grey_to_rgb")([x, x, x])
    elif x.shape[-1] != channels:
        raise ValueError(f"cannot feed {x.shape[-1]}-channel images to a {channels}-channel model.")
    if image_size is not None and tuple(x.shape[1:3]) != (image_size, image_size):
        x = keras.layers.Resizing(image_size, image_size, interpolation="bilinear", name="resize")(x)
    if mode == "imagenet":
        mean = IMAGENET_MEAN[:channels] if channels == 3 else IMAGENET_MEAN[:1]
        var = [s * s for s in (IMAGENET_STD[:channels] if channels == 3 else IMAGENET_STD[:1])]
        x = keras.layers.Normalization(mean=list(mean), variance=var, name="normalize")(x)
    elif mode == "tf":
        x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="normalize")(x)
    elif mode == "unit":
        x = keras.layers.Rescaling(1.0 / 255.0, name="normalize")(x)
    elif mode == "caffe":
        # RGB -> BGR and mean subtraction as one fixed 1x1 convolution.
        conv = keras.layers.Conv2D(3, 1, trainable=False, name="caffe_bgr")
        x = conv(x)
        conv.set_weights([np.eye(3, dtype="float32")[::-1].reshape(1, 1, 3, 3), -np.array(caffe_mean, "float32")])
    return x


def image_input(input_shape, name: str = "image"):
    """The raw-image input of every registered model (float32, 0-255)."""
    return keras.Input(shape=tuple(input_shape), dtype="float32", name=name)


def default_size(input_shape, minimum: int = 0) -> int | None:
    """The input's side, raised to a network's minimum size (`None` if unknown)."""
    if input_shape[0] is None or input_shape[1] is None:
        return None
    return max(int(max(input_shape[0], input_shape[1])), minimum)
