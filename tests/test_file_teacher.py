"""Teachers that are files (ONNX, TFLite, SavedModel): the Keras teacher's outputs through the cache, the adapter,
a recipe end to end with an ONNX teacher, and every mistake in one line before training."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import train_digits_classifier

from kd_keras import Distiller
from kd_keras.config import REPO_ROOT
from kd_keras.data import load
from kd_keras.export import converters
from kd_keras.losses import FitNetsLoss, KDLoss
from kd_keras.models import create_model
from kd_keras.recipes.cli import main
from kd_keras.teachers.cache import TeacherOutputCache, teacher_fingerprint
from kd_keras.teachers.files import load_file_teacher

DIGITS = ("classification", str(REPO_ROOT / "recipes" / "digits.toml"))
MEAN, STD = 0.5, 0.25


@pytest.fixture(scope="module")
def teacher_files(tmp_path_factory):
    """A digits CNN trained for seconds, and the same model as ONNX, TFLite and SavedModel files."""
    folder = tmp_path_factory.mktemp("file_teacher")
    x = train_digits_classifier(folder / "teacher.keras", epochs=4)
    model = keras.saving.load_model(folder / "teacher.keras")
    converters.onnx(model, str(folder / "teacher.onnx"))
    converters.tflite(model, str(folder / "teacher.tflite"))
    converters.saved_model(model, str(folder / "teacher_sm"))
    return model, x, folder


def cached(teacher, x):
    """The teacher's outputs for `x` through the fixed-input cache, as a KD student's batches carry them."""
    student = create_model("small_cnn", 10, (8, 8, 1), widths=(4,))
    d = Distiller(teacher, student, "kd")
    cache = TeacherOutputCache(d.teacher_outputs, teacher_fingerprint(teacher, d.teacher_layers), log=lambda m: None)
    ds = cache.outputs(tf.data.Dataset.from_tensor_slices((x, np.zeros(len(x), "int32"))))
    return np.stack([o["final_output"] for o in ds.as_numpy_iterator()])


@pytest.mark.parametrize("name", ["teacher.onnx", "teacher.tflite", "teacher_sm"])
def test_file_teachers_give_the_keras_teachers_outputs_through_the_cache(teacher_files, name):
    model, x, folder = teacher_files
    teacher = load_file_teacher(str(folder / name), (8, 8, 1))
    want = keras.ops.convert_to_numpy(model(x, training=False))
    np.testing.assert_allclose(cached(teacher, x), want, atol=1e-4)
    assert want.std() > 0.5  # distinct logits, not a degenerate model


def nchw_model(model, batch=None):
    """`model` behind a PyTorch-style input: NCHW, pixels / 255, normalised with MEAN and STD."""
    inputs = keras.Input((1, 8, 8), batch_size=batch)
    x = keras.layers.Permute((2, 3, 1))(inputs)
    x = keras.layers.Rescaling(STD * 255.0, offset=MEAN * 255.0)(x)  # back to 0-255 pixels
    return keras.Model(inputs, model(x))


def to_onnx(model, path, batch=None):
    import tf2onnx

    spec = (tf.TensorSpec((batch, *model.inputs[0].shape[1:]), tf.float32, name="input"),)
    tf2onnx.convert.from_keras(model, input_signature=spec, opset=17, output_path=str(path))
    return str(path)


def test_an_nchw_normalised_onnx_teacher_works_through_the_declared_adapter(teacher_files, tmp_path):
    """A PyTorch-style export traced at batch 1: the adapter feeds it, and batches run in chunks of 1."""
    model, x, _ = teacher_files
    path = to_onnx(nchw_model(model, batch=1), tmp_path / "torch_style.onnx", batch=1)
    with pytest.raises(ValueError, match=r"takes images of shape \(1, 8, 8\).*set teacher.adapter.layout = \"nchw\""):
        load_file_teacher(path, (8, 8, 1), {"layout": "nhwc"})  # a declared layout is never overridden
    adapter = {"scale": 1 / 255, "mean": [MEAN], "std": [STD]}  # the layout is inferred from the file's input
    teacher = load_file_teacher(path, (8, 8, 1), adapter)
    assert teacher.layers[-1].adapter_config.layout == "nchw"
    np.testing.assert_allclose(cached(teacher, x[:10]), keras.ops.convert_to_numpy(model(x[:10])), atol=1e-4)
    wrong = load_file_teacher(path, (8, 8, 1), {**adapter, "mean": [0.0]})  # a wrong mean gives other outputs
    assert np.abs(cached(wrong, x[:10]) - keras.ops.convert_to_numpy(model(x[:10]))).max() > 0.1


@pytest.mark.parametrize("output", ["auto", "probabilities"])
def test_a_teacher_ending_in_softmax_is_detected_or_declared_and_read_as_probabilities(teacher_files, tmp_path,
                                                                                       output):
    model, x, _ = teacher_files
    soft = keras.Model(model.inputs, keras.layers.Softmax()(model.outputs[0]))
    path = to_onnx(soft, tmp_path / "soft.onnx")
    with pytest.raises(ValueError, match="outputs probabilities.*teacher.adapter.output = \"probabilities\""):
        load_file_teacher(path, (8, 8, 1), {"output": "logits"})  # declared logits: refused, not trained on
    teacher = load_file_teacher(path, (8, 8, 1), {"output": output})
    assert teacher.layers[-1].adapter_config.output == "probabilities"
    plain = load_file_teacher(to_onnx(model, tmp_path / "plain.onnx"), (8, 8, 1))  # logits stay logits
    assert plain.layers[-1].adapter_config.output == "logits"
    logits = keras.ops.convert_to_numpy(model(x))
    got = cached(teacher, x)
    np.testing.assert_allclose(got, logits - np.log(np.exp(logits).sum(-1, keepdims=True)), atol=1e-4)
    kd = KDLoss(4.0)  # the same soft targets, so the same KD term as the Keras teacher's logits
    student = np.random.default_rng(0).normal(size=logits.shape).astype("float32")
    np.testing.assert_allclose(float(kd.compute_loss(got, student)), float(kd.compute_loss(logits, student)),
                               rtol=1e-4)


def test_the_distiller_never_calls_a_file_teacher_in_a_training_step(teacher_files):
    _, x, folder = teacher_files
    teacher = load_file_teacher(str(folder / "teacher.onnx"), (8, 8, 1))
    student = create_model("small_cnn", 10, (8, 8, 1), widths=(4,))
    d = Distiller(teacher, student, [KDLoss(4.0)])
    d.compile("adam", keras.losses.CategoricalCrossentropy(from_logits=True))
    y = np.eye(10, dtype="float32")[np.arange(len(x)) % 10]
    with pytest.raises(ValueError, match="runs outside the training step.*TeacherOutputCache"):
        d.fit(x, y, epochs=1, verbose=0)
    outputs = keras.ops.convert_to_numpy(teacher(x))
    d = Distiller(teacher, student, [KDLoss(4.0)])  # a new one: the failed trace left the optimizer half built
    d.compile("adam", keras.losses.CategoricalCrossentropy(from_logits=True))
    d.fit(tf.data.Dataset.from_tensor_slices((x, y, outputs)).batch(16), epochs=1, verbose=0)  # from the batch
    with pytest.raises(ValueError, match="gives its final output only; feature losses need a Keras teacher"):
        Distiller(teacher, student, [FitNetsLoss("conv1", "conv1")])


def flat_onnx(path):
    """An ONNX classifier of flat 64-value vectors (rank-2 input), written with onnx.helper."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((64, 10), np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "flat",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 10])], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    return str(path)


