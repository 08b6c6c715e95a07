"""Views drawn per epoch: epoch e shows image i its view (o_i + e) mod K, so K >= epochs never repeats a view,
the replay is the very view the teacher saw, a resumed fit continues at its epoch, and the int8 pass is refused
where its runtime cannot run the teacher."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_classifier

from kd_keras import Distiller
from kd_keras.data.augment import AugmentConfig
from kd_keras.data.pipeline import classification_pipeline
from kd_keras.losses import KDLoss
from kd_keras.teachers.cache import teacher_fingerprint
from kd_keras.teachers.views import TeacherViewsCache, ViewsEpoch, resolve_views

SHAPE, CLASSES, EPOCHS = (8, 8, 3), 3, 4
AUG = AugmentConfig(flip=True, crop_padding=2, translate=0.2)


def setup(views, seen=None, seed=1, **kw):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (24, *SHAPE)).astype("float32")
    y = rng.integers(0, CLASSES, 24).astype("int32")
    keras.utils.set_random_seed(seed)
    teacher = tiny_classifier(name="teacher", filters=8)
    d = Distiller(teacher, tiny_classifier(name="student"), [KDLoss(3.0)])

    def extract(b):
        if seen is not None:
            seen.append(np.asarray(b))
        return d.teacher_outputs(b)

    cache = TeacherViewsCache(extract, teacher_fingerprint(teacher, d.teacher_layers), AUG, SHAPE, CLASSES,
                              views=views, batch_size=32, log=lambda m: None, teacher=teacher, **kw)
    stored = cache.views(tf.data.Dataset.from_tensor_slices((x, y)))
    return x, y, d, stored


def epoch_views(x, y, stored, seen, views, epochs):
    """For each epoch, the index of the stored view each image showed (checked pixel for pixel)."""
    taught = np.concatenate(seen).reshape(views, len(x), *SHAPE).transpose(1, 0, 2, 3, 4)  # one batch: [k][i]
    ds = classification_pipeline(tf.data.Dataset.from_tensor_slices((x, y)), CLASSES, SHAPE, 8, True, AUG,
                                 shuffle_buffer=1, teacher_views=stored)  # no shuffling: image i at position i
    shown = []
    for _ in range(epochs):
        images = np.concatenate([b[0] for b in ds])
        idx = []
        for i in range(len(x)):
            match = [k for k in range(views) if np.array_equal(images[i], taught[i, k])]
            assert match, f"image {i}: the replayed view is none of the views the teacher saw"
            idx.append(match[0])
        shown.append(idx)
    return np.array(shown)  # [epochs, images]


def test_views_per_epoch_are_distinct_within_an_image_and_replay_pixel_identically():
    seen = []
    x, y, _, stored = setup(EPOCHS, seen)
    shown = epoch_views(x, y, stored, seen, EPOCHS, EPOCHS)
    for i in range(len(x)):
        assert len(set(shown[:, i])) == EPOCHS, f"image {i} repeated a view within {EPOCHS} epochs: {shown[:, i]}"
    assert len(set(shown[0])) > 1  # images start at different views (o_i), not all at view 0
    # the same call replays the same views: a second pipeline from epoch 0 shows the same sequence
    stored.epoch.assign(0)
    np.testing.assert_array_equal(epoch_views(x, y, stored, seen, EPOCHS, EPOCHS), shown)


def test_fewer_views_than_epochs_cycle_through_every_view():
    seen = []
    x, y, _, stored = setup(2, seen)
    shown = epoch_views(x, y, stored, seen, 2, 4)
    np.testing.assert_array_equal(shown[0], shown[2])
    assert (shown[0] != shown[1]).all()


def test_a_resumed_fit_continues_at_its_epoch():
    x, y, d, stored = setup(EPOCHS)
    cb = ViewsEpoch(stored)
    cb.on_train_begin()
    cb.on_epoch_begin(2)  # BackupAndRestore resumed after epoch 2
    assert int(stored.epoch.numpy()) == 2
    stored.epoch.assign(5)
    cb.on_epoch_begin(3)  # later epochs are counted by the pipeline, not reset
    assert int(stored.epoch.numpy()) == 5


def test_distiller_fit_steps_the_views_once_per_epoch():
    x, y, d, _ = setup(EPOCHS)
    d.compile(keras.optimizers.SGD(0.01), keras.losses.CategoricalCrossentropy(from_logits=True))
    d.fit(x, y, batch_size=8, epochs=3, augment=AUG, teacher_cache="views", verbose=0)
    assert d.teacher_cache_info["views"] == 3  # "epochs": K = the fit's epochs


def test_k_from_the_schedule_and_bad_values():
    assert resolve_views("epochs", 40) == 40 and resolve_views(16, 40) == 16
    for bad in (0, "all", 2.5, True):
        with pytest.raises(ValueError, match=r"train.teacher_views must be \"epochs\""):
            resolve_views(bad, 40)


def test_the_int8_pass_matches_the_teacher_and_is_keyed_apart():
    x, y, _, keras_views = setup(2)
    _, _, _, int8_views = setup(2, runtime="tflite_int8")
    assert int8_views.info["key"] != keras_views.info["key"]
    a = np.stack([r["teacher"]["final_output"] for r in keras_views.records.as_numpy_iterator()])
    b = np.stack([r["teacher"]["final_output"] for r in int8_views.records.as_numpy_iterator()])
    assert not np.array_equal(a, b)  # another runtime's logits ...
    assert (a.argmax(-1) == b.argmax(-1)).mean() > 0.8  # ... of the same teacher


def test_the_int8_pass_is_refused_when_its_runtime_cannot_run_the_teacher():
    class Opaque(keras.layers.Layer):  # runs outside the graph, as a file teacher's runtime does
        def call(self, x):
            return tf.numpy_function(lambda a: a.astype(np.float32), [x], tf.float32, stateful=False)

        def compute_output_shape(self, s):
            return s

    inputs = keras.Input(SHAPE)
    h = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
    teacher = keras.Model(inputs, keras.layers.Dense(CLASSES)(Opaque()(h)))
    x = np.random.default_rng(0).integers(0, 256, (16, *SHAPE)).astype("float32")
    cache = TeacherViewsCache(lambda b: {"final_output": teacher(b)}, "opaque", AUG, SHAPE, CLASSES, views=2,
                              log=lambda m: None, runtime="tflite_int8", teacher=teacher)
    with pytest.raises(ValueError, match=r"teacher_views_runtime = \"tflite_int8\" cannot run this teacher .*"
                                         r"set train.teacher_views_runtime = \"keras\""):
        cache.views(tf.data.Dataset.from_tensor_slices((x, np.zeros(16, np.int32))))
    with pytest.raises(ValueError, match="teacher_views_runtime must be one of keras, tflite_int8"):
        TeacherViewsCache(None, "", AUG, SHAPE, CLASSES, runtime="onnx")


def test_a_recipe_run_shows_each_kd_epoch_its_own_views(tmp_path, monkeypatch):
    """The runner puts the views' epoch callback on the KD fit: the pipeline counts once per epoch, from 0."""
    from kd_keras.config import load_config, quote
    from kd_keras.recipes.runner import run
    from kd_keras.tasks import TASKS

    seen = []
    begin = ViewsEpoch.on_epoch_begin

    def record(self, epoch, logs=None):
        begin(self, epoch, logs)
        seen.append((epoch, int(self.stored.epoch.numpy())))

    monkeypatch.setattr(ViewsEpoch, "on_epoch_begin", record)
    monkeypatch.setattr(ViewsEpoch, "on_epoch_end", lambda self, epoch, logs=None: seen.append(
        (epoch, int(self.stored.epoch.numpy()))))
    cfg = load_config("recipes/digits.toml", ["train.epochs=3", "teacher.epochs=1", "data.limit=200",
                                              "report.latency_runs=20", "report.rounds=1",
                                              f"train.teacher_cache_dir={quote(str(tmp_path / 'cache'))}"])
    run(cfg, TASKS[cfg.task](), str(tmp_path / "run"), overwrite=False, log=lambda *a: None)
    assert cfg.distill and len(seen) == 2 * 3 * len(cfg.distill)
    # At an epoch's start the views point at it; by its end the pipeline has opened exactly that one pass.
    assert seen[:6] == [(0, 0), (0, 1), (1, 1), (1, 2), (2, 2), (2, 3)]
