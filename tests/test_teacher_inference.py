"""A teacher file gets the inference a `.keras` one gets: layout, value range, input size, quantised input, class
order; declared values win; a PyTorch-style ONNX teacher runs in one command (issue 45).

Every file here is built from one digits CNN (`core`) behind the input a user's export would have: NCHW or NHWC,
3 channels, in one of the value ranges kd_keras tries, so the teacher's accuracy through kd_keras can be compared
with the core's own.
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import train_digits_classifier

from kd_keras.config import REPO_ROOT
from kd_keras.data import load
from kd_keras.models.runtimes import tflite_bytes
from kd_keras.recipes.cli import main
from kd_keras.teachers.files import open_file_teacher
from kd_keras.teachers.infer import VALUE_RANGES, infer_layout
from kd_keras.teachers.keras_file import load_keras_teacher

DIGITS = ("classification", str(REPO_ROOT / "recipes" / "digits.toml"))
NAMES = [str(i) for i in range(10)]


class ToRaw(keras.layers.Layer):
    """The inverse of a value range: the file's input back to raw 0-255 RGB pixels."""

    def __init__(self, fields, **kwargs):
        super().__init__(**kwargs)
        self.fields = fields

    def call(self, x):
        f = self.fields
        if f.get("std"):
            x = x * np.array(f["std"], "float32")
        if f.get("mean"):
            x = x + np.array(f["mean"], "float32")
        x = x / f.get("scale", 1.0)
        return x[..., ::-1] if f.get("channels") == "bgr" else x


@pytest.fixture(scope="module")
def core(tmp_path_factory):
    """A digits CNN trained for seconds, 256 labelled training images, and the test images."""
    folder = tmp_path_factory.mktemp("inference")
    train_digits_classifier(folder / "core.keras", epochs=6)
    model = keras.saving.load_model(folder / "core.keras")
    splits = load("digits")
    arrays = {}
    for name in ("train", "test"):
        pairs = list(splits.__getattribute__(name).as_numpy_iterator())
        arrays[name] = (np.stack([a for a, _ in pairs]), np.array([b for _, b in pairs]))
    x, y = arrays["train"]
    return model, (x[:256], y[:256]), arrays["test"], folder


def accuracy(model, data) -> float:
    x, y = data
    return float(np.mean(keras.ops.convert_to_numpy(model(x)).argmax(-1) == y))


def file_model(core_model, rng: str, layout: str, order=None):
    """`core_model` behind a 3-channel input in value range `rng` and `layout`; outputs permuted by `order`."""
    inputs = keras.Input((3, 8, 8) if layout == "nchw" else (8, 8, 3))
    x = keras.layers.Permute((2, 3, 1))(inputs) if layout == "nchw" else inputs
    x = ToRaw(VALUE_RANGES[rng])(x)
    grey = keras.layers.Conv2D(1, 1, use_bias=False, trainable=False)
    x = grey(x)
    grey.set_weights([np.full((1, 1, 3, 1), 1 / 3, "float32")])
    y = core_model(x)
    if order is not None:  # output j is data class order[j]
        dense = keras.layers.Dense(10, use_bias=False)
        y = dense(y)
        dense.set_weights([np.eye(10, dtype="float32")[:, order]])
    return keras.Model(inputs, y)


def to_onnx(model, path):
    import tf2onnx

    spec = (tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32, name="input"),)  # dynamic batch
    tf2onnx.convert.from_keras(model, input_signature=spec, opset=17, output_path=str(path))
    return str(path)


def open_teacher(path, sample, adapter=None, **kw):
    return open_file_teacher(str(path), (8, 8, 1), adapter or {}, sample, NAMES, classes=10, **kw)


@pytest.mark.parametrize("layout, rng", [("nchw", r) for r in VALUE_RANGES] + [("nhwc", "raw 0-255"),
                                                                               ("nhwc", "[-1, 1]")])
