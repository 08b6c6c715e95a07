"""Nothing lost and nothing silently wrong, round three (issue 46): each case run as a user runs it (a subprocess),
asserting the exit code, one line, no traceback, and the user's files byte-identical."""

from __future__ import annotations

from pathlib import Path

import pytest

from kd_keras.config import REPO_ROOT

from test_cli_mistakes import assert_one_line_error, snapshot
from test_user_mistakes import recipe


@pytest.fixture(scope="module")
def earlier_run(tmp_path_factory):
    """A finished `--smoke` digits run at 16 px (the export's default digits data is 8 px), whose files a refused
    `--overwrite` must leave as they are."""
    root = tmp_path_factory.mktemp("earlier")
    proc = recipe("--out", "run", "--set", "data.image_size=16", cwd=root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return root


@pytest.mark.parametrize("sets, message", [
    (["data.augment.translate=0.0", "data.augment.crop_padding=40"],
     "data.augment.crop_padding = 40 needs images larger than 40 px, and the images are 8 px"),
    (["data.image_size=2", "data.augment.translate=0.0", "data.augment.crop_padding=4"],
     "data.augment.crop_padding = 4 needs images larger than 4 px, and the images are 2 px"),
], ids=["crop padding", "image size"])
def test_a_setting_that_cannot_work_is_refused_before_overwrite_removes_anything(earlier_run, sets, message):
    before = snapshot(earlier_run / "run")
    argv = ["--out", "run", "--overwrite"]
    for s in sets:
        argv += ["--set", s]
    proc = recipe(*argv, cwd=earlier_run)
    assert_one_line_error(proc, message)
    assert "removed" not in proc.stdout
    assert snapshot(earlier_run / "run") == before  # the earlier run's files, names and bytes


def _images(folder: Path, counts: dict, size: int = 16, ext: str = "png", seed: int = 0) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c, n in counts.items():
        (folder / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(folder / c / f"{i}.{ext}")
    return folder


def test_a_limit_takes_every_class_of_a_class_sorted_folder_and_the_log_counts_them(tmp_path):
    for split, n in (("train", 40), ("test", 20)):
        _images(tmp_path / "five" / split, {c: n for c in "abcde"})
    proc = recipe("--data", "five", "--set", "data.limit=100", "--set", "teacher.check_fit=false", "--out", "run",
                  cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("data: images per class"))
    counts = [tuple(map(int, part.split()[1].split("/"))) for part in line.split(": ", 2)[2].split(", ")]
    assert len(counts) == 5 and all(train + val == 20 and test == 20 for train, val, test in counts), line


def test_a_class_whose_only_image_the_test_holdout_would_take_keeps_it_for_training(tmp_path):
    from kd_keras.data.splits import split_val as _split_val

    folder = _images(tmp_path / "one", {"a": 1, "b": 12, "c": 15})
    files = 28  # class a's one image is file 0 (sorted by class)
    seed = next(s for s in range(100) if 0 in _split_val(files, 0.2, s + 1)[1])  # a seed whose holdout takes it
    before = snapshot(folder)
    proc = recipe("--data", "one", "--set", f"train.seed={seed}", "--set", "teacher.check_fit=false", "--out", "run",
                  cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("data: images per class"))
    assert "a 1/0/0" in line, line
    assert snapshot(folder) == before


def test_a_class_left_with_no_training_image_is_refused_naming_the_cause(tmp_path):
    from types import SimpleNamespace

    from kd_keras.recipes.validate import check_split_sizes

    s = SimpleNamespace(num_train=20, num_val=2, num_test=4, description="folder x", class_names=["a", "b"],
                        class_counts={"train": [20, 0], "val": [1, 1], "test": [2, 2]})
    with pytest.raises(ValueError, match="class 'b' of the data .* has no training image .3 in all"):
        check_split_sizes(s, SimpleNamespace(val_fraction=0.1, limit=0))


FORMS = ["distill.0.losses.0.options={{ temperature = {t} }}", "distill.0.losses.0.options.temperature={t}",
         "distill.0.losses.0.temperature={t}"]


def test_a_losss_temperature_set_in_either_form_is_the_one_the_run_uses_and_is_checked(tmp_path, capsys):
    import json

    from kd_keras.config import load_config
    from kd_keras.recipes.cli import main

    for form in FORMS:  # the recipe's flat `temperature = 4.0` no longer wins over any of them
        cfg = load_config(str(REPO_ROOT / "recipes" / "digits.toml"), [form.format(t=2.5)])
        assert cfg.distill[0].losses[0].options["temperature"] == 2.5, form
        code = main("classification", "digits", ["--smoke", "--set", form.format(t=0), "--out", str(tmp_path / "bad")])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and "temperature" in err, err
    assert not (tmp_path / "bad").exists()
    proc = recipe("--set", FORMS[0].format(t=2.5), "--out", "run", cwd=tmp_path)  # the form docs/config.md showed
    assert proc.returncode == 0, proc.stderr[-2000:]
    config = json.loads((tmp_path / "run" / "results.json").read_text())["config"]
    assert config["distill"][0]["losses"][0]["options"]["temperature"] == 2.5
    kd = {r["name"]: r for r in json.loads((tmp_path / "run" / "results.json").read_text())["models"]}["kd"]
    assert "2.5" in json.dumps(kd["kd"]), kd["kd"]  # the loss the student trained with


def test_webp_and_tiff_images_in_a_class_folder_are_read_and_other_files_counted(tmp_path):
    folder = tmp_path / "mixed"
    for c in ("a", "b", "c"):
        _images(folder, {c: 6}, ext="png")
        _images(folder, {c: 12}, ext="webp", seed=1)
        _images(folder, {c: 6}, ext="tif", seed=2)
    (folder / "a" / "notes.txt").write_text("not an image")
    (folder / "c" / "._0.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble resource fork")
    (folder / "b" / ".ipynb_checkpoints").mkdir()
    _images(folder / "b" / ".ipynb_checkpoints", {"x": 2})
    before = snapshot(folder)
    proc = recipe("--data", "mixed", "--set", "teacher.check_fit=false", "--out", "run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("data: folder mixed:"))
    train, val, test = (int(w) for w in line.split(": ")[2].replace(" train /", "").replace(" val /", "")
                        .split(" test")[0].split())
    assert train + val + test == 72, line  # every PNG, WebP and TIFF image
    assert "left out 4 file(s) that are not images kd_keras reads" in proc.stdout
    assert "a/notes.txt" in proc.stdout
    assert snapshot(folder) == before


def test_run_from_inside_the_data_folder_writes_beside_it_and_an_out_inside_it_is_refused(tmp_path):
    folder = _images(tmp_path / "pets", {"cat": 12, "dog": 12})
    before = snapshot(folder)
    proc = recipe("--data", ".", "--set", "teacher.check_fit=false", cwd=folder)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "would be inside the data folder" in proc.stdout
    assert snapshot(folder) == before  # nothing written into the data
    assert (tmp_path / "runs" / "digits_smoke" / "results.json").exists()
    proc = recipe("--data", ".", "--out", "mine", cwd=folder)
    assert_one_line_error(proc, "--out 'mine' is inside the data folder '.'", "choose an --out outside it")
    assert snapshot(folder) == before


SUBCLASSED = '''
import keras


@keras.saving.register_keras_serializable("mine")
class MyNet(keras.Model):
    def __init__(self, classes=10, **kwargs):
        super().__init__(**kwargs)
        self.classes = classes
        self.conv = keras.layers.Conv2D(8, 3, padding="same", activation="relu")
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.head = keras.layers.Dense(classes)

    def call(self, x):
        return self.head(self.pool(self.conv(x / 255.0)))

    def get_config(self):
        return {**super().get_config(), "classes": self.classes}
'''


def test_a_subclassed_keras_teacher_or_student_with_custom_objects_runs_and_an_unbuilt_one_is_one_line(tmp_path):
    import subprocess
    import sys

    (tmp_path / "mynet.py").write_text(SUBCLASSED)
    subprocess.run([sys.executable, "-c", "import numpy as np; from mynet import MyNet; m = MyNet(10); "
                    "m(np.zeros((1, 8, 8, 1), 'float32')); m.save('mynet.keras'); MyNet(10).save('unbuilt.keras')"],
                   cwd=tmp_path, check=True, capture_output=True)
    before = snapshot(tmp_path)
    for flag in ("--teacher", "--student"):
        proc = recipe(flag, "mynet.keras", "--custom-objects", "mynet.py", "--set", "teacher.check_fit=false",
                      "--out", f"run{flag}", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-2000:]
    proc = recipe("--teacher", "unbuilt.keras", "--custom-objects", "mynet.py", "--out", "bad", cwd=tmp_path)
    assert_one_line_error(proc, "holds a subclassed model (MyNet) saved before it was built")
    assert not (tmp_path / "bad").exists()
    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith(("run", "__pycache__"))} == before


def test_a_savedmodel_without_a_serving_signature_is_one_line_in_the_recipe_and_the_benchmark(tmp_path):
    import subprocess
    import sys

    from test_cli_mistakes import run_module

    subprocess.run([sys.executable, "-c", "import tensorflow as tf; m = tf.Module(); m.v = tf.Variable(1.0); "
                    "tf.saved_model.save(m, 'bare')"], cwd=tmp_path, check=True, capture_output=True)
    before = snapshot(tmp_path)
    proc = recipe("--teacher", "bare", "--out", "run", cwd=tmp_path)
    assert_one_line_error(proc, "SavedModel", "has no serving signature")
    proc = run_module("kd_keras.benchmark", "bare", "--data", "digits", "--out", "bench", cwd=tmp_path)
    assert_one_line_error(proc, "has no serving signature")
    assert snapshot(tmp_path) == before and not (tmp_path / "run").exists() and not (tmp_path / "bench").exists()


@pytest.mark.parametrize("teacher", ["keras", "onnx"])
def test_an_adapter_mean_with_more_values_than_channels_is_one_line(tmp_path, teacher):
    import keras

    from kd_keras.export import converters

    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(inputs)))
    path = tmp_path / f"t.{teacher}"
    model.save(path) if teacher == "keras" else converters.onnx(model, str(path))
    before = snapshot(tmp_path)
    proc = recipe("--teacher", path.name, "--set", "teacher.adapter.mean=[0.1, 0.2, 0.3, 0.4]", "--out", "run",
                  cwd=tmp_path)
    assert_one_line_error(proc, "teacher.adapter.mean", "[0.1, 0.2, 0.3, 0.4]")
    assert snapshot(tmp_path) == before


