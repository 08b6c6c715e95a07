"""tf.data pipelines for classification: cache, shuffle, batch, augment, prefetch."""

from __future__ import annotations

import tensorflow as tf

from kd_keras.data.augment import AugmentConfig, build_image_augmenter, build_mixer

AUTOTUNE = tf.data.AUTOTUNE


def batch_seeds(seed: int) -> tf.data.Dataset:
    """Endless shape-[2] seeds, one per batch, new every epoch and the same for the same `seed`."""
    return tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)


def classification_pipeline(ds: tf.data.Dataset, num_classes: int, image_shape, batch_size: int,
                            training: bool, augment: AugmentConfig | None = None, seed: int = 0,
                            shuffle_buffer: int = 10_000, cache: bool = True,
                            teacher_outputs: tf.data.Dataset | None = None,
                            teacher_views=None) -> tf.data.Dataset:
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
        teacher_outputs: per-example teacher outputs aligned with `ds`
            (`kd_keras.TeacherOutputCache.outputs`); batches are then
            `(images, one_hot_labels, teacher_outputs)`. Only for fixed
            inputs: refused with random augmentation.
        teacher_views: a `kd_keras.teachers.views.StoredViews` for `ds`:
            epoch e, image i shows its stored view (o_i + e) mod K, rendered
            from the stored parameters, with the teacher's outputs for that
            view (`(images, labels, teacher_outputs)` batches). The epoch
            counts up at the start of each pass (`StoredViews.epoch`).
            `augment`, if given, must be the augmentation of the views.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    if teacher_outputs is not None and training and augment is not None and augment.active:
        raise ValueError(f"cached teacher outputs need fixed inputs, but random augmentation is on "
                         f"({', '.join(augment.random_ops)}); let the teacher run live.")
    if teacher_views is not None and training and augment is not None and augment != teacher_views.cfg:
        raise ValueError(f"the stored views were drawn for {teacher_views.cfg}, but the pipeline augments with "
                         f"{augment}; build the views cache with the same augmentation, or pass augment=None.")
    if cache:
        ds = ds.cache()
    if teacher_outputs is not None:  # zipped after the image cache: the outputs keep their own storage
        ds = tf.data.Dataset.zip((ds, teacher_outputs)).map(lambda xy, t: (*xy, t))
    if teacher_views is not None and training:
        ds = tf.data.Dataset.zip((ds, teacher_views.records)).map(lambda xy, v: (*xy, v))
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, num_parallel_calls=AUTOTUNE)
    ds = ds.map(lambda x, y, *t: (x, tf.one_hot(y, num_classes), *t), num_parallel_calls=AUTOTUNE)
    if teacher_views is not None and training:
        # the pass's epoch, counted once when the pass starts and repeated for each of its batches
        epoch = tf.data.Dataset.from_tensors(0).map(lambda _: teacher_views.start_epoch())
        epoch = epoch.flat_map(lambda e: tf.data.Dataset.from_tensors(e).repeat())
        batches = int(ds.cardinality())
        if batches < 0 and teacher_views.info.get("examples"):  # a filtered split: the views count its images
            batches = -(-int(teacher_views.info["examples"]) // batch_size)
        ds = tf.data.Dataset.zip((ds, epoch)).map(lambda b, e: (*b, e))
        if batches >= 0:  # kept known, so that Keras counts the steps as without views
            ds = ds.apply(tf.data.experimental.assert_cardinality(batches))
        return ds.map(lambda *b: teacher_views.replay(*b), num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)
    if training and augment is not None and augment.active:
        augmenter = build_image_augmenter(augment, image_shape, seed)
        mixer = build_mixer(augment, image_shape, seed)

        def apply(batch, batch_seed):
            (x, y), s = batch, tf.random.experimental.stateless_split(batch_seed, 2)
            if augmenter is not None:
                x = augmenter(x, s[0])
            if mixer is not None:
                x, y = mixer(x, y, s[1])
            return x, y

        ds = tf.data.Dataset.zip((ds, batch_seeds(seed))).map(apply, num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)