def test_every_layout_and_value_range_is_recovered_from_a_file_built_for_it(core, tmp_path, layout, rng):
    model, sample, test, _ = core
    path = to_onnx(file_model(model, rng, layout), tmp_path / "t.onnx")
    teacher, notes, record = open_teacher(path, sample)
    inferred = record["inferred"]
    assert inferred["layout"] == layout and record["declared"] == {}
    want = {"scale": 1.0, "mean": [], "std": [], "channels": "rgb", **VALUE_RANGES[rng]}
    for key, value in want.items():
        assert inferred[key] == pytest.approx(value), (key, notes)
    assert any(n.startswith(f"value range {rng} inferred") for n in notes), notes
    assert accuracy(teacher, test) == pytest.approx(accuracy(model, test))  # the core's own accuracy, through ONNX


def test_tflite_and_savedmodel_teachers_get_the_same_inference(core, tmp_path):
    model, sample, test, _ = core
    nchw = file_model(model, "ImageNet mean/std on [0, 1] (torch)", "nchw")
    (tmp_path / "t.tflite").write_bytes(tflite_bytes(nchw))
    nchw.export(str(tmp_path / "sm"), format="tf_saved_model", verbose=False)
    for path in (tmp_path / "t.tflite", tmp_path / "sm"):
        teacher, notes, record = open_teacher(path, sample)
        assert record["inferred"]["layout"] == "nchw" and record["inferred"]["std"] == VALUE_RANGES[
            "ImageNet mean/std on [0, 1] (torch)"]["std"], notes
        assert accuracy(teacher, test) == pytest.approx(accuracy(model, test), abs=1e-9)


def test_a_fixed_input_size_is_taken_by_resizing_in_the_adapter(core, tmp_path):
    model, sample, _, _ = core
    inputs = keras.Input((3, 16, 16))
    x = keras.layers.AveragePooling2D(2, data_format="channels_first")(inputs)  # 16 px back to the core's 8
    fixed = keras.Model(inputs, file_model(model, "[0, 1]", "nchw")(x))
    import tf2onnx

    spec = (tf.TensorSpec((None, 3, 16, 16), tf.float32, name="input"),)
    tf2onnx.convert.from_keras(fixed, input_signature=spec, opset=17, output_path=str(tmp_path / "t16.onnx"))
    teacher, notes, record = open_teacher(tmp_path / "t16.onnx", sample)
    assert record["inferred"]["size"] == [16, 16] and record["inferred"]["scale"] == pytest.approx(1 / 255)
    assert "images resized 8x8 -> 16x16 in the adapter (the file's fixed input size, inferred)" in notes
    assert accuracy(teacher, sample) > 0.5  # bilinear up, average down: not the core's exact input, well above 10%


@pytest.mark.parametrize("io_type", ["uint8", "int8"])
def test_a_quantised_tflite_teacher_takes_images_through_its_input_quantisation(core, tmp_path, io_type):
    model, sample, test, _ = core
    unit = file_model(model, "[0, 1]", "nhwc")
    calibration = [np.repeat(x, 3, -1) / 255.0 for x in sample[0][:128]]
    path = tmp_path / f"t_{io_type}.tflite"
    path.write_bytes(tflite_bytes(unit, "int8", calibration, io_type=io_type))
    teacher, notes, record = open_teacher(path, sample)
    assert record["inferred"]["scale"] == pytest.approx(1 / 255), notes
    assert any(n.startswith(f"the file takes {io_type} input (scale 0.00392") for n in notes), notes
    assert abs(accuracy(teacher, test) - accuracy(model, test)) <= 0.01  # within 1 pt of the float model


