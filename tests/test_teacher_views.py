"""The augmented-views teacher cache: replayed views are the teacher's, keyed storage, fall-backs and bad input."""

import json
import os

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
from kd_keras.teachers.views import TeacherViewsCache, expand_topk

CE = keras.losses.CategoricalCrossentropy(from_logits=True)
SHAPE, CLASSES = (8, 8, 3), 3
KINDS = {
    "crop": AugmentConfig(crop_padding=2),
    "flip": AugmentConfig(flip=True),
    "translate": AugmentConfig(translate=0.2),
    "mixup": AugmentConfig(mixup_alpha=0.4),
    "cutmix": AugmentConfig(cutmix_alpha=1.0),
    "all": AugmentConfig(flip=True, crop_padding=2, translate=0.1, mixup_alpha=0.4, cutmix_alpha=1.0),
}


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, *SHAPE)).astype("float32")
    y = rng.integers(0, CLASSES, 40).astype("int32")
    return x, y


def models(seed=1):
    keras.utils.set_random_seed(seed)
    teacher = tiny_classifier(name="teacher", filters=8)
    student = tiny_classifier(name="student")
    return Distiller(teacher, student, [KDLoss(3.0)]), teacher, student


def views_cache(d, teacher, aug, seen=None, **kw):
    def extract(x):
        if seen is not None:
            seen.append(np.asarray(x))
        return d.teacher_outputs(x)

    kw.setdefault("batch_size", 16)
    return TeacherViewsCache(extract, teacher_fingerprint(teacher, d.teacher_layers), aug, SHAPE, CLASSES,
                             log=lambda m: None, **kw)


def examples(x, y):
    return tf.data.Dataset.from_tensor_slices((x, y))


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_replayed_view_is_the_view_the_teacher_saw_pixel_for_pixel(kind, data):
    x, y = data
    d, teacher, _ = models()
    seen, k = [], 3
    stored = views_cache(d, teacher, KINDS[kind], seen, views=k).views(examples(x, y))
    # the pass runs batch by batch (16 images), each batch once per view: rebuild [image, view]
    taught = np.zeros((len(x), k, *SHAPE), "float32")
    calls = iter(seen)
    for s in range(0, len(x), 16):
        for v in range(k):
            taught[s: s + 16, v] = next(calls)
    logits = teacher.predict(taught.reshape(-1, *SHAPE), verbose=0).reshape(len(x), k, CLASSES)
    ds = classification_pipeline(examples(x, y), CLASSES, SHAPE, 8, True, KINDS[kind], seed=5, shuffle_buffer=1,
                                 teacher_views=stored)  # no shuffling: example i is at position i
    used = set()
    for _ in range(3):  # epochs: each image takes one of its views
        batches = list(ds)
        images = np.concatenate([b[0] for b in batches])
        outputs = np.concatenate([b[2]["final_output"] for b in batches])
        labels = np.concatenate([b[1] for b in batches])
        for i in range(len(x)):
            match = [v for v in range(k) if np.array_equal(images[i], taught[i, v])]
            assert match, f"image {i}: the replayed view is none of the views the teacher saw"
            np.testing.assert_allclose(outputs[i], logits[i, match[0]], rtol=1e-5, atol=1e-5)
            used.add(match[0])
        np.testing.assert_allclose(labels.sum(-1), 1.0, rtol=1e-6)
        if not KINDS[kind].mixes:
            np.testing.assert_array_equal(labels.argmax(-1), y)
    assert len(used) >= 2  # several stored views are replayed (identical views match the first)
    assert not np.array_equal(images, x)  # augmented, not the raw images


