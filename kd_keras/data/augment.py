"""Batch augmentation with Keras layers (no keras-cv).

All ops run on raw 0-255 float batches inside `tf.data`, before the
Distiller, so teacher and student see the same augmented (and mixed) batch:
"consistent teaching" (Beyer et al., Knowledge distillation: A good teacher
is patient and consistent, CVPR 2022).
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentation; all off by default.

    Attributes:
        flip: random horizontal flips.
        crop_padding: pad by this many pixels (reflect) and crop back, as in
            the standard CIFAR recipe; 0 is off.
        translate: random translation as a fraction of the side; 0 is off.
        randaugment: apply Keras' RandAugment.
        randaugment_ops: ops per image for RandAugment.
        randaugment_magnitude: magnitude in [0, 1] for RandAugment.
        mixup_alpha: MixUp Beta(alpha, alpha); 0 is off.
        cutmix_alpha: CutMix Beta(alpha, alpha); 0 is off. With MixUp on
            too, each batch gets one of the two at random.
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


def build_image_augmenter(cfg: AugmentConfig, image_shape, seed: int = 0):
    """Returns `fn(images) -> images` for a batch, or `None` if nothing is on."""
    h, w, c = image_shape
    layers = []
    if cfg.translate:
        layers.append(keras.layers.RandomTranslation(cfg.translate, cfg.translate, fill_mode="reflect", seed=seed))
    if cfg.flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed + 1))
    if cfg.randaugment:
        layers.append(keras.layers.RandAugment(value_range=(0, 255), num_ops=cfg.randaugment_ops,
                                               factor=cfg.randaugment_magnitude, seed=seed + 2))
    crop = keras.layers.RandomCrop(h, w, seed=seed + 3) if cfg.crop_padding else None
    if not layers and crop is None:
        return None

    def augment(images):
        if crop is not None:
            p = int(cfg.crop_padding)
            images = tf.pad(images, [[0, 0], [p, p], [p, p], [0, 0]], mode="REFLECT")
            images = crop(images, training=True)
        for layer in layers:
            if isinstance(layer, keras.layers.RandAugment) and c == 1:
                # RandAugment's colour ops need RGB; run it on grey replicated x3.
                images = tf.reduce_mean(layer(tf.tile(images, [1, 1, 1, 3]), training=True), -1, keepdims=True)
            else:
                images = layer(images, training=True)
        return images

    return augment


def build_mixer(cfg: AugmentConfig, seed: int = 0):
    """Returns `fn(images, one_hot_labels) -> (images, labels)` or `None`."""
    mixers = []
    if cfg.mixup_alpha:
        mixers.append(keras.layers.MixUp(alpha=cfg.mixup_alpha, seed=seed + 4))
    if cfg.cutmix_alpha:
        mixers.append(keras.layers.CutMix(factor=cfg.cutmix_alpha, seed=seed + 5))
    if not mixers:
        return None

    def apply(layer, images, labels):
        out = layer({"images": images, "labels": labels}, training=True)
        return out["images"], out["labels"]

    def mix(images, labels):
        if len(mixers) == 1:
            return apply(mixers[0], images, labels)
        use_first = tf.random.uniform(()) < 0.5
        return tf.cond(use_first, lambda: apply(mixers[0], images, labels),
                       lambda: apply(mixers[1], images, labels))

    return mix