def test_declared_adapter_values_are_never_overridden(core, tmp_path):
    model, sample, _, _ = core
    path = to_onnx(file_model(model, "ImageNet mean/std on [0, 1] (torch)", "nchw"), tmp_path / "t.onnx")
    with pytest.raises(ValueError, match="no better than chance .* under the declared teacher.adapter"):
        open_teacher(path, sample, {"scale": 1 / 255})  # a wrong range, declared: used, and refused for it
    teacher, notes, record = open_teacher(path, sample, {"scale": 1 / 255, "output": "logits", "layout": "nchw"},
                                          check_fit=False)
    a = teacher.layers[-1].adapter_config
    assert (a.scale, a.mean, a.std, a.output, a.layout) == (pytest.approx(1 / 255), [], [], "logits", "nchw")
    assert record["declared"] == {"scale": pytest.approx(1 / 255), "output": "logits", "layout": "nchw"}
    assert set(record["inferred"]) == set()  # nothing left to infer but what was declared
    assert "layout nchw declared (teacher.adapter.layout)" in notes
    with pytest.raises(ValueError, match=r'set teacher.adapter.layout = "nchw"'):
        open_teacher(path, sample, {"layout": "nhwc"})


def test_ambiguous_input_shapes_keep_the_default_layout_and_say_so():
    assert infer_layout((3, 3, 3))[0] == "nhwc" and "does not tell which axis" in infer_layout((3, 3, 3))[1]
    assert infer_layout((None, None, None))[0] == "nhwc"
    assert infer_layout((3, None, None))[0] == "nchw" and infer_layout((None, None, 1))[0] == "nhwc"


def test_a_teacher_no_better_than_chance_under_every_range_is_refused_naming_the_keys(core, tmp_path):
    _, sample, _, _ = core
    keras.utils.set_random_seed(3)
    inputs = keras.Input((3, 8, 8))
    untrained = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(inputs)))
    path = to_onnx(untrained, tmp_path / "untrained.onnx")
    with pytest.raises(ValueError, match=r"no better than chance \(10.0%\) on 256 training images under any value "
                                         r"range \(raw 0-255 .*%.*\); declare teacher.adapter.layout, size, scale"):
        open_teacher(path, sample)


PERM = [3, 7, 0, 9, 1, 8, 2, 5, 6, 4]  # output j of the teacher is digit PERM[j]


def test_a_teacher_with_its_classes_in_another_order_is_refused_with_that_order_and_taught_with_it(core, tmp_path):
    model, sample, test, _ = core
    path = to_onnx(file_model(model, "[0, 1]", "nchw", order=PERM), tmp_path / "perm.onnx")
    implied = "[" + ", ".join(f'"{c}"' for c in PERM) + "]"
    with pytest.raises(ValueError, match=r"maps? one to one onto the data's classes in another order: read as "
                                         r"\(3, 7, 0, 9, 1, 8, 2, 5, 6, 4\).*class_order = " + implied.replace("[", r"\[")
                       .replace("]", r"\]")):
        open_teacher(path, sample)
    teacher, notes, _ = open_teacher(path, sample, {"class_order": [str(c) for c in PERM]})
    assert accuracy(teacher, test) == pytest.approx(accuracy(model, test))
    assert any(n.startswith("class order declared") for n in notes)
    by_index, _, _ = open_teacher(path, sample, {"class_order": PERM})  # indices work as names do
    assert accuracy(by_index, test) == pytest.approx(accuracy(model, test))
    with pytest.raises(ValueError, match="teacher.adapter.class_order must list each of the data's 10 classes once"):
        open_teacher(path, sample, {"class_order": PERM[:9]})
    with pytest.raises(ValueError, match="teacher.adapter.class_order names 'ten', not among the data's 10 classes"):
        open_teacher(path, sample, {"class_order": [str(c) for c in PERM[:9]] + ["ten"]})