def test_no_space_while_saving_is_one_line_with_the_resumable_exit_and_the_same_command_resumes(tmp_path):
    """A file-size limit (`ulimit -f`) stands in for a full disk: the same error numbers, no root needed."""
    import os
    import resource
    import subprocess
    import sys

    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))

    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    argv = [sys.executable, "-m", "kd_keras.recipes.classification", "--config", "digits", "--smoke", "--out", "run"]
    proc = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, preexec_fn=limited,
                          timeout=600)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 75 and len(lines) == 1, proc.stderr[-2000:]
    assert lines[0].startswith("error: no space left writing run/") and "run the same command to resume" in lines[0]
    proc = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "run" / "results.json").exists()


def test_a_model_in_a_run_folder_is_exported_and_calibrated_on_its_own_runs_data(earlier_run):
    """The run's model takes 16x16 digits; the export's default data (8x8 digits) would not fit it: the run's own
    recorded data is used, and int8 needs no --calibration."""
    from test_cli_mistakes import run_module

    run = earlier_run / "run"
    before = snapshot(run)
    for fmt, extra, out in (("onnx", (), "kd.onnx"), ("tflite", ("--quantize", "int8"), "kd8.tflite")):
        proc = run_module("kd_keras.export", str(run / "kd.keras"), "--format", fmt, *extra, "--out", out,
                          cwd=earlier_run)
        if fmt == "tflite" and proc.returncode:  # a one-epoch model may miss int8 parity: calibrated all the same
            assert_one_line_error(proc, "parity check failed for tflite int8", "of sklearn load_digits")
            continue
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert (earlier_run / out).stat().st_size > 0 and "parity on" in proc.stdout
        assert "data: sklearn load_digits" in proc.stdout, proc.stdout
    assert snapshot(run) == before


