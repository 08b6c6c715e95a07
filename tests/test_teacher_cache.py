"""The teacher-output cache: the same outputs as a live teacher, keyed storage, and the pipeline's zip."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_classifier

from kd_keras import Distiller
from kd_keras.data.augment import AugmentConfig
from kd_keras.data.pipeline import classification_pipeline
from kd_keras.losses import FitNetsLoss, KDLoss
from kd_keras.teachers.cache import TeacherOutputCache, teacher_fingerprint

CE = keras.losses.CategoricalCrossentropy(from_logits=True)


@pytest.fixture
def examples(toy_data):
    x, y = toy_data
    return x, y.argmax(-1).astype("int32")


def distiller_pair(seed=2, losses=None):
    keras.utils.set_random_seed(seed)
    teacher = tiny_classifier(name="teacher", filters=8)
    student = tiny_classifier(name="student")
    return Distiller(teacher, student, losses or [KDLoss(3.0)]), teacher, student


def make_cache(d, teacher, **kw):
    return TeacherOutputCache(d.teacher_outputs, teacher_fingerprint(teacher, d.teacher_layers), log=lambda m: None,
                              **kw)


def test_cached_outputs_are_the_teachers_per_example_in_order(examples):
    x, y = examples
    d, teacher, _ = distiller_pair(losses=[KDLoss(3.0), FitNetsLoss("feat", "feat")])
    assert d.teacher_layers == ["feat", "final_output"]
    lines = []
    cache = TeacherOutputCache(d.teacher_outputs, teacher_fingerprint(teacher, d.teacher_layers), storage="memory",
                               batch_size=24, log=lines.append)
    out = list(cache.outputs(tf.data.Dataset.from_tensor_slices((x, y))).as_numpy_iterator())
    assert len(out) == len(x) and set(out[0]) == {"feat", "final_output"}
    np.testing.assert_allclose(np.stack([o["final_output"] for o in out]), teacher.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)
    feat = keras.Model(teacher.inputs, teacher.get_layer("feat").output)(x, training=False)
    np.testing.assert_allclose(np.stack([o["feat"] for o in out]), feat, rtol=1e-5, atol=1e-5)
    # progress: not a terminal here, so a line per tenth of the pass, ending at the whole set
    assert [l for l in lines if "teacher pass" in l] == ["   teacher pass: 24/64 examples (37%)",
                                                         "   teacher pass: 48/64 examples (75%)",
                                                         "   teacher pass: 64/64 examples (100%)"]
    assert cache.last == {"mode": "memory", "key": cache.last["key"], "examples": 64, "computed": True,
                          "seconds": cache.last["seconds"]}
    cache.outputs(tf.data.Dataset.from_tensor_slices((x, y)))
    assert cache.last["computed"] is False  # same teacher and data: served from memory


def test_training_on_cached_outputs_equals_a_live_teacher(examples):
    x, y = examples
    histories, weights = [], []
    for cached in (False, True):
        d, teacher, student = distiller_pair()
        d.compile(keras.optimizers.SGD(0.05), CE)
        outputs = make_cache(d, teacher, storage="memory").outputs(
            tf.data.Dataset.from_tensor_slices((x, y))) if cached else None
        ds = classification_pipeline(tf.data.Dataset.from_tensor_slices((x, y)), 3, (8, 8, 3), 16, True, seed=3,
                                     teacher_outputs=outputs)
        if cached:
            assert len(ds.element_spec) == 3 and set(ds.element_spec[2]) == {"final_output"}
        keras.utils.set_random_seed(0)
        histories.append(d.fit(ds, epochs=3, verbose=0).history)
        weights.append(student.get_weights())
    for key in ("loss", "student_loss", "distillation_loss"):
        np.testing.assert_allclose(histories[0][key], histories[1][key], rtol=1e-5)
    assert histories[1]["distillation_loss"][0] > 0
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_disk_cache_is_reused_and_invalidated_by_a_new_teacher_or_data(examples, tmp_path):
    x, y = examples
    d, teacher, _ = distiller_pair()
    data = tf.data.Dataset.from_tensor_slices((x, y))
    first = make_cache(d, teacher, storage="disk", directory=str(tmp_path))
    out1 = np.stack([o["final_output"] for o in first.outputs(data).as_numpy_iterator()])
    assert first.last["computed"] and first.last["mode"] == "disk"
    assert sorted(os.listdir(tmp_path)) == [first.last["key"]]  # no .partial folder left

    again = make_cache(d, teacher, storage="disk", directory=str(tmp_path))  # a new process would see this
    out2 = np.stack([o["final_output"] for o in again.outputs(data).as_numpy_iterator()])
    assert not again.last["computed"] and again.last["key"] == first.last["key"]
    np.testing.assert_array_equal(out1, out2)

    x2 = x.copy()
    x2[5, 0, 0, 0] += 1.0  # one pixel of one example
    other_data = make_cache(d, teacher, storage="disk", directory=str(tmp_path))
    other_data.outputs(tf.data.Dataset.from_tensor_slices((x2, y)))
    assert other_data.last["computed"] and other_data.last["key"] != first.last["key"]

    layer = teacher.get_layer("logits")
    layer.kernel.assign(layer.kernel + 0.1)  # the teacher changed (e.g. retrained)
    retrained = make_cache(d, teacher, storage="disk", directory=str(tmp_path))
    out3 = np.stack([o["final_output"] for o in retrained.outputs(data).as_numpy_iterator()])
    assert retrained.last["computed"] and retrained.last["key"] not in (first.last["key"], other_data.last["key"])
    assert not np.allclose(out1, out3)


def test_auto_storage_goes_to_disk_above_the_memory_limit(examples, tmp_path):
    x, y = examples
    d, teacher, _ = distiller_pair()
    data = tf.data.Dataset.from_tensor_slices((x, y))
    small = make_cache(d, teacher, storage="auto", directory=str(tmp_path), max_memory_mb=1)
    small.outputs(data)
    assert small.last["mode"] == "memory"
    tiny = make_cache(d, teacher, storage="auto", directory=str(tmp_path), max_memory_mb=0.0001)
    tiny.outputs(data)
    assert tiny.last["mode"] == "disk" and os.path.isdir(tiny.last["path"])


def test_pipeline_refuses_cached_outputs_with_random_augmentation(examples):
    x, y = examples
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    outputs = tf.data.Dataset.from_tensor_slices({"final_output": np.zeros((64, 3), "float32")})
    with pytest.raises(ValueError, match=r"random augmentation is on \(flip\)"):
        classification_pipeline(ds, 3, (8, 8, 3), 16, True, AugmentConfig(flip=True), teacher_outputs=outputs)


def test_bad_cache_arguments_are_explained():
    with pytest.raises(ValueError, match="must be one of auto, memory, disk, got 'ram'"):
        TeacherOutputCache(None, "", storage="ram")
    with pytest.raises(ValueError, match="needs a directory"):
        TeacherOutputCache(None, "", storage="disk")


def test_recipe_caches_the_teacher_when_inputs_are_fixed(tmp_path, capsys):
    import json

    from test_recipe import run_cli

    out = tmp_path / "run"
    code, err = run_cli(capsys, "--smoke", "--set", "data.augment.translate=0.0", "--out", str(out))
    assert code == 0, err
    kd = next(m for m in json.loads((out / "results.json").read_text())["models"] if m["role"] == "kd")
    assert kd["kd"]["teacher_outputs"].startswith("teacher outputs cached in memory (computed in one pass of ")
    assert 0.0 <= kd["accuracy"] <= 1.0


def test_forcing_a_cache_with_random_augmentation_is_a_one_line_error(tmp_path, capsys):
    from test_recipe import run_cli

    code, err = run_cli(capsys, "--smoke", "--set", "train.teacher_cache=\"disk\"", "--out", str(tmp_path / "r"))
    assert code == 2 and len(err.splitlines()) == 1
    assert "train.teacher_cache = 'disk' needs fixed training inputs" in err and "random augmentation: translate" in err
    assert not (tmp_path / "r").exists()