def test_a_keras_teacher_with_its_classes_in_another_order_gets_the_same_check(core, tmp_path):
    model, sample, test, _ = core
    inputs = keras.Input((8, 8, 1))
    dense = keras.layers.Dense(10, use_bias=False)
    permuted = keras.Model(inputs, dense(model(inputs)))
    dense.set_weights([np.eye(10, dtype="float32")[:, PERM]])
    permuted.save(tmp_path / "perm.keras")
    with pytest.raises(ValueError, match="in another order: read as"):
        load_keras_teacher(tmp_path / "perm.keras", (8, 8, 1), sample=sample, class_names=NAMES)
    teacher, _, _ = load_keras_teacher(tmp_path / "perm.keras", (8, 8, 1), {"class_order": PERM}, sample=sample,
                                       class_names=NAMES)
    assert accuracy(teacher, test) == pytest.approx(accuracy(model, test))
    teacher.save(tmp_path / "adapted.keras")  # the run's teacher.keras reloads with its class order
    assert accuracy(keras.saving.load_model(tmp_path / "adapted.keras"), test) == pytest.approx(accuracy(model, test))


def run_cli(capsys, *argv):
    code = main(*DIGITS, list(argv))
    captured = capsys.readouterr()
    return code, captured.err.strip(), captured.out


def test_a_permuted_teacher_in_a_recipe_is_one_line_then_teaches_with_its_order_declared(core, tmp_path, capsys):
    model, _, test, _ = core
    path = to_onnx(file_model(model, "[0, 1]", "nchw", order=PERM), tmp_path / "perm.onnx")
    out = tmp_path / "run"
    code, err, printed = run_cli(capsys, "--teacher", path, "--smoke", "--out", str(out))
    assert code == 2 and len(err.splitlines()) == 1 and "teacher.adapter.class_order = [" in err, err
    assert "Traceback" not in err and "epoch" not in printed.lower() and not out.exists()
    order = "[" + ", ".join(f'"{c}"' for c in PERM) + "]"
    code, err, printed = run_cli(capsys, "--teacher", path, "--smoke", "--out", str(out),
                                 "--set", f"teacher.adapter.class_order={order}")
    assert code == 0, err
    teacher = {r["name"]: r for r in json.loads((out / "results.json").read_text())["models"]}["teacher"]
    assert teacher["accuracy"] > 0.8  # as ordered it scores below 10%
    assert teacher["adapter"]["declared"] == {"class_order": [str(c) for c in PERM]}
    assert "class order declared" in (out / "results.md").read_text()


def test_a_pytorch_style_onnx_teacher_runs_in_one_command_as_well_as_declared(core, tmp_path, capsys):
    """The measured target: NCHW, ImageNet mean/std outside the model, dynamic batch; no --set line."""
    model, _, _, _ = core
    path = to_onnx(file_model(model, "ImageNet mean/std on [0, 1] (torch)", "nchw"), tmp_path / "torch_style.onnx")
    runs = {}
    for name, sets in (("inferred", []), ("declared", [
            'teacher.adapter.layout="nchw"', "teacher.adapter.scale=0.00392156862745098",
            "teacher.adapter.mean=[0.485, 0.456, 0.406]", "teacher.adapter.std=[0.229, 0.224, 0.225]"])):
        out = tmp_path / name
        argv = ["--teacher", path, "--smoke", "--out", str(out)]
        for s in sets:
            argv += ["--set", s]
        code, err, printed = run_cli(capsys, *argv)
        assert code == 0, err
        runs[name] = {r["name"]: r for r in json.loads((out / "results.json").read_text())["models"]}["teacher"]
    assert abs(runs["inferred"]["accuracy"] - runs["declared"]["accuracy"]) <= 0.005
    assert runs["inferred"]["accuracy"] > 0.8
    assert runs["inferred"]["adapter"]["inferred"]["layout"] == "nchw"
    assert runs["inferred"]["adapter"]["inferred"]["mean"] == [0.485, 0.456, 0.406]
    assert set(runs["declared"]["adapter"]["declared"]) == {"layout", "scale", "mean", "std"}
    assert "layout nchw inferred" in runs["inferred"]["source"] and "value range declared" in runs["declared"]["source"]