def test_a_model_of_another_data_in_a_run_folder_names_the_runs_data(tmp_path):
    """A run folder of the default recipe (28x28) moved: the recorded config is found, not the digits spec."""
    import json

    from kd_keras.config.dataspec import run_config

    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps({"config": {"name": "fashion", "data": {"source": "fashion_mnist_small"}}}))
    cfg = run_config(str(folder / "kd.keras"))
    assert cfg is not None and cfg.data.source == "fashion_mnist_small" and cfg.name == "fashion"
    assert run_config(str(tmp_path / "elsewhere.keras")) is None


# ------------------------------------------------------------------ the weak cases: one clear line each
def test_h5_teachers_empty_flags_and_wrongly_nested_folders_are_one_clear_line(tmp_path, monkeypatch, capsys):
    import keras

    from kd_keras.recipes.cli import main

    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(inputs)))
    model.save(tmp_path / "t.h5")
    model.save_weights(tmp_path / "t.weights.h5")
    _images(tmp_path / "deep" / "images", {"cat": 4, "dog": 4})
    _images(tmp_path / "lone" / "test", {"cat": 4, "dog": 4})
    before = snapshot(tmp_path)
    cases = [(("--teacher", "t.h5"), "is a legacy HDF5 model", "keras.models.load_model('t.h5').save"),
             (("--teacher", "t.weights.h5"), "is a weights-only file", "model.load_weights('t.weights.h5')"),
             (("--teacher", ""), "--teacher is empty", "leave --teacher out"),
             (("--student", " "), "--student is empty", ""),
             (("--data", ""), "--data is empty", ""),
             (("--data", "deep"), "has one sub-folder, 'images', which holds the class folders (cat, dog)",
              "pass --data deep/images"),
             (("--data", "lone"), "has only a test/ folder", "give it a train/ folder")]
    monkeypatch.chdir(tmp_path)
    for argv, *fragments in cases:  # in process: the CLI's main, as the subprocess tests run it
        code = main("classification", "digits", ["--smoke", *argv, "--out", "run"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error: "), err
        assert all(f in err for f in fragments if f), err
    assert snapshot(tmp_path) == before and not (tmp_path / "runs").exists() and not (tmp_path / "run").exists()


def test_a_val_folder_beside_train_and_test_is_the_validation_split(tmp_path):
    for split, n in (("train", 6), ("val", 3), ("test", 2)):
        _images(tmp_path / "data" / split, {"cat": n, "dog": n})
    proc = recipe("--data", "data", "--set", "teacher.check_fit=false", "--out", "run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "data: folder data: 12 train / 6 val / 4 test" in proc.stdout, proc.stdout
    assert "validation images from data/val (6), not a share of train/" in proc.stdout


def test_a_refused_run_leaves_no_empty_runs_folder_and_a_non_utf8_recipe_is_named(tmp_path):
    proc = recipe("--set", "data.augment.crop_padding=40", "--set", "data.augment.translate=0.0", cwd=tmp_path)
    assert_one_line_error(proc, "crop_padding = 40")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "r.toml").write_bytes("name = \"caf\xe9\"\n".encode("latin-1"))
    from test_cli_mistakes import run_module

    proc = run_module("kd_keras.recipes.classification", "--config", "r.toml", cwd=tmp_path)
    assert_one_line_error(proc, "config file", "r.toml", "is not UTF-8 text")


def test_library_fit_takes_integer_labels_with_a_categorical_loss_and_refuses_unit_range_images():
    import keras
    import numpy as np

    from kd_keras import Distiller
    from kd_keras.models import create_model

    student = create_model("small_cnn", 3, (8, 8, 1), widths=(4,))
    d = Distiller(student=student)
    d.compile("adam", keras.losses.CategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    x = np.random.default_rng(0).uniform(0, 255, (12, 8, 8, 1)).astype("float32")
    y = np.arange(12) % 3
    history = d.fit(x, y, epochs=1, verbose=0, validation_data=(x, y))
    assert np.isfinite(history.history["loss"][0]) and "val_accuracy" in history.history
    teacher = create_model("small_cnn", 3, (8, 8, 1), widths=(4,))
    kd = Distiller(teacher, create_model("small_cnn", 3, (8, 8, 1), widths=(4,)), "kd")
    kd.compile("adam", keras.losses.CategoricalCrossentropy(from_logits=True))
    with pytest.raises(ValueError, match=r"x holds floats in \[0, 1\].*pass x \* 255"):
        kd.fit(x / 255.0, y, epochs=1, augment={"flip": True}, verbose=0)


def test_onehot_labels_in_an_npz_are_read_as_class_ids(tmp_path):
    import numpy as np

    from kd_keras.data.sources import _as_labels

    y = np.eye(3, dtype="uint8")[[0, 2, 1, 2]]
    assert _as_labels(y, 4, "y_train").tolist() == [0, 2, 1, 2]
    with pytest.raises(ValueError, match="not one-hot; give integer class ids"):
        _as_labels(np.full((4, 3), 0.5), 4, "y_train")


def test_a_student_larger_than_its_teacher_is_noted_in_the_report():
    from kd_keras.benchmark.report import model_notes

    rows = [{"name": "teacher", "role": "teacher", "arch": "t", "params": 1_000, "accuracy": 0.9},
            {"name": "baseline", "role": "baseline", "arch": "big", "params": 3_700_000, "accuracy": 0.8,
             "gap_recovered": None},
            {"name": "kd", "role": "kd", "arch": "big", "params": 3_700_000, "accuracy": 0.85, "gap_recovered": 0.5}]
    notes = model_notes(rows, "accuracy", lambda d: f"{100 * d:+.2f} pt")
    assert any("the student big (3,700,000 parameters) is 3700.0x larger than its teacher" in n for n in notes), notes


def test_an_onnx_teachers_export_step_converts_only_the_students(tmp_path):
    import keras

    from kd_keras.export import converters

    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(inputs)))
    converters.onnx(model, str(tmp_path / "t.onnx"))
    proc = recipe("--teacher", "t.onnx", "--set", "teacher.check_fit=false", "--export", "int8", "--out", "run",
                  cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "export failed" not in proc.stdout and "loc(" not in proc.stdout + proc.stderr
    assert "the teacher is already a onnx file (t.onnx)" in proc.stdout
    assert (tmp_path / "run" / "kd.int8.tflite").exists() and not (tmp_path / "run" / "teacher.fp32.tflite").exists()


def test_an_unprepared_tfds_dataset_offline_is_refused_at_once(tmp_path, monkeypatch):
    import time

    from kd_keras.data import tfds_source as sources

    if sources.missing_tfds():
        pytest.skip("tensorflow-datasets is not installed")
    monkeypatch.setattr(sources, "_online", lambda timeout=3.0: False)  # offline, whatever this machine is
    start = time.time()
    with pytest.raises(ValueError, match="tfds dataset 'cifar10' is not prepared in .* cannot reach the internet"):
        sources._tfds("cifar10", str(tmp_path), None, 0.1, 0)
    assert time.time() - start < 60 and list(tmp_path.rglob("*.tfrecord*")) == []


def test_a_huge_image_is_one_line_without_pillows_warning(tmp_path):
    from PIL import Image

    _images(tmp_path / "d", {"a": 4, "b": 4})
    Image.new("L", (10000, 10000)).save(tmp_path / "d" / "a" / "big.png")
    proc = recipe("--data", "d", "--out", "run", cwd=tmp_path)
    assert_one_line_error(proc, "big.png (too large, 10000x10000 = 100 MP over data.max_image_pixels)")
    assert "DecompressionBomb" not in proc.stderr + proc.stdout


CUSTOM_LAYER = '''
import keras


@keras.saving.register_keras_serializable("mine")
class Doubled(keras.layers.Layer):
    def call(self, x):
        return x * 2.0
'''


def test_export_and_benchmark_take_custom_objects_and_name_the_missing_class_without_them(tmp_path):
    import subprocess
    import sys

    from test_cli_mistakes import run_module

    (tmp_path / "layers.py").write_text(CUSTOM_LAYER)
    subprocess.run([sys.executable, "-c", "import keras; from layers import Doubled; i = keras.Input((8, 8, 1)); "
                    "x = keras.layers.Flatten()(Doubled()(i)); keras.Model(i, keras.layers.Dense(10)(x))"
                    ".save('m.keras')"], cwd=tmp_path, check=True, capture_output=True)
    proc = run_module("kd_keras.export", "m.keras", "--format", "onnx", "--out", "m.onnx", cwd=tmp_path)
    assert_one_line_error(proc, "needs the custom object 'Doubled' (saved from module 'layers')", "--custom-objects")
    proc = run_module("kd_keras.export", "m.keras", "--format", "onnx", "--out", "m.onnx", "--custom-objects",
                      "layers.py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = run_module("kd_keras.benchmark", "m.keras", "--data", "digits", "--out", "bench", "--runs", "50",
                      "--custom-objects", "layers.py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "bench" / "results.json").exists()


def test_a_keras_teacher_ending_in_a_sigmoid_teaches_through_its_logits_in_a_recipe(tmp_path):
    import json

    import keras
    from conftest import train_digits_classifier

    train_digits_classifier(tmp_path / "core.keras", epochs=6)
    core = keras.saving.load_model(tmp_path / "core.keras")
    inputs = keras.Input((8, 8, 1))
    keras.Model(inputs, keras.layers.Activation("sigmoid")(core(inputs))).save(tmp_path / "sig.keras")
    proc = recipe("--teacher", "sig.keras", "--out", "run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "outputs sigmoid scores (it ends in a sigmoid, inferred): their logits, log(p / (1 - p))" in proc.stdout
    teacher = {r["name"]: r for r in json.loads((tmp_path / "run" / "results.json").read_text())["models"]}["teacher"]
    assert teacher["adapter"]["inferred"]["output"] == "sigmoid" and teacher["accuracy"] > 0.8