def test_an_onnx_file_whose_input_is_not_an_image_batch_is_refused(tmp_path):
    path = flat_onnx(tmp_path / "flat.onnx")
    with pytest.raises(ValueError, match=r"takes inputs of rank 2 .* a teacher file needs one image input"):
        load_file_teacher(path, (8, 8, 1))


def run_cli(capsys, *argv):
    code = main(*DIGITS, list(argv))
    captured = capsys.readouterr()
    return code, captured.err.strip(), captured.out


def test_recipe_runs_end_to_end_with_an_onnx_teacher(teacher_files, tmp_path, capsys):
    model, _, folder = teacher_files
    out = tmp_path / "run"
    onnx_path = folder / "teacher.onnx"
    code, err, printed = run_cli(capsys, "--smoke", "--set", f"teacher.weights=\"{onnx_path}\"", "--out", str(out))
    assert code == 0, err
    rows = {r["name"]: r for r in json.loads((out / "results.json").read_text())["models"]}
    t = rows["teacher"]
    assert t["arch"] == "teacher.onnx (ONNX)" and t["size_bytes"] == os.path.getsize(onnx_path)
    assert 0.9 * model.count_params() < t["params"] <= model.count_params()  # the export folds BatchNorm in
    assert "run by ONNX Runtime" in t["source"]
    test = load("digits").test
    x = np.stack([a for a, _ in test.as_numpy_iterator()])
    labels = np.array([b for _, b in test.as_numpy_iterator()])
    keras_acc = float((keras.ops.convert_to_numpy(model(x)).argmax(-1) == labels).mean())
    assert abs(t["accuracy"] - keras_acc) < 1 / len(labels) + 1e-9  # measured through ONNX Runtime, same model
    assert "teacher: the file teacher.onnx (ONNX), run by ONNX Runtime" in printed
    assert f"- teacher teacher.onnx (ONNX): loaded from {onnx_path}, run by ONNX Runtime" in \
        (out / "results.md").read_text()
    assert rows["kd"]["kd"]["teacher_cache"]["mode"] == "views"  # digits translate: stored views, not live
    saved = keras.saving.load_model(out / "teacher.keras")  # what a resumed run loads: the file, checked unchanged
    np.testing.assert_allclose(saved(x[:8]), model(x[:8]), atol=1e-4)