class Custom(keras.layers.Layer):
    def call(self, x):
        return x * 2.0


def test_a_keras_teacher_needing_an_unregistered_class_or_a_missing_package_is_one_line(core, tmp_path, capsys):
    import importlib.util

    objects = keras.saving.get_custom_objects()
    for package, module, cls_name in (("kd_test_pkg", "my_layers", "MyBlock"),
                                      ("keras_hub", "keras_hub.src.layers.fake_block", "FakeBlock")):
        if package == "keras_hub" and importlib.util.find_spec("keras_hub") is not None:
            continue  # installed here: it would load
        cls = type(cls_name, (Custom,), {"__module__": module})
        keras.saving.register_keras_serializable(package)(cls)
        inputs = keras.Input((8, 8, 1))
        path = tmp_path / f"{cls_name}.keras"
        keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(cls()(inputs)))).save(path)
        objects.pop(f"{package}>{cls_name}")  # as in a new process that never imported the class
        code, err, printed = run_cli(capsys, "--teacher", str(path), "--smoke", "--out", str(tmp_path / "run"))
        assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
        if package == "keras_hub":
            assert "needs the package keras-hub (its class 'FakeBlock' lives in keras_hub.src.layers.fake_block)" \
                   in err and "pip install keras-hub" in err, err
        else:
            assert "needs the custom object 'MyBlock' (saved from module 'my_layers')" in err and \
                   "--custom-objects MODULE" in err, err


def test_a_loaded_teacher_below_chance_is_refused_even_on_a_validation_split_too_small_to_judge_weakness():
    """3 classes and 26 validation images cannot tell a weak teacher from chance, but 0% is below chance."""
    from types import SimpleNamespace

    from kd_keras.tasks.classification import ClassificationTask

    inputs = keras.Input((8, 8, 1))
    mean = keras.layers.GlobalAveragePooling2D()(inputs)  # images of one value per class: 0, 100, 200
    steps = keras.layers.Dense(3)
    order = keras.layers.Dense(3, use_bias=False)
    model = keras.Model(inputs, order(steps(mean)))
    steps.set_weights([np.array([[0.0, 1.0, 2.0]], "float32"), np.array([0.0, -50.0, -240.0], "float32")])
    labels = np.arange(26) % 3
    x = np.repeat(labels * 100.0, 64).reshape(26, 8, 8, 1).astype("float32")
    val = tf.data.Dataset.from_tensor_slices((x, np.eye(3, dtype="float32")[labels])).batch(8)
    splits = SimpleNamespace(num_val=26, num_classes=3, input_shape=(8, 8, 1), class_names=["frog", "ship", "truck"])
    task = ClassificationTask()
    order.set_weights([np.eye(3, dtype="float32")])
    assert task.chance_check(model, val, splits) == ""  # in order: 100%
    order.set_weights([np.eye(3, dtype="float32")[:, [1, 2, 0]]])  # output j is class [1, 2, 0][j]
    why = task.chance_check(model, val, splits)
    assert why.startswith("scores 0.0% on the 26 validation images, below chance (33.3% for 3 classes)"), why
    assert "read as (ship, truck, frog) it scores 100.0%" in why, why


def test_the_pytorch_teacher_benchmark_refuses_a_runs_folder_without_step_one_in_one_line(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "pytorch_teacher.py"), "--runs",
                           str(tmp_path), "--results", str(tmp_path / "r")], capture_output=True, text=True)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "has no torch.json; run benchmarks/pytorch_teacher_export.py first" in proc.stderr


