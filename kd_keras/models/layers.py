"""The few custom layers dense models need: size-matching and pixel shuffle.

They are registered Keras-serializable layers, so a saved edge or
super-resolution model loads with `keras.models.load_model` once `kd_keras`
is imported. Each works on inputs of any height and width, which keeps the
models fully convolutional.
"""

from __future__ import annotations

import keras
import numpy as np
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
    Bicubic runs as a fixed convolution and a pixel shuffle (`bicubic_upscale`),
    which equals `tf.image.resize(..., "bicubic")` and, unlike its
    `ResizeBicubic` op, converts to TFLite builtins and to int8.
    """

    def __init__(self, scale: int, interpolation: str = "bicubic", **kwargs):
        super().__init__(**kwargs)
        self.scale = int(scale)
        self.interpolation = _check_interpolation(interpolation)

    def call(self, x):
        if self.interpolation == "bicubic":
            return bicubic_upscale(x, self.scale)
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


def _keys_cubic(t, a: float = -0.5):
    t = np.abs(t)
    return np.where(t <= 1, (a + 2) * t**3 - (a + 3) * t**2 + 1,
                    np.where(t < 2, a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a, 0.0))


def bicubic_taps(scale: int) -> np.ndarray:
    """1-D weights, `(scale, 5)`: output phase p of input pixel i reads pixels i-2..i+2.

    Half-pixel centres and the Keys cubic with a = -0.5, the offset rounded
    to TensorFlow's 1024-entry coefficient table (Keys, IEEE TASSP 1981;
    TF's ResizeBicubic kernel).
    """
    w = np.zeros((scale, 5))
    for p in range(scale):
        c = (p + 0.5) / scale - 0.5
        f = int(np.floor(c))
        t = np.round((c - f) * 1024) / 1024
        for k, d in zip(range(f - 1, f + 3), (1 + t, t, 1 - t, 2 - t)):
            w[p, k + 2] = _keys_cubic(d)
    return w


def _bicubic_kernel(scale: int, channels: int) -> np.ndarray:
    w = bicubic_taps(scale)
    kernel = np.zeros((5, 5, channels, scale * scale * channels), np.float32)
    for py in range(scale):
        for px in range(scale):
            for c in range(channels):
                kernel[:, :, c, (py * scale + px) * channels + c] = np.outer(w[py], w[px])
    return kernel


def bicubic_upscale(x, scale: int):
    """`tf.image.resize(x, scale * size, "bicubic")` from TFLite builtins (conv, depth-to-space, div).

    Each of the `scale**2` output phases is a 5x5 convolution of the
    zero-padded input; dividing by the same convolution of an all-ones image
    renormalises the weights at the border, as TensorFlow does for taps
    that fall outside the image.
    """
    channels = x.shape[-1]
    num = tf.nn.conv2d(x, _bicubic_kernel(scale, channels), 1, "SAME")
    den = tf.nn.conv2d(tf.ones_like(x[..., :1]), _bicubic_kernel(scale, 1), 1, "SAME")
    return tf.nn.depth_to_space(num, scale) / tf.nn.depth_to_space(den, scale)
