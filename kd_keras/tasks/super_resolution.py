"""Single-image super-resolution: LR -> HR, L1 loss, PSNR/SSIM on Y with a shaved border."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from kd_keras.data.images import DenseSplits
from kd_keras.data.sr import load_skimage, load_sr_folders
from kd_keras.metrics.sr import PSNR, psnr, ssim
from kd_keras.models import create_model
from kd_keras.models.sr import check_scale
from kd_keras.tasks.base import Task, center_crops, random_crops, single_image_forward


def downscale(hr, scale: int):
    """Bicubic downscaling with antialiasing (as MATLAB's imresize), rounded to 8 bits.

    Works on one HxWxC image or a batch, as a tensor or numpy array; H and
    W must be multiples of `scale`.
    """
    hr = tf.convert_to_tensor(hr, tf.float32)
    h, w = tf.shape(hr)[-3] // scale, tf.shape(hr)[-2] // scale
    lr = tf.image.resize(hr, (h, w), method="bicubic", antialias=True)
    return tf.clip_by_value(tf.round(lr), 0.0, 255.0)


PREDICT_TILE = 384  # input pixels per tile side for --predict on large images
PREDICT_MARGIN = 48  # context on each side: above the receptive-field radius of the SR models here


def tiled(forward, image: np.ndarray, tile: int, margin: int) -> np.ndarray:
    """`forward(image)` computed tile by tile with `margin` pixels of overlap, and stitched.

    `forward` maps an HxWxC array to an (sH)x(sW)xC' array. Each tile's
    output keeps only its core, so the seams carry no border effects while
    `margin` covers the network's receptive field.
    """
    h, w = image.shape[:2]
    out, scale = None, 0
    for y in range(0, h, tile):
        for x in range(0, w, tile):
            y0, x0, y1, x1 = max(0, y - margin), max(0, x - margin), min(h, y + tile + margin), min(w, x + tile + margin)
            part = np.asarray(forward(image[y0:y1, x0:x1]))
            if out is None:
                scale = part.shape[0] // (y1 - y0)
                out = np.zeros((h * scale, w * scale, part.shape[-1]), part.dtype)
            core = part[(y - y0) * scale: (min(h, y + tile) - y0) * scale, (x - x0) * scale: (min(w, x + tile) - x0) * scale]
            out[y * scale: min(h, y + tile) * scale, x * scale: min(w, x + tile) * scale] = core
    return out


def modcrop(image: np.ndarray, scale: int) -> np.ndarray:
    """Crops an image to height and width multiples of `scale` (the standard test protocol)."""
    h, w = image.shape[0] - image.shape[0] % scale, image.shape[1] - image.shape[1] % scale
    return image[:h, :w]


class SuperResolutionTask(Task):
    """Super-resolution at x2, x3 or x4 (`data.scale`).

    Data sources: "skimage" (photographs bundled with scikit-image, the
    offline default) and "folder" (one sub-folder of HR images per set, e.g.
    T91 for training, Set5 and Set14 for test). Low-resolution inputs are
    bicubic downscalings with antialiasing. Each test set is scored on whole
    images: PSNR and SSIM on Y, `scale` pixels shaved. The first test set
    gives the headline `psnr`/`ssim`.
    """

    name = "super_resolution"
    metric = "psnr"
    default_hard_loss = {"method": "l1"}
    sources = ("skimage", "folder")
    default_timing_size = 128

    def __init__(self):
        self.test_sets: list[str] = []
        self.scale = 2

    def smoke_overrides(self):
        return ["data.limit=6", "data.repeats=2", "data.patch_size=0", "report.image_size=32"]

    def load(self, cfg, seed: int) -> DenseSplits:
        self.check_source(cfg.source)
        self.scale = check_scale(cfg.scale)
        patch = self.patch_size(cfg)
        if cfg.source == "skimage":
            splits = load_skimage(patch, cfg.val_fraction, seed, cfg.limit)
        else:
            splits = load_sr_folders(cfg.resolved_path(), cfg.train_sets or ["T91"], cfg.val_sets,
                                     cfg.test_sets or ["Set5", "Set14"], patch, cfg.val_fraction, seed, cfg.limit)
        self.test_sets = list(splits.test)
        splits.description += f", x{self.scale}"
        return splits

    def patch_size(self, cfg) -> int:
        patch = cfg.patch_size or 48 * cfg.scale
        if patch % cfg.scale:
            raise ValueError(f"data.patch_size={patch} must be a multiple of data.scale={cfg.scale}.")
        return patch

    def create_model(self, m, splits, weights=None):
        options = dict(m.options)
        if "scale" in options and options["scale"] != self.scale:
            raise ValueError(f"model {m.model!r} has scale={options['scale']!r} but data.scale={self.scale}; "
                             f"drop the model's scale option.")
        options["scale"] = self.scale
        return create_model(m.model, input_shape=splits.input_shape,
                            weights=weights if weights is not None else (m.weights or None), **options)

    def samples_per_epoch(self, splits, data_cfg) -> int:
        return splits.num_train * max(1, data_cfg.repeats)

    def pipelines(self, splits, cfg, seed: int, targets=None):
        """Returns (train, val, test): batched random LR-HR training crops, centre-cropped validation, test images.

        Args:
            targets: none: super-resolution students learn from a live teacher.
        """
        self.check_targets(targets)
        patch, scale = self.patch_size(cfg), self.scale

        def pair(hr):
            hr = tf.cast(hr, tf.float32)
            return downscale(hr, scale), hr

        train = (random_crops([e[1] for e in splits.train], patch, max(1, cfg.repeats), cfg.augment.flip, seed)
                 .map(pair, num_parallel_calls=tf.data.AUTOTUNE).batch(cfg.batch_size).prefetch(tf.data.AUTOTUNE))
        val = None
        if splits.val:
            crops = center_crops([e[1] for e in splits.val], patch)
            crops = crops[:, : crops.shape[1] - crops.shape[1] % scale, : crops.shape[2] - crops.shape[2] % scale]
            val = tf.data.Dataset.from_tensor_slices(crops).map(pair).batch(cfg.batch_size)
        return train, val, splits.test

    def samples(self, splits, cfg, split: str, n: int, seed: int = 0) -> list:
        """Low-resolution inputs. Training: of random HR crops; test: of whole images."""
        if split == "test":
            hrs = [modcrop(e[1], self.scale) for examples in splits.test.values() for e in examples][:n]
        else:
            passes = -(-n // len(splits.train))
            crops = random_crops([e[1] for e in splits.train], self.patch_size(cfg), passes, flip=True, seed=seed)
            hrs = list(crops.take(n))
        return [downscale(tf.cast(hr, tf.float32), self.scale).numpy() for hr in hrs]

    def metrics(self):
        return [PSNR()]

    def reference_models(self, splits, data_cfg) -> dict:
        return {"bicubic": create_model("bicubic", input_shape=splits.input_shape, scale=self.scale)}

    def timing_shape(self, splits, report_cfg) -> tuple:
        side = report_cfg.image_size or self.default_timing_size
        return (side, side, 3)

    def columns(self):
        cols = []
        for i, name in enumerate(self.test_sets):
            p, s = ("psnr", "ssim") if i == 0 else (f"psnr_{name}", f"ssim_{name}")
            cols += [(f"PSNR {name} (dB)", p, "f2"), (f"SSIM {name}", s, "f4")]
        return cols

    def format_delta(self, delta: float) -> str:
        return f"{delta:+.2f} dB"

    def report_notes(self, rows):
        return [f"PSNR/SSIM: Y channel (BT.601), {self.scale} pixels shaved, LR = bicubic downscaling with "
                f"antialias; mean over the images of each test set."]

    def super_resolve(self, model, lr_images) -> list:
        """SR outputs (float, 0-255, unclipped) of whole LR images of any size."""
        forward = single_image_forward(model)
        return [np.asarray(forward(tf.constant(np.asarray(lr, np.float32)[None]))[0]) for lr in lr_images]

    def evaluate(self, model, test: dict, report_cfg=None) -> dict:
        """PSNR and SSIM (Y, shave = scale) per test set; the first set is the headline."""
        out = {}
        for i, (name, examples) in enumerate(test.items()):
            hrs = [modcrop(e[1], self.scale) for e in examples]
            srs = self.super_resolve(model, [downscale(hr, self.scale).numpy() for hr in hrs])
            p = float(np.mean([psnr(sr, hr, self.scale) for sr, hr in zip(srs, hrs)]))
            s = float(np.mean([ssim(sr, hr, self.scale) for sr, hr in zip(srs, hrs)]))
            keys = ("psnr", "ssim") if i == 0 else (f"psnr_{name}", f"ssim_{name}")
            out[keys[0]], out[keys[1]] = p, s
        return out

    def predict(self, model, image: np.ndarray, tile: int = PREDICT_TILE, margin: int = PREDICT_MARGIN) -> np.ndarray:
        """The super-resolved RGB uint8 image of an RGB uint8 image.

        An image with more than `tile`^2 pixels runs in `tile`-sided tiles,
        each with `margin` pixels of its neighbours' context, so memory stays
        bounded; with a margin at least the network's receptive-field radius
        the result equals the whole-image run.
        """
        h, w = image.shape[:2]
        if h * w <= tile * tile:
            sr = self.super_resolve(model, [image])[0]
        else:
            sr = tiled(lambda x: self.super_resolve(model, [x])[0], image, tile, margin)
        return np.clip(np.round(sr), 0, 255).astype(np.uint8)
