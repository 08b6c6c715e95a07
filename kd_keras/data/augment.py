"""Batch augmentation as explicit, replayable parameters (no keras-cv).

Every random op is split in two: `draw_params` draws its parameters for a
batch from a stateless seed (crop offsets, translation, flip, the mixing
weight or box), and `apply_params` / `mix_params` render a batch from them
with no randomness left. The live pipeline draws fresh parameters for each
batch; the augmented-views teacher cache (`kd_keras.teachers.views`) stores
them beside the teacher's outputs and renders the very same view again
during training, pixel for pixel.

All ops run on raw 0-255 float batches inside `tf.data`, before the
Distiller, so teacher and student see the same augmented (and mixed) batch:
"consistent teaching" (Beyer et al., Knowledge distillation: A good teacher
is patient and consistent, CVPR 2022). Crops, translations and flips are
drawn per image; the translation is Keras' `RandomTranslation` transform
(bilinear, reflect fill) and MixUp / CutMix follow Keras' `MixUp` and
`CutMix` layers (Beta(alpha, alpha) weight; a box of area 1 - weight inside
the image), drawn per image.
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

MIXUP, CUTMIX = 0, 1


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentation; all off by default.

    Attributes:
        flip: random horizontal flips.
        crop_padding: pad by this many pixels (reflect) and crop back at a
            random offset per image, as in the standard CIFAR recipe; 0 is off.
        translate: random translation as a fraction of the side; 0 is off.
        randaugment: apply Keras' RandAugment (not replayable: a teacher
            cache of views cannot store its choices).
        randaugment_ops: ops per image for RandAugment.
        randaugment_magnitude: magnitude in [0, 1] for RandAugment.
        mixup_alpha: MixUp Beta(alpha, alpha); 0 is off.
        cutmix_alpha: CutMix Beta(alpha, alpha); 0 is off. With MixUp on
            too, each image gets one of the two at random.
    """

    flip: bool = False
    crop_padding: int = 0
    translate: float = 0.0
    randaugment: bool = False
    randaugment_ops: int = 2
    randaugment_magnitude: float = 0.5
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0

    def __post_init__(self):
        for field in ("crop_padding", "translate", "mixup_alpha", "cutmix_alpha", "randaugment_magnitude"):
            value = getattr(self, field)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ValueError(f"augment.{field} must be a number >= 0, got {value!r}.")
        if self.translate >= 1:
            raise ValueError(f"augment.translate must be a fraction below 1, got {self.translate!r}.")

    @property
    def mixes(self) -> bool:
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0

    @property
    def active(self) -> bool:
        return bool(self.random_ops)

    @property
    def random_ops(self) -> list[str]:
        """Names of the random ops that are on (empty: every epoch sees the same inputs)."""
        on = (("flip", self.flip), ("crop_padding", self.crop_padding > 0), ("translate", self.translate > 0),
              ("randaugment", self.randaugment), ("mixup", self.mixup_alpha > 0), ("cutmix", self.cutmix_alpha > 0))
        return [name for name, active in on if active]

    @property
    def replay_blocker(self) -> str:
        """Why a view cannot be stored and rendered again exactly ("" if it can)."""
        return "randaugment draws its ops inside Keras' layer, so its views cannot be replayed" if self.randaugment \
            else ""

    def replay_config(self) -> dict:
        """The settings that decide a view (a part of the views-cache key)."""
        return {k: getattr(self, k) for k in ("flip", "crop_padding", "translate", "mixup_alpha", "cutmix_alpha")}


def _beta(shape, seed, alpha):
    seeds = tf.random.experimental.stateless_split(seed, 2)
    x = tf.random.stateless_gamma(shape, seeds[0], alpha=alpha)
    y = tf.random.stateless_gamma(shape, seeds[1], alpha=alpha)
    return x / tf.maximum(x + y, 1e-12)