def test_an_onnx_teacher_teaches_a_mixed_precision_student(teacher_files, tmp_path, capsys):
    _, x, folder = teacher_files
    out = tmp_path / "run"
    code, err, _ = run_cli(capsys, "--smoke", "--set", f"teacher.weights=\"{folder / 'teacher.onnx'}\"",
                           "--set", "train.precision=\"mixed_bfloat16\"", "--out", str(out))
    assert code == 0, err
    assert keras.config.dtype_policy().name == "float32"
    rows = {r["name"]: r for r in json.loads((out / "results.json").read_text())["models"]}
    assert rows["kd"]["kd"]["teacher_cache"]["mode"] == "views"
    assert 0.0 <= rows["kd"]["accuracy"] <= 1.0
    student = keras.saving.load_model(out / "kd.keras", compile=False)
    assert np.all(np.isfinite(student.predict(x[:4], verbose=0)))


@pytest.fixture(scope="module")
def odd_files(teacher_files, tmp_path_factory):
    model, _, folder = teacher_files
    three = keras.Model(model.inputs, keras.layers.Dense(3)(model.outputs[0]))
    return {"nchw": to_onnx(nchw_model(model), folder / "nchw.onnx"),
            "three": to_onnx(three, folder / "three.onnx"),
            "flat": flat_onnx(folder / "flat.onnx")}


