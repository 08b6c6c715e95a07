"""The few custom layers dense models need: size-matching and pixel shuffle.

They are registered Keras-serializable layers, so a saved edge or
super-resolution model loads with `keras.models.load_model` once `kd_keras`
is imported. Each works on inputs of any height and width, which keeps the
models fully convolutional.
"""

from __future__ import annotations

import keras
import tensorflow as tf

INTERPOLATIONS = ("bilinear", "bicubic", "nearest")


def _check_interpolation(interpolation: str) -> str:
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {interpolation!r}.")
    return interpolation


@keras.saving.register_keras_serializable(package="kd_keras")
class ResizeLike(keras.layers.Layer):
    """Resizes `inputs[0]` to the height and width of `inputs[1]`.

    Side outputs of an edge network (Xie & Tu, HED, ICCV 2015) and U-Net
    skips (Ronneberger et al., MICCAI 2015) come at 1/2, 1/4, ... of the
    input; this brings them back to the exact input size, also for odd
    sizes, where a fixed `UpSampling2D` would overshoot by a pixel.
    """

    def __init__(self, interpolation: str = "bilinear", **kwargs):
        super().__init__(**kwargs)
        self.interpolation = _check_interpolation(interpolation)

    def call(self, inputs):
        x, reference = inputs
        # tf.image.resize takes a dynamic size; keras.ops.image.resize needs it static.
        return tf.image.resize(x, tf.shape(reference)[1:3], method=self.interpolation)

    def compute_output_shape(self, input_shape):
        x, reference = input_shape
        return (x[0], reference[1], reference[2], x[3])

    def get_config(self):
        return {**super().get_config(), "interpolation": self.interpolation}


@keras.saving.register_keras_serializable(package="kd_keras")
class Upscale(keras.layers.Layer):
    """Resizes an image by an integer factor (bicubic by default).

    The bicubic baseline of super-resolution, and the global skip that lets a
    small SR network learn only the residual (Kim et al., VDSR, CVPR 2016).
    """

    def __init__(self, scale: int, interpolation: str = "bicubic", **kwargs):
        super().__init__(**kwargs)
        self.scale = int(scale)
        self.interpolation = _check_interpolation(interpolation)

    def call(self, x):
        return tf.image.resize(x, tf.shape(x)[1:3] * self.scale, method=self.interpolation)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, None if h is None else h * self.scale, None if w is None else w * self.scale, c)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "interpolation": self.interpolation}


@keras.saving.register_keras_serializable(package="kd_keras")
class PixelShuffle(keras.layers.Layer):
    """Sub-pixel convolution output: `(H, W, C*r*r)` -> `(H*r, W*r, C)`.

    Reference:
        Shi et al. Real-Time Single Image and Video Super-Resolution Using an
        Efficient Sub-Pixel Convolutional Neural Network. CVPR 2016.
        https://arxiv.org/abs/1609.05158
    """

    def __init__(self, scale: int, **kwargs):
        super().__init__(**kwargs)
        self.scale = int(scale)

    def call(self, x):
        return tf.nn.depth_to_space(x, self.scale)  # one TFLite op

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        r = self.scale
        return (n, None if h is None else h * r, None if w is None else w * r, c // (r * r))

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}
