"""Super-resolution metrics: PSNR and SSIM on the Y channel, with a shaved border.

The standard protocol of SR papers since SRCNN: both images are rounded to
8 bits, converted to the Y (luma) channel of ITU-R BT.601 YCbCr as MATLAB's
`rgb2ycbcr` does, and `scale` pixels are shaved from every border before
comparing. SSIM uses an 11x11 Gaussian window with sigma 1.5 (Wang et al.,
IEEE TIP 2004).
"""

from __future__ import annotations

import math

import keras
import numpy as np


def rgb_to_y(image) -> np.ndarray:
    """Y of BT.601 YCbCr on the 0-255 scale (range 16-235), as MATLAB's rgb2ycbcr."""
    x = np.asarray(image, np.float64)
    if x.ndim == 2 or x.shape[-1] == 1:
        return x.reshape(x.shape[:2])
    return 16.0 + (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255.0


def _prepare(output, reference, shave: int):
    output, reference = np.asarray(output), np.asarray(reference)
    if output.shape != reference.shape:
        raise ValueError(f"output {output.shape} and reference {reference.shape} images differ in size.")
    if shave < 0 or 2 * shave >= min(output.shape[:2]):
        raise ValueError(f"shave must be >= 0 and leave pixels, got {shave} for size {output.shape[:2]}.")
    q = lambda im: rgb_to_y(np.clip(np.round(np.asarray(im, np.float64)), 0, 255))  # noqa: E731
    a, b = q(output), q(reference)
    if shave:
        a, b = a[shave:-shave, shave:-shave], b[shave:-shave, shave:-shave]
    return a, b


def psnr(output, reference, shave: int = 0) -> float:
    """PSNR in dB of the Y channel; `math.inf` for identical images."""
    a, b = _prepare(output, reference, shave)
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0 ** 2 / mse)


def ssim(output, reference, shave: int = 0) -> float:
    """SSIM of the Y channel (Gaussian window, sigma 1.5, K1 0.01, K2 0.03)."""
    from skimage.metrics import structural_similarity

    a, b = _prepare(output, reference, shave)
    return float(structural_similarity(a, b, data_range=255.0, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False))


@keras.saving.register_keras_serializable(package="kd_keras")
class PSNR(keras.metrics.Mean):
    """Mean RGB PSNR (dB) of 0-255 outputs over images: a training monitor.

    Not the reported metric (that is Y-channel PSNR with a shaved border,
    see `psnr`). Identical images count as 100 dB here, so the mean stays
    finite.
    """

    def __init__(self, name: str = "psnr", **kwargs):
        super().__init__(name=name, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        from keras import ops

        diff = ops.clip(ops.cast(y_pred, "float32"), 0.0, 255.0) - ops.cast(y_true, "float32")
        mse = ops.mean(ops.reshape(ops.square(diff), (ops.shape(diff)[0], -1)), axis=-1)
        value = 10.0 * ops.log(255.0 ** 2 / ops.maximum(mse, 255.0 ** 2 * 1e-10)) / math.log(10.0)
        return super().update_state(value, sample_weight)