def draw_params(cfg: AugmentConfig, image_shape, n, seed) -> dict:
    """Draws the parameters of `n` augmented views from a stateless seed.

    Args:
        cfg: the augmentation.
        image_shape: `(H, W, C)` of the images.
        n: how many views (a Python int or a scalar tensor).
        seed: a shape-[2] integer tensor; the same seed gives the same views.

    Returns:
        A dict of `[n, ...]` tensors with the keys that are on: `crop` (int32
        row and column offsets into the padded image), `translate` (float32
        dx, dy in pixels), `flip` (bool), and with mixing `mix_kind` (0 MixUp,
        1 CutMix), `weight` (the share of the image's own label) and `box`
        (CutMix x0, x1, y0, y1 in pixels; zeros for MixUp).
    """
    h, w, _ = image_shape
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 7)
    p = {}
    if cfg.crop_padding:
        p["crop"] = tf.random.stateless_uniform([n, 2], seeds[0], 0, 2 * int(cfg.crop_padding) + 1, dtype=tf.int32)
    if cfg.translate:
        frac = tf.random.stateless_uniform([n, 2], seeds[1], -cfg.translate, cfg.translate)
        p["translate"] = frac * tf.constant([w, h], tf.float32)
    if cfg.flip:
        p["flip"] = tf.random.stateless_uniform([n], seeds[2]) < 0.5
    if cfg.mixes:
        if cfg.mixup_alpha and cfg.cutmix_alpha:
            kind = tf.cast(tf.random.stateless_uniform([n], seeds[3]) >= 0.5, tf.int32)
        else:
            kind = tf.fill([n], MIXUP if cfg.mixup_alpha else CUTMIX)
        mix_w = _beta([n], seeds[4], cfg.mixup_alpha) if cfg.mixup_alpha else tf.ones([n])
        cut_w = _beta([n], seeds[5], cfg.cutmix_alpha) if cfg.cutmix_alpha else tf.ones([n])
        side = tf.sqrt(1.0 - cut_w)  # Keras' CutMix: a box of side ratio sqrt(1 - weight), inside the image
        start = tf.random.stateless_uniform([n, 2], seeds[6])
        x0 = start[:, 0] * (w - side * w)
        y0 = start[:, 1] * (h - side * h)
        box = tf.stack([x0, x0 + side * w, y0, y0 + side * h], -1)
        cut_weight = 1.0 - (box[:, 1] - box[:, 0]) * (box[:, 3] - box[:, 2]) / float(w * h)
        is_cut = tf.equal(kind, CUTMIX)
        p["mix_kind"] = kind
        p["weight"] = tf.where(is_cut, cut_weight, mix_w)
        p["box"] = tf.where(is_cut[:, None], box, tf.zeros_like(box))
    return p