def test_a_teacher_ending_in_a_sigmoid_is_read_through_its_logits_in_every_format(core, tmp_path):
    """Its soft targets are its own scores before the sigmoid, not near-uniform ones (issue 46, fault 5)."""
    from kd_keras.teachers.load import load_teacher

    model, sample, test, _ = core
    inputs = keras.Input((8, 8, 1))
    sig = keras.Model(inputs, keras.layers.Activation("sigmoid")(model(inputs)))
    sig.save(tmp_path / "sig.keras")
    want = keras.ops.convert_to_numpy(model(test[0][:32]))
    keras_teacher, notes, record = load_keras_teacher(tmp_path / "sig.keras", (8, 8, 1), sample=sample,
                                                      class_names=NAMES)
    assert record["inferred"]["output"] == "sigmoid" and any("outputs sigmoid scores" in n for n in notes)
    few = load_teacher(tmp_path / "sig.keras", (8, 8, 1), sample=(sample[0][:3], sample[1][:3]), log=None)
    onnx_teacher, notes, record = open_teacher(to_onnx(sig, tmp_path / "sig.onnx"), sample)
    assert record["inferred"]["output"] == "sigmoid", notes
    for teacher in (keras_teacher, few, onnx_teacher):
        got = keras.ops.convert_to_numpy(teacher(test[0][:32]))
        unsaturated = np.abs(want) < 12
        np.testing.assert_allclose(got[unsaturated], want[unsaturated], atol=2e-3)
    with pytest.raises(ValueError, match=r'outputs sigmoid scores .*teacher.adapter.output = \"sigmoid\"'):
        open_teacher(tmp_path / "sig.onnx", sample, {"output": "logits"})  # a file's rows say otherwise


def test_a_tie_in_the_value_range_probe_is_broken_by_a_printed_rule_not_silently(core, tmp_path):
    """A teacher trained on x/255 that scores alike under raw pixels: its range is the one with sane logits."""
    _, sample, _, _ = core
    keras.utils.set_random_seed(0)
    unit = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(16, 3, activation="relu"),
                             keras.layers.Flatten(), keras.layers.Dense(10)])  # no preprocessing layer: takes [0, 1]
    unit.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    unit.fit(sample[0] / 255.0, sample[1], epochs=30, batch_size=32, verbose=0)
    unit.save(tmp_path / "unit.keras")
    easy = (sample[0][:40], sample[1][:40])
    logits = {r: keras.ops.convert_to_numpy(unit(easy[0] * VALUE_RANGES[r].get("scale", 1.0))) for r in
              ("raw 0-255", "[0, 1]")}
    x = easy[0][np.all([v.argmax(-1) == easy[1] for v in logits.values()], axis=0)]  # right under both
    y = easy[1][np.all([v.argmax(-1) == easy[1] for v in logits.values()], axis=0)]
    teacher, notes, record = load_keras_teacher(tmp_path / "unit.keras", (8, 8, 1), sample=(x, y), class_names=NAMES,
                                                check_fit=False)
    note = next(n for n in notes if n.startswith("value range"))
    assert note.startswith("value range [0, 1] inferred"), note
    assert "broken by the rule that the teacher's logits are least extreme" in note, note
    assert record["inferred"]["scale"] == pytest.approx(1 / 255)


def test_a_pytorch_style_onnx_model_is_benchmarked_through_the_inferred_adapter(core, tmp_path):
    from kd_keras.benchmark.bench import benchmark

    model, _, _, _ = core
    path = to_onnx(file_model(model, "ImageNet mean/std on [0, 1] (torch)", "nchw"), tmp_path / "torch_style.onnx")
    result = benchmark([path], "digits", str(tmp_path / "bench"), runs=50, warmup=2, batch=4, log=lambda m: None)
    row = result["models"][0]
    assert row["adapter"]["inferred"]["layout"] == "nchw" and row["input_shape"] == [3, 8, 8]
    test = load("digits").test
    x = np.stack([a for a, _ in test.as_numpy_iterator()])
    y = np.array([b for _, b in test.as_numpy_iterator()])
    assert row["accuracy"] == pytest.approx(float(np.mean(keras.ops.convert_to_numpy(model(x)).argmax(-1) == y)))