def test_training_on_one_replayed_view_equals_a_live_teacher_on_the_same_views(data):
    x, y = data
    aug = AugmentConfig(flip=True, crop_padding=2, translate=0.1)
    seen = []
    d, teacher, _ = models()
    stored = views_cache(d, teacher, aug, seen, views=1).views(examples(x, y))
    views = np.concatenate(seen)  # K = 1: the one fixed view of each image, in order
    histories, weights = [], []
    for replay in (True, False):
        d, teacher, student = models()
        d.compile(keras.optimizers.SGD(0.05), CE)
        if replay:
            ds = classification_pipeline(examples(x, y), CLASSES, SHAPE, 8, True, aug, seed=3, teacher_views=stored)
        else:  # the same views as fixed inputs; the teacher runs live on them
            ds = classification_pipeline(examples(views, y), CLASSES, SHAPE, 8, True, None, seed=3)
        keras.utils.set_random_seed(0)
        histories.append(d.fit(ds, epochs=3, verbose=0).history)
        weights.append(student.get_weights())
    for key in ("loss", "student_loss", "distillation_loss"):
        np.testing.assert_allclose(histories[0][key], histories[1][key], rtol=1e-5)
    assert histories[0]["distillation_loss"][0] > 0
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_the_key_follows_augmentation_views_seed_pixels_and_teacher(data, tmp_path):
    x, y = data
    aug = AugmentConfig(flip=True, crop_padding=2)
    d, teacher, _ = models()
    first = views_cache(d, teacher, aug, views=2, directory=str(tmp_path))
    first.views(examples(x, y))
    assert first.last["computed"] and sorted(os.listdir(tmp_path)) == [first.last["key"]]
    again = views_cache(d, teacher, aug, views=2, directory=str(tmp_path))  # as a later run would
    stored = again.views(examples(x, y))
    assert not again.last["computed"] and again.last["key"] == first.last["key"]
    assert len(list(stored.records)) == len(x)

    keys = {first.last["key"]}
    x2 = x.copy()
    x2[3, 0, 0, 0] += 1
    for name, cache, ds in (
            ("augmentation", views_cache(d, teacher, AugmentConfig(flip=True, crop_padding=3), views=2,
                                         directory=str(tmp_path)), examples(x, y)),
            ("views", views_cache(d, teacher, aug, views=3, directory=str(tmp_path)), examples(x, y)),
            ("seed", views_cache(d, teacher, aug, views=2, seed=1, directory=str(tmp_path)), examples(x, y)),
            ("pixel", views_cache(d, teacher, aug, views=2, directory=str(tmp_path)), examples(x2, y))):
        cache.views(ds)
        assert cache.last["computed"] and cache.last["key"] not in keys, name
        keys.add(cache.last["key"])
    layer = teacher.get_layer("logits")
    layer.kernel.assign(layer.kernel + 0.1)  # a retrained teacher
    retrained = views_cache(d, teacher, aug, views=2, directory=str(tmp_path))
    out = np.stack([r["teacher"]["final_output"] for r in retrained.views(examples(x, y)).records.as_numpy_iterator()])
    assert retrained.last["computed"] and retrained.last["key"] not in keys
    old = np.stack([r["teacher"]["final_output"] for r in stored.records.as_numpy_iterator()])
    assert not np.allclose(out, old)


def test_a_cache_killed_while_written_is_never_read(data, tmp_path, monkeypatch):
    x, y = data
    aug = AugmentConfig(flip=True)
    d, teacher, _ = models()

    def killed(src, dst):  # the process dies between writing the .partial folder and renaming it
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        views_cache(d, teacher, aug, views=2, directory=str(tmp_path)).views(examples(x, y))
    monkeypatch.undo()
    [partial] = os.listdir(tmp_path)
    assert partial.endswith(".partial")
    cache = views_cache(d, teacher, aug, views=2, directory=str(tmp_path))
    cache.views(examples(x, y))
    assert cache.last["computed"]  # rebuilt, not read
    assert sorted(os.listdir(tmp_path)) == [cache.last["key"]]


def test_topk_storage_expands_to_the_kept_log_probabilities_and_an_even_rest():
    logits = tf.constant([[3.0, 1.0, 0.5, -1.0, 0.0]])
    logp = tf.nn.log_softmax(logits)
    values, indices = tf.math.top_k(logp, 2)
    dense = expand_topk(values, indices, 5).numpy()[0]
    p = np.exp(logp.numpy()[0])
    np.testing.assert_allclose(dense[[0, 1]], np.log(p[[0, 1]]), rtol=1e-6)
    np.testing.assert_allclose(np.exp(dense[2:]), (1 - p[0] - p[1]) / 3, rtol=1e-5)
    np.testing.assert_allclose(np.exp(dense).sum(), 1.0, rtol=1e-5)


