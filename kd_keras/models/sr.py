"""Super-resolution models: EDSR-baseline teacher, FSRCNN student (with ESPCN's sub-pixel output), bicubic.

Each takes a raw 0-255 low-resolution RGB image of any size and returns the
`scale`-times larger image, also on the 0-255 scale (not clipped: clip and
round when writing an image).
"""

from __future__ import annotations

import keras

from kd_keras.models.layers import PixelShuffle, Upscale
from kd_keras.models.preprocessing import image_input
from kd_keras.models.registry import register_model

SCALES = (2, 3, 4)
# The RGB mean of DIV2K, which EDSR subtracts (0-1 scale).
DIV2K_MEAN = (0.4488, 0.4371, 0.4040)


def check_scale(scale) -> int:
    """Validates a super-resolution factor."""
    if isinstance(scale, bool) or not isinstance(scale, int) or scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(map(str, SCALES))}, got {scale!r}.")
    return scale


def _rgb(inputs):
    if inputs.shape[-1] == 1:
        return keras.layers.Concatenate(name="grey_to_rgb")([inputs, inputs, inputs])
    return inputs


def _normalise(x):
    return keras.layers.Rescaling(1.0 / 255.0, offset=[-m for m in DIV2K_MEAN], name="normalize")(x)


def _denormalise(x):
    return keras.layers.Rescaling(255.0, offset=[255.0 * m for m in DIV2K_MEAN], name="denormalize")(x)


def _upsampler(x, filters: int, scale: int):
    """EDSR's upsampler: one x2 or x3 sub-pixel step, or two x2 steps for x4."""
    steps = [2, 2] if scale == 4 else [scale]
    for i, r in enumerate(steps, start=1):
        x = keras.layers.Conv2D(filters * r * r, 3, padding="same", name=f"upsample{i}_conv")(x)
        x = PixelShuffle(r, name=f"upsample{i}_shuffle")(x)
    return x


@register_model(role="teacher", task="super_resolution")
def edsr_baseline(input_shape=(None, None, 3), scale: int = 2, blocks: int = 16, filters: int = 64,
                  residual: bool = True):
    """EDSR-baseline: residual blocks without BatchNorm, long skip, sub-pixel upsampler.

    16 blocks of 64 filters (1.37 M parameters at x2). Block outputs are
    named `block{i}_out` for feature losses (FAKD). With `residual` (a
    departure from the paper, for short CPU budgets), the output is added
    to the bicubic upscaling and the last convolution starts at zero, so the
    untrained network is exactly bicubic and training only adds detail.

    Reference:
        Lim, Son, Kim, Nah, Lee. Enhanced Deep Residual Networks for Single
        Image Super-Resolution. CVPR Workshops 2017.
        https://arxiv.org/abs/1707.02921
    """
    scale = check_scale(scale)
    inputs = image_input(input_shape)
    rgb = _rgb(inputs)
    x = _normalise(rgb)
    head = keras.layers.Conv2D(filters, 3, padding="same", name="head_conv")(x)
    x = head
    for i in range(1, blocks + 1):
        y = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"block{i}_conv1")(x)
        y = keras.layers.Conv2D(filters, 3, padding="same", name=f"block{i}_conv2")(y)
        x = keras.layers.Add(name=f"block{i}_out")([x, y])
    x = keras.layers.Conv2D(filters, 3, padding="same", name="body_conv")(x)
    x = keras.layers.Add(name="body_skip")([x, head])
    x = _upsampler(x, filters, scale)
    if residual:
        x = keras.layers.Conv2D(3, 3, padding="same", kernel_initializer="zeros", name="tail_conv")(x)
        return _add_bicubic(x, inputs, rgb, scale, f"edsr_baseline_x{scale}")
    x = keras.layers.Conv2D(3, 3, padding="same", name="tail_conv")(x)
    return keras.Model(inputs, _denormalise(x), name=f"edsr_baseline_x{scale}")


def _add_bicubic(residual, inputs, rgb, scale: int, name: str) -> keras.Model:
    """Output = bicubic(rgb) + 255 * residual: the network learns only the detail."""
    residual = keras.layers.Rescaling(255.0, name="residual_scale")(residual)
    return keras.Model(inputs, keras.layers.Add(name="sr")([residual, Upscale(scale, name="bicubic")(rgb)]),
                       name=name)


@register_model(role="student", task="super_resolution")
def fsrcnn(input_shape=(None, None, 3), scale: int = 2, d: int = 56, s: int = 12, m: int = 4,
           residual: bool = True):
    """FSRCNN's hourglass body with an ESPCN sub-pixel output layer.

    Feature extraction (5x5, d), shrinking (1x1, s), m mapping layers
    (3x3, s), expanding (1x1, d), all PReLU (slope 0.25 at the start), run at low resolution; a 3x3
    convolution to `3 * scale^2` channels and a pixel shuffle produce the
    image. With `residual`, the network predicts the difference to the
    bicubic upscaling (as VDSR), which trains much faster on a CPU budget.
    About 17 k parameters at x2. Mapping outputs are named `map{i}_out`.

    Reference:
        Dong, Loy, Tang. Accelerating the Super-Resolution Convolutional
        Neural Network. ECCV 2016. https://arxiv.org/abs/1608.00367 ;
        Shi et al. (ESPCN), CVPR 2016.
    """
    scale = check_scale(scale)
    inputs = image_input(input_shape)
    rgb = _rgb(inputs)
    x = _normalise(rgb)

    def conv(x, filters, kernel, name):
        x = keras.layers.Conv2D(filters, kernel, padding="same", name=f"{name}_conv")(x)
        # Slope 0.25 at the start, as FSRCNN's PReLU (He et al. 2015; PyTorch's default). Keras' default,
        # 0, starts as a ReLU: a 12-channel hourglass of seven of them can start dead and stay at bicubic.
        return keras.layers.PReLU(alpha_initializer=keras.initializers.Constant(0.25), shared_axes=[1, 2],
                                  name=f"{name}_out")(x)

    x = conv(x, d, 5, "extract")
    x = conv(x, s, 1, "shrink")
    for i in range(1, m + 1):
        x = conv(x, s, 3, f"map{i}")
    x = conv(x, d, 1, "expand")
    init = "zeros" if residual else "glorot_uniform"
    x = keras.layers.Conv2D(3 * scale * scale, 3, padding="same", kernel_initializer=init, name="subpixel_conv")(x)
    x = PixelShuffle(scale, name="subpixel_shuffle")(x)
    if residual:
        return _add_bicubic(x, inputs, rgb, scale, f"fsrcnn_x{scale}")
    return keras.Model(inputs, _denormalise(x), name=f"fsrcnn_x{scale}")


@register_model(role="reference", task="super_resolution")
def bicubic(input_shape=(None, None, 3), scale: int = 2):
    """Bicubic upscaling (no parameters): the baseline every SR table reports."""
    scale = check_scale(scale)
    inputs = image_input(input_shape)
    return keras.Model(inputs, Upscale(scale, name="bicubic")(_rgb(inputs)), name=f"bicubic_x{scale}")