@pytest.mark.parametrize("case", [
    ("onnx", ['distill.0.losses=[{ method = "fitnets", teacher_layer = "conv1", student_layer = "conv1" }]'],
     "gives its final output only; feature losses need a Keras teacher"),
    ("three", [], "gives 3 scores per image, but the data has 10 classes (0, 1, 2, 3, 4, 5, 6, 7, 8, 9)"),
    ("nchw", ['teacher.adapter.layout="nhwc"'], 'set teacher.adapter.layout = "nchw"'),
    ("onnx", ['teacher.adapter.layout="chw"'], "teacher.adapter.layout must be one of 'auto', 'nhwc', 'nchw', got 'chw'"),
    ("onnx", ["teacher.adapter.std=[0.0]"], "teacher.adapter.std must be > 0"),
    ("onnx", ["teacher.adapter.mean=[1, 2]"], "need 1 or 1 values"),
    ("flat", [], "takes inputs of rank 2"),
    ("onnx", ['train.teacher_cache="off"'], "never in the training step"),
    ("onnx", ['data.augment.randaugment=true'], "cannot replay"),
    ("onnx", ["teacher.finetune=true"], "cannot be trained"),
    ("keras", ['teacher.adapter.layout="nchw"'], "drop teacher.adapter"),
], ids=["feature loss", "width", "missing adapter", "malformed adapter", "zero std", "mean length", "rank",
        "cache off", "randaugment", "finetune", "adapter on keras"])
def test_file_teacher_mistakes_are_one_line_before_training(teacher_files, odd_files, tmp_path, capsys, case):
    which, sets, message = case
    _, _, folder = teacher_files
    path = {"onnx": str(folder / "teacher.onnx"), "keras": str(folder / "teacher.keras"), **odd_files}[which]
    out = tmp_path / "run"
    argv = ["--smoke", "--set", f'teacher.weights="{path}"', "--out", str(out)]
    for s in sets:
        argv += ["--set", s]
    code, err, printed = run_cli(capsys, *argv)
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert "Traceback" not in err and "epoch" not in printed.lower() and not out.exists()


def test_a_saved_file_teacher_refuses_a_file_changed_since(teacher_files, odd_files, tmp_path):
    import shutil

    _, _, folder = teacher_files
    path = tmp_path / "t.onnx"
    shutil.copy(folder / "teacher.onnx", path)
    load_file_teacher(str(path), (8, 8, 1)).save(tmp_path / "t.keras")
    shutil.copy(odd_files["three"], path)  # another model under the same name
    with pytest.raises(Exception, match="has changed since this model was saved"):
        keras.saving.load_model(tmp_path / "t.keras")


def test_a_moved_teacher_file_keeps_its_fingerprint_and_a_changed_one_does_not(teacher_files, tmp_path):
    import shutil

    _, _, folder = teacher_files
    moved = tmp_path / "elsewhere" / "renamed.onnx"
    moved.parent.mkdir()
    shutil.copy(folder / "teacher.onnx", moved)
    here = teacher_fingerprint(load_file_teacher(str(folder / "teacher.onnx"), (8, 8, 1)))
    assert teacher_fingerprint(load_file_teacher(str(moved), (8, 8, 1))) == here
    other = teacher_fingerprint(load_file_teacher(str(folder / "teacher.tflite"), (8, 8, 1)))
    assert other != here


@pytest.mark.parametrize("which, sets, message", [
    ("three", [], "teacher '{path}' gives 3 scores per image, but the data has 10 classes"),
    ("onnx", ["teacher.finetune=true"], "teacher.model '{path}' is a ONNX file, which cannot be trained"),
], ids=["width", "finetune"])
def test_the_teacher_flag_takes_a_file_teacher_as_teacher_weights_did(teacher_files, odd_files, tmp_path, capsys,
                                                                      which, sets, message):
    _, _, folder = teacher_files
    path = {"onnx": str(folder / "teacher.onnx"), **odd_files}[which]
    argv = ["--smoke", "--teacher", path, "--out", str(tmp_path / "run")]
    for s in sets:
        argv += ["--set", s]
    code, err, _ = run_cli(capsys, *argv)
    assert code == 2 and len(err.splitlines()) == 1 and message.format(path=path) in err, err