def test_topk_views_store_fewer_bytes_and_replay_dense_outputs(data):
    x, y = data
    d, teacher, _ = models()
    full = views_cache(d, teacher, AugmentConfig(flip=True), views=2)
    kept = views_cache(d, teacher, AugmentConfig(flip=True), views=2, topk=1)
    a, b = full.views(examples(x, y)), kept.views(examples(x, y))
    assert set(next(iter(b.records))["teacher"]) == {"topk_values", "topk_indices"}
    ds = classification_pipeline(examples(x, y), CLASSES, SHAPE, 8, True, AugmentConfig(flip=True), teacher_views=b)
    assert next(iter(ds))[2]["final_output"].shape == (8, CLASSES)
    assert b.info["bytes_per_image"] < a.info["bytes_per_image"]


def test_pipeline_refuses_views_drawn_for_another_augmentation(data):
    x, y = data
    d, teacher, _ = models()
    stored = views_cache(d, teacher, AugmentConfig(flip=True), views=1).views(examples(x, y))
    with pytest.raises(ValueError, match="the stored views were drawn for .*flip=True.*crop_padding=2"):
        classification_pipeline(examples(x, y), CLASSES, SHAPE, 8, True, AugmentConfig(flip=True, crop_padding=2),
                                teacher_views=stored)


def test_bad_views_arguments_are_explained():
    with pytest.raises(ValueError, match="train.teacher_views must be .*an integer >= 1 .*got 0"):
        TeacherViewsCache(None, "", AugmentConfig(flip=True), SHAPE, CLASSES, views=0)
    with pytest.raises(ValueError, match="cannot replay this augmentation: randaugment"):
        TeacherViewsCache(None, "", AugmentConfig(randaugment=True), SHAPE, CLASSES)


# ---------------------------------------------------------------- recipes
def smoke(capsys, out, *sets):
    from test_recipe import run_cli

    return run_cli(capsys, "--smoke", *[a for s in sets for a in ("--set", s)], "--out", str(out))


def kd_row(out):
    return next(m for m in json.loads((out / "results.json").read_text())["models"] if m["role"] == "kd")


def test_recipe_uses_stored_views_for_replayable_augmentation(tmp_path, capsys):
    out = tmp_path / "run"
    code, err = smoke(capsys, out, "train.teacher_cache_dir=" + json.dumps(str(tmp_path / "cache")))
    assert code == 0, err
    kd = kd_row(out)
    assert kd["kd"]["teacher_cache"]["mode"] == "views" and kd["kd"]["teacher_cache"]["views"] == 2
    assert kd["kd"]["teacher_outputs"].startswith("teacher outputs from 2 stored augmented views per image "
                                                  "(one per epoch; random augmentation: translate; computed in one pass of ")
    md = (out / "results.md").read_text()
    assert "stored augmented views" in md and "bytes per image" in md
    # a later run (another KD setting, the same teacher) reuses the pass from the shared cache folder
    code, err = smoke(capsys, tmp_path / "run2", "distill.0.losses.0.temperature=2.0",
                      "teacher.weights=" + json.dumps(str(out / "teacher.keras")),
                      "teacher.check_fit=false",  # a 1-epoch smoke teacher: at chance by design
                      "train.teacher_cache_dir=" + json.dumps(str(tmp_path / "cache")))
    assert code == 0, err
    assert "reused from an earlier pass" in kd_row(tmp_path / "run2")["kd"]["teacher_outputs"]


def test_non_replayable_augmentation_falls_back_to_a_live_teacher(tmp_path, capsys):
    code, err = smoke(capsys, tmp_path / "run", "data.augment.randaugment=true")
    assert code == 0, err
    kd = kd_row(tmp_path / "run")
    assert kd["kd"]["teacher_cache"] == {"mode": "live"}
    assert kd["kd"]["teacher_outputs"] == ("teacher runs live: the inputs change every epoch (random augmentation: "
                                           "translate, randaugment) and randaugment draws its ops inside Keras' "
                                           "layer, so its views cannot be replayed")


@pytest.mark.parametrize("sets, message", [
    (["train.teacher_views=0"], "train.teacher_views must be \"epochs\""),
    (["train.teacher_cache=\"views\"", "data.augment.randaugment=true"],
     "train.teacher_cache = \"views\" cannot replay this recipe's inputs: randaugment"),
    (["train.teacher_cache_dir=\"/sys/kd_keras_cache\""],
     "the teacher cache folder '/sys/kd_keras_cache' cannot be created ('/sys' is not writable"),
])
def test_bad_views_settings_are_one_line_errors_before_anything_runs(tmp_path, capsys, sets, message):
    out = tmp_path / "r"
    code, err = smoke(capsys, out, *sets)
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert not out.exists()