def apply_params(images, params: dict, cfg: AugmentConfig):
    """Renders the crop, translation and flip of `params` on a batch; deterministic.

    Args:
        images: `[B, H, W, C]` raw 0-255 images.
        params: `draw_params` output for these `B` images (extra keys are ignored).
        cfg: the augmentation the parameters were drawn for.
    """
    x = tf.cast(images, tf.float32)
    if "crop" in params:
        p = int(cfg.crop_padding)
        h, w = x.shape[1], x.shape[2]
        if h is None or w is None:
            h, w = tf.shape(x)[1], tf.shape(x)[2]
        padded = tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="REFLECT")
        rows = params["crop"][:, 0:1] + tf.range(h)[None]
        cols = params["crop"][:, 1:2] + tf.range(w)[None]
        x = tf.gather(tf.gather(padded, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)
    if "translate" in params:
        t = tf.cast(params["translate"], tf.float32)
        ones, zeros = tf.ones_like(t[:, :1]), tf.zeros_like(t[:, :1])
        # Keras' RandomTranslation matrix [[1, 0, -dx], [0, 1, -dy], [0, 0]]
        matrix = tf.concat([ones, zeros, -t[:, 0:1], zeros, ones, -t[:, 1:2], zeros, zeros], axis=1)
        x = keras.ops.image.affine_transform(x, matrix, interpolation="bilinear", fill_mode="reflect")
    if "flip" in params:
        x = tf.where(params["flip"][:, None, None, None], tf.reverse(x, [2]), x)
    return x


def mix_params(images, labels, partner_images, partner_labels, params: dict):
    """Mixes each image with its partner by the stored weight (MixUp) or box (CutMix); deterministic.

    Returns:
        `(images, labels)`, each label `weight * own + (1 - weight) * partner`.
    """
    weight = tf.cast(params["weight"], tf.float32)
    w4 = weight[:, None, None, None]
    mixed = w4 * images + (1.0 - w4) * partner_images
    h, w = tf.shape(images)[1], tf.shape(images)[2]
    gy = tf.cast(tf.range(h), tf.float32)[None, :, None, None]
    gx = tf.cast(tf.range(w), tf.float32)[None, None, :, None]
    b = tf.cast(params["box"], tf.float32)
    inside = ((gx >= b[:, 0, None, None, None]) & (gx < b[:, 1, None, None, None])
              & (gy >= b[:, 2, None, None, None]) & (gy < b[:, 3, None, None, None]))
    cut = tf.where(inside, partner_images, images)
    out = tf.where(tf.equal(params["mix_kind"], CUTMIX)[:, None, None, None], cut, mixed)
    return out, weight[:, None] * labels + (1.0 - weight[:, None]) * tf.cast(partner_labels, labels.dtype)


def _randaugment(cfg: AugmentConfig, channels: int, seed: int):
    layer = keras.layers.RandAugment(value_range=(0, 255), num_ops=cfg.randaugment_ops,
                                     factor=cfg.randaugment_magnitude, seed=seed + 2)

    def apply(images):
        if channels == 1:  # RandAugment's colour ops need RGB; run it on grey replicated x3
            return tf.reduce_mean(layer(tf.tile(images, [1, 1, 1, 3]), training=True), -1, keepdims=True)
        return layer(images, training=True)

    return apply


def build_image_augmenter(cfg: AugmentConfig, image_shape, seed: int = 0):
    """Returns `fn(images, batch_seed) -> images` for a batch, or `None` if nothing is on.

    `batch_seed` is a shape-[2] integer tensor, new for every batch (the
    pipeline zips one from `tf.data.Dataset.random`).
    """
    if not (cfg.flip or cfg.crop_padding or cfg.translate or cfg.randaugment):
        return None
    randaugment = _randaugment(cfg, image_shape[-1], seed) if cfg.randaugment else None
    geometric = dataclasses.replace(cfg, mixup_alpha=0.0, cutmix_alpha=0.0)

    def augment(images, batch_seed):
        params = draw_params(geometric, image_shape, tf.shape(images)[0], batch_seed)
        images = apply_params(images, params, cfg)
        return randaugment(images) if randaugment is not None else images

    return augment


def build_mixer(cfg: AugmentConfig, image_shape=None, seed: int = 0):
    """Returns `fn(images, one_hot_labels, batch_seed) -> (images, labels)` or `None`.

    Each image is mixed with another image of the batch (a random
    permutation), as Keras' MixUp and CutMix layers do.
    """
    if not cfg.mixes:
        return None

    def mix(images, labels, batch_seed):
        s = tf.random.experimental.stateless_split(tf.cast(batch_seed, tf.int64), 2)
        shape = image_shape or tuple(images.shape[1:])
        params = draw_params(dataclasses.replace(cfg, flip=False, crop_padding=0, translate=0.0), shape,
                             tf.shape(images)[0], s[0])
        order = tf.argsort(tf.random.stateless_uniform([tf.shape(images)[0]], s[1]))
        return mix_params(images, labels, tf.gather(images, order), tf.gather(labels, order), params)

    return mix
