"""Bad inputs a new user gives, each run as a user runs it (a subprocess): exit code, one line, no traceback, and the
folder's files (names and bytes) unchanged where nothing should change. Issue 35's cases, one test each."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from test_cli_mistakes import assert_one_line_error, run_module, snapshot

RECIPE = "kd_keras.recipes.classification"
SMOKE = ("--config", "digits", "--smoke")


def recipe(*args, cwd: Path, timeout: int = 600):
    return run_module(RECIPE, *SMOKE, *args, cwd=cwd, timeout=timeout)


def quiet_success(proc):
    """Exit 0 and nothing on stderr: no TensorFlow, LiteRT or ONNX Runtime line, no warning."""
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.strip() == "", proc.stderr[-3000:]


def model_file(path: Path, input_shape=(8, 8, 1), classes=10) -> Path:
    inputs = keras.Input(input_shape)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, padding="same")(inputs))
    keras.Model(inputs, keras.layers.Dense(classes)(x)).save(path)
    return path


# ------------------------------------------------------------------ a run owns only what it wrote
def test_out_with_the_users_own_model_and_log_is_refused(tmp_path):
    out = tmp_path / "mine"
    (out / "logs").mkdir(parents=True)
    (out / "kd.keras").write_bytes(b"the user's own model")
    (out / "logs" / "kd.csv").write_text("epoch,my_metric\n0,1\n")
    before = snapshot(out)
    proc = recipe("--out", "mine", cwd=tmp_path)
    assert_one_line_error(proc, "holds 2 file(s) that kd_keras did not write there (kd.keras, logs/kd.csv;",
                          "choose another --out")
    assert snapshot(out) == before


def test_out_at_the_folder_of_the_teacher_weights_is_refused(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    model_file(folder / "teacher.keras", classes=10)
    before = snapshot(folder)
    for extra in ((), ("--overwrite",)):
        proc = recipe("--set", 'teacher.weights="models/teacher.keras"', "--out", "models", *extra, cwd=tmp_path)
        assert_one_line_error(proc, "teacher.keras", "did not write there")
        assert snapshot(folder) == before


def test_overwrite_of_a_folder_kd_keras_did_not_write_keeps_the_users_results(tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    (out / "results.json").write_text('{"mine": true}')
    before = snapshot(out)
    proc = recipe("--out", "report", "--overwrite", cwd=tmp_path)
    assert_one_line_error(proc, "results.json", "--overwrite replaces only such files")
    assert snapshot(out) == before


def test_overwrite_refuses_an_input_that_is_a_file_of_the_earlier_run(tmp_path):
    from kd_keras.cli.manifest import Manifest

    run = tmp_path / "run"  # an earlier run's folder, as its manifest lists it
    run.mkdir()
    model_file(run / "teacher.keras")
    (run / "results.json").write_text("{}")
    Manifest(str(run)).claim(["teacher.keras", "results.json"])
    before = snapshot(run)
    proc = recipe("--set", 'teacher.weights="run/teacher.keras"', "--out", "run", "--overwrite", cwd=tmp_path)
    assert_one_line_error(proc, "teacher.weights 'run/teacher.keras' lies in --out 'run' (teacher.keras)",
                          "copy it out of the folder or choose another --out")
    assert snapshot(tmp_path / "run") == before


@pytest.mark.slow  # a real run (the default suite's 15-minute budget)
def test_overwrite_by_a_one_student_config_leaves_nothing_of_the_two_student_run(tmp_path):
    two = ("--set", 'distill.1.name="kd2"', "--set", 'distill.1.losses=[{ method = "kd" }]', "--set", "train.pairs=1")
    quiet_success(recipe(*two, "--out", "run", cwd=tmp_path))
    out = tmp_path / "run"
    assert (out / "kd2.keras").exists() and (out / "logs" / "kd2.csv").exists()
    again = recipe("--set", "train.pairs=1", "--out", "run", cwd=tmp_path)  # without --overwrite: refused
    assert_one_line_error(again, "already holds results (results.json, results.md); pass --overwrite")
    proc = recipe("--set", "train.pairs=1", "--out", "run", "--overwrite", cwd=tmp_path)
    quiet_success(proc)
    assert "--overwrite: removed the " in proc.stdout
    names = {m["name"] for m in json.loads((out / "results.json").read_text())["models"]}
    assert names == {"teacher", "baseline", "kd"}
    assert not (out / "kd2.keras").exists()
    assert sorted(p.name for p in (out / "logs").glob("*.csv")) == ["baseline.csv", "kd.csv", "teacher.csv"]
    for log in (out / "logs").glob("*.csv"):  # one run's rows: a header and the smoke run's one epoch
        assert len(log.read_text().splitlines()) == 2, log
    owned = json.loads((out / ".kd_keras_run.json").read_text())["owns"]
    assert "kd2.keras" not in owned and "kd.keras" in owned


# ------------------------------------------------------------------ folder datasets, scanned before training
def _folder(root: Path, per_class=6, size=16, classes=("cat", "dog")) -> Path:
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


@pytest.mark.parametrize("bad", ["text", "truncated"])
def test_a_corrupt_image_in_a_folder_is_refused_before_training(tmp_path, bad):
    data = _folder(tmp_path / "pets")
    if bad == "text":
        (data / "dog" / "notes.jpg").write_text("not an image")
    else:
        Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 90).save(data / "dog" / "cut.jpg", quality=95)
        raw = (data / "dog" / "cut.jpg").read_bytes()
        (data / "dog" / "cut.jpg").write_bytes(raw[: len(raw) // 2])
    before = snapshot(tmp_path)
    proc = run_module(RECIPE, "--data", "pets", "--smoke", "--out", "run", cwd=tmp_path)
    name = "notes.jpg" if bad == "text" else "cut.jpg"
    assert_one_line_error(proc, "image folder 'pets': 1 of ", f"{name} (corrupt", "--skip-bad-images")
    assert snapshot(tmp_path) == before and not (tmp_path / "run").exists()


@pytest.mark.slow  # a real run (the default suite's 15-minute budget)
def test_skip_bad_images_trains_without_them_and_counts_them(tmp_path):
    data = _folder(tmp_path / "pets")
    (data / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    proc = run_module(RECIPE, "--data", "pets", "--smoke", "--skip-bad-images", "--set", "train.pairs=1",
                      "--out", "run", cwd=tmp_path)
    quiet_success(proc)
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["data"]["skipped_train_images"] == 1
    assert "1 bad image files left out: --skip-bad-images" in (tmp_path / "run" / "results.md").read_text()


def test_an_image_over_the_pixel_cap_is_refused_by_name(tmp_path):
    data = _folder(tmp_path / "pets")
    Image.fromarray(np.zeros((80, 60, 3), np.uint8)).save(data / "cat" / "huge.png")
    before = snapshot(tmp_path)
    proc = run_module(RECIPE, "--data", "pets", "--smoke", "--set", "data.max_image_pixels=4000", "--out", "run",
                      cwd=tmp_path)
    assert_one_line_error(proc, "huge.png (too large, 60x80", "over data.max_image_pixels")
    assert snapshot(tmp_path) == before


def test_an_empty_class_folder_is_refused(tmp_path):
    data = _folder(tmp_path / "pets")
    (data / "bird").mkdir()
    before = snapshot(tmp_path)
    proc = run_module(RECIPE, "--data", "pets", "--smoke", "--out", "run", cwd=tmp_path)
    assert_one_line_error(proc, "the class sub-folder 'bird' has no images", "add images or remove the folder")
    assert snapshot(tmp_path) == before


def test_mixed_modes_and_sizes_follow_the_stated_rule(tmp_path):
    """Not a refusal: one grey image among RGB ones and one large image do not decide the set."""
    from kd_keras.data import load

    data = _folder(tmp_path / "pets", per_class=5)
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(data / "cat" / "grey.png")
    Image.fromarray(np.zeros((300, 300, 3), np.uint8)).save(data / "dog" / "0000_large.png")  # listed first
    splits = load("folder", path=str(data), log=lambda *_: None)
    assert splits.input_shape == (16, 16, 3)
    assert any("1 of 12 images are grey and 11 colour: all are read as RGB" in n for n in splits.notes)
    assert any("all are resized to 16x16, the most common longer side" in n for n in splits.notes)


# ------------------------------------------------------------------ the benchmark checks before it times
def test_benchmark_refuses_a_model_of_another_shape_before_timing(tmp_path):
    model_file(tmp_path / "m16.keras", (16, 16, 3), classes=4)
    proc = run_module("kd_keras.benchmark", "m16.keras", "--data", "digits", "--out", "b", cwd=tmp_path)
    assert_one_line_error(proc, "model 'm16.keras' takes 16x16x3 inputs, but sklearn load_digits")
    assert not (tmp_path / "b").exists()


def test_benchmark_refuses_a_model_of_another_class_count(tmp_path):
    model_file(tmp_path / "m4.keras", (8, 8, 1), classes=4)
    proc = run_module("kd_keras.benchmark", "m4.keras", "--data", "digits", "--out", "b", cwd=tmp_path)
    assert_one_line_error(proc, "model 'm4.keras' has 4 classes, but sklearn load_digits", "has 10")


def test_benchmark_refuses_models_of_two_input_shapes(tmp_path):
    model_file(tmp_path / "ok.keras")
    model_file(tmp_path / "m16.keras", (16, 16, 3), classes=10)
    proc = run_module("kd_keras.benchmark", "ok.keras", "m16.keras", "--data", "digits", "--out", "b", cwd=tmp_path)
    assert_one_line_error(proc, "model 'm16.keras' takes 16x16x3 inputs")
    assert "timing" not in proc.stdout and not (tmp_path / "b").exists()


@pytest.mark.slow  # an ONNX export first (the default suite's 15-minute budget)
def test_benchmark_refuses_an_onnx_that_does_not_fit(tmp_path):
    model_file(tmp_path / "ok.keras")
    model_file(tmp_path / "m16.keras", (16, 16, 3), classes=10)
    rng = np.random.default_rng(0)  # parity data of the model's shape
    np.savez(tmp_path / "rgb16.npz", x_train=rng.integers(0, 255, (40, 16, 16, 3), dtype=np.uint8),
             y_train=np.arange(40) % 10, x_test=rng.integers(0, 255, (20, 16, 16, 3), dtype=np.uint8),
             y_test=np.arange(20) % 10)
    exported = run_module("kd_keras.export", "m16.keras", "--format", "onnx", "--calibration", "npz:rgb16.npz",
                          "--out", "m16.onnx", cwd=tmp_path)
    quiet_success(exported)
    for models in (["ok.keras", "m16.onnx"],):
        proc = run_module("kd_keras.benchmark", *models, "--data", "digits", "--out", "b", cwd=tmp_path)
        assert_one_line_error(proc, f"model '{models[1]}' takes 16x16x3 inputs")
        assert "timing" not in proc.stdout and not (tmp_path / "b").exists()


@pytest.mark.parametrize("module, args", [
    ("kd_keras.benchmark", ("text.keras", "--data", "digits", "--out", "b")),
    ("kd_keras.export", ("text.keras", "--format", "tflite", "--out", "t.tflite")),
    (RECIPE, (*SMOKE, "--set", 'teacher.weights="text.keras"', "--out", "run")),
])
def test_a_corrupt_keras_file_is_called_corrupt(tmp_path, module, args):
    (tmp_path / "text.keras").write_text("not a model")
    before = snapshot(tmp_path)
    proc = run_module(module, *args, cwd=tmp_path)
    assert_one_line_error(proc, "'text.keras' is corrupt: not a zip archive")
    assert snapshot(tmp_path) == before


# ------------------------------------------------------------------ config: one line, naming the key
def _npz(path: Path, n_train: int, y_train=None, classes=3):
    rng = np.random.default_rng(0)
    y_train = np.arange(n_train) % classes if y_train is None else np.asarray(y_train)
    np.savez(path, x_train=rng.integers(0, 255, (n_train, 8, 8, 1), dtype=np.uint8), y_train=y_train,
             x_test=rng.integers(0, 255, (6, 8, 8, 1), dtype=np.uint8), y_test=np.arange(6) % classes)


@pytest.mark.parametrize("setting, fragments", [
    ("data.limit=-5", ("data.limit must be an integer >= 0 (0: every image), got -5",)),
    ("data.image_size=-16", ("data.image_size must be an integer >= 0", "got -16")),
    ("data.val_fraction=0", ("data.val_fraction must be in (0, 1)", "got 0", "--set data.val_fraction=0.1")),
    ("train.warmup_epochs=1", ("train.warmup_epochs = 1 is not shorter than the 1 training epochs",)),
    ("train.optimizer.lr=3", ("--set train.optimizer.lr: train.optimizer is a value ('adam'), not a table",)),
])
def test_a_bad_setting_gets_one_line_naming_the_key(tmp_path, setting, fragments):
    proc = recipe("--set", setting, "--out", "run", cwd=tmp_path)
    assert_one_line_error(proc, *fragments)
    assert list(tmp_path.iterdir()) == []


def test_an_empty_config_is_refused(tmp_path):
    (tmp_path / "empty.toml").write_text("# nothing set yet\n")
    proc = run_module(RECIPE, "--config", "empty.toml", "--out", "run", cwd=tmp_path)
    assert_one_line_error(proc, "config file 'empty.toml' sets no key (it is empty or all comments)", "--list")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.toml"]


@pytest.mark.parametrize("case, fragments", [
    ("two images", ("leaves the validation split empty (2 training / 0 validation / 6 test images",
                    "give more images")),
    ("one class", ("the data has 1 class (every label is 0); a classifier needs at least two",)),
    ("negative label", ("y_train has label -1 (at index 3); class ids must be integers >= 0",)),
])
def test_a_bad_npz_gets_one_line_before_training(tmp_path, case, fragments):
    if case == "two images":
        _npz(tmp_path / "d.npz", 2, y_train=[0, 1], classes=2)
    elif case == "one class":
        _npz(tmp_path / "d.npz", 20, y_train=np.zeros(20, int), classes=1)
    else:
        _npz(tmp_path / "d.npz", 20, y_train=[0, 1, 2, -1] * 5)
    before = snapshot(tmp_path)
    proc = run_module(RECIPE, "--data", "d.npz", "--smoke", "--out", "run", cwd=tmp_path)
    assert_one_line_error(proc, *fragments)
    assert snapshot(tmp_path) == before and not (tmp_path / "run").exists()


# ------------------------------------------------------------------ quiet everywhere
def test_data_prepare_prints_only_its_error(tmp_path):
    proc = run_module("kd_keras.data.prepare", "mhist", "nowhere", cwd=tmp_path)
    assert_one_line_error(proc, "MHIST folder 'nowhere' does not exist")


def test_export_prints_no_runtime_lines(tmp_path):
    model_file(tmp_path / "m.keras")
    quiet_success(run_module("kd_keras.export", "m.keras", "--format", "tflite", "--out", "m.tflite", cwd=tmp_path))


@pytest.mark.slow  # a real run (the default suite's 15-minute budget)
def test_a_tflite_teacher_prints_no_runtime_lines(tmp_path):
    model_file(tmp_path / "m.keras")
    quiet_success(run_module("kd_keras.export", "m.keras", "--format", "tflite", "--out", "m.tflite", cwd=tmp_path))
    proc = recipe("--teacher", "m.tflite", "--set", "train.pairs=1", "--set", "teacher.check_fit=false",
                  "--out", "run", cwd=tmp_path)
    quiet_success(proc)
    assert "Created TensorFlow Lite XNNPACK delegate" not in proc.stdout + proc.stderr


def test_export_with_an_opset_onnx_runtime_does_not_support_is_refused(tmp_path):
    model_file(tmp_path / "m.keras")
    proc = run_module("kd_keras.export", "m.keras", "--format", "onnx", "--opset", "5", "--out", "m.onnx",
                      cwd=tmp_path)
    assert_one_line_error(proc, "--opset must be between 7", "got 5")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras"]


@pytest.mark.parametrize("delay", [1.0, pytest.param(3.0, marks=pytest.mark.slow)])
def test_ctrl_c_while_a_command_starts_ends_in_one_line(tmp_path, delay):
    proc = subprocess.Popen([sys.executable, "-m", RECIPE, *SMOKE, "--out", "run"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # a suite started in the background (`cmd &`) ignores SIGINT, and so would the child
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(delay)  # inside the imports (TensorFlow's take seconds)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted: ") and "Traceback" not in err


# ------------------------------------------------------------------ the pieces, in process
def test_scan_reports_progress_and_reasons(tmp_path):
    from kd_keras.data.scan import scan

    data = _folder(tmp_path / "pets", per_class=3)
    (data / "cat" / "x.jpg").write_text("text")
    Image.fromarray(np.zeros((50, 50, 3), np.uint8)).save(data / "dog" / "big.png")
    lines = []
    found = scan(sorted(str(p) for p in data.rglob("*.*")), max_pixels=2000, log=lines.append, every=0, large=0)
    assert sorted(Path(p).name for p, _ in found.bad) == ["big.png", "x.jpg"]
    assert dict((Path(p).name, why.split(",")[0].split(":")[0]) for p, why in found.bad) == {
        "big.png": "too large", "x.jpg": "corrupt"}
    assert len(found.good) == 6 and found.channels == 3 and found.side == 16
    assert len(lines) == 8 and lines[-1].startswith("   checking images: 8 of 8 read")


def test_manifest_removes_exactly_its_own_files(tmp_path):
    from kd_keras.cli.manifest import Manifest

    out = tmp_path / "run"
    (out / "logs" / "kd").mkdir(parents=True)
    (out / "logs" / "kd" / "events").write_text("tb")
    (out / "kd.keras").write_text("model")
    (out / "kd.partial.keras").write_text("a killed save")
    m = Manifest(str(out))
    m.claim(["kd.keras", "logs/kd/", "logs/kd.csv"])
    assert m.foreign() == []
    (out / "mine.txt").write_text("the user's")
    m = Manifest(str(out))
    assert m.foreign() == ["mine.txt"]
    assert sorted(m.remove_owned()) == ["kd.keras", "kd.partial.keras", "logs/kd/events"]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [".kd_keras_run.json", "mine.txt"]
    (out / ".kd_keras_run.json").write_text("{damaged")
    assert Manifest(str(out)).foreign() == ["mine.txt"] and not Manifest(str(out)).readable


def test_the_models_listing_the_student_help_points_to_runs_quietly(tmp_path):
    proc = run_module("kd_keras.models", "--task", "classification", cwd=tmp_path)
    quiet_success(proc)
    rows = [line.split() for line in proc.stdout.splitlines()]
    assert ["small_cnn", "classification", "student"] in [r[:3] for r in rows]
    assert all(r[1] == "classification" for r in rows)
