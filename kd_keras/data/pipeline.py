"""tf.data pipelines for classification: cache, shuffle, batch, augment, prefetch."""

from __future__ import annotations

import tensorflow as tf

from kd_keras.data.augment import AugmentConfig, build_image_augmenter, build_mixer

AUTOTUNE = tf.data.AUTOTUNE


def classification_pipeline(ds: tf.data.Dataset, num_classes: int, image_shape, batch_size: int,
                            training: bool, augment: AugmentConfig | None = None, seed: int = 0,
                            shuffle_buffer: int = 10_000, cache: bool = True) -> tf.data.Dataset:
    """Batches `(image, label)` pairs into `(images, one_hot_labels)`.

    Decoded images are cached before augmentation, so every epoch draws
    fresh augmentations. Augmentation and mixing run on whole batches in a
    parallel `map`; there is no Python loop per example. Labels are one-hot
    (float32) so MixUp/CutMix can soften them.

    Args:
        ds: unbatched `(float32 image, int32 label)` dataset.
        num_classes: classes for the one-hot labels.
        image_shape: `(H, W, C)` of the images.
        batch_size: examples per batch.
        training: shuffle and augment.
        augment: augmentation settings (training only).
        seed: seed of shuffling and augmentation.
        shuffle_buffer: shuffle buffer size.
        cache: cache decoded images in memory.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    if cache:
        ds = ds.cache()
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, num_parallel_calls=AUTOTUNE)
    ds = ds.map(lambda x, y: (x, tf.one_hot(y, num_classes)), num_parallel_calls=AUTOTUNE)
    if training and augment is not None and augment.active:
        augmenter = build_image_augmenter(augment, image_shape, seed)
        mixer = build_mixer(augment, seed)

        def apply(x, y):
            if augmenter is not None:
                x = augmenter(x)
            if mixer is not None:
                x, y = mixer(x, y)
            return x, y

        ds = ds.map(apply, num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)
