"""User mistakes on the command lines, run in subprocesses as a user would: exit 2, one line, nothing touched."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kd_keras.cli import quiet


def snapshot(folder: Path) -> dict:
    """Every file under `folder` with a digest of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run_module(module: str, *args, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # what a user's shell has
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def assert_one_line_error(proc, *fragments):
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "my.npz").write_bytes(b"user data, not to be touched")
    return tmp_path


def test_data_on_the_classification_recipe_infers_its_source_and_names_a_bad_file(workdir):
    before = snapshot(workdir)
    proc = run_module("kd_keras.recipes.classification", "--data", "my.npz", "--smoke", cwd=workdir)
    assert_one_line_error(proc, "cannot read npz file 'my.npz'", "numpy.savez")  # read as an .npz: inferred
    assert snapshot(workdir) == before


@pytest.mark.parametrize("module, source", [("kd_keras.recipes.edge_detection", "shapes"),
                                            ("kd_keras.recipes.super_resolution", "skimage")])
def test_data_given_to_a_recipe_whose_source_reads_no_path_is_refused(workdir, module, source):
    before = snapshot(workdir)
    proc = run_module(module, "--data", "my.npz", "--smoke", cwd=workdir)
    assert_one_line_error(proc, "--data / data.path 'my.npz' would be ignored",
                          f"data.source {source!r} reads no path", "--set data.source=")
    assert snapshot(workdir) == before


def test_quiet_filter_drops_tensorflow_startup_lines_only():
    noise = ["WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
             "I0000 00:00:1796027943.711834    9332 port.cc:153] oneDNN custom operations are on.",
             "W0000 00:00:1796027943.712179    9332 cudart_stub.cc:31] Could not find cuda drivers",
             "E0000 00:00:1796005038.362822    9721 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error",
             "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the "
             "appropriate compiler flags."]
    kept = ["error: teacher weights 'x.keras' do not exist; fix teacher.weights.",
            "E0000 00:00:1796005038.362822    9721 bfc_allocator.cc:12] Allocator ran out of memory",
            "Traceback (most recent call last):", "I0000 is how a user's own line might start"]
    assert all(quiet.is_noise(line) for line in noise)
    assert not any(quiet.is_noise(line) for line in kept)
    assert quiet.wanted(["python", "-m", "kd_keras.recipes.classification", "--smoke"])
    assert quiet.wanted(["python", "-m", "kd_keras.export", "--out", "x"])
    assert not quiet.wanted(["python", "-m", "kd_keras.recipes.classification", "--verbose"])
    assert not quiet.wanted(["python", "-m", "pytest", "tests"])  # a library user's process is left alone
    assert not quiet.wanted(["python", "script.py"])


def test_verbose_shows_tensorflow_lines_again(workdir):
    quiet_run = run_module("kd_keras.recipes.classification", "--data", "my.npz", cwd=workdir)
    verbose = run_module("kd_keras.recipes.classification", "--verbose", "--data", "my.npz", cwd=workdir)
    assert len(quiet_run.stderr.splitlines()) == 1 and verbose.returncode == 2
    # The quiet run shows exactly the verbose run's lines that are not TensorFlow start-up noise.
    assert [l for l in verbose.stderr.splitlines() if not quiet.is_noise(l)] == quiet_run.stderr.splitlines()


def _npz(path, x_train=None, y_train=None, x_test=None, y_test=None, **extra):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (24, 8, 8, 3)).astype("uint8")
    y = np.arange(24) % 3
    np.savez(path, x_train=x if x_train is None else x_train, y_train=y if y_train is None else y_train,
             x_test=x[:6] if x_test is None else x_test, y_test=y[:6] if y_test is None else y_test, **extra)


def _bad_npz_cases():
    import numpy as np

    x = np.random.default_rng(0).integers(0, 256, (24, 8, 8, 3)).astype("uint8")
    stray = np.arange(24) % 3
    stray[5] = 10_000_000
    return {
        "stray label": (dict(y_train=stray), "y_train's largest label is 10000000, but 9,999,997 of the classes"),
        "label = number of names": (dict(y_test=np.array([0, 1, 2, 3, 0, 1]), class_names=np.array(["a", "b", "c"])),
                                    "y_test has label 3, but class_names names 3 classes (labels 0..2)"),
        "test-only label": (dict(y_test=np.array([0, 1, 2, 7, 0, 1])), "y_test has label(s) 7 that no training image"),
        "floats in [0, 1]": (dict(x_train=x / 255.0), "x_train holds floats in [0, 1] (max 1)"),
        "NaN pixels": (dict(x_train=np.where(x > 250, np.nan, x.astype("float32"))), "NaN or infinite pixel values"),
        "16-bit pixels": (dict(x_test=x[:6].astype("uint16") * 257), "x_test has pixel values from 0 to 65535"),
        "string images": (dict(x_train=x.astype(str)), "x_train must hold numeric pixel values, got dtype <U3"),
    }


@pytest.mark.parametrize("case", list(_bad_npz_cases()))
def test_npz_labels_and_pixels_are_checked_before_anything_trains(workdir, case):
    arrays, fragment = _bad_npz_cases()[case]
    _npz(workdir / "bad.npz", **arrays)
    before = snapshot(workdir)
    proc = run_module("kd_keras.recipes.classification", "--set", 'data.source="npz"', "--data", "bad.npz",
                      "--smoke", "--out", "run", cwd=workdir)
    assert_one_line_error(proc, fragment)
    assert snapshot(workdir) == before and not (workdir / "run").exists()


def _damaged_npz(path):
    _npz(path)
    data = bytearray(path.read_bytes())
    data[data.find(b"x_train.npy") + 200] ^= 0xFF  # a flipped byte inside the x_train member
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("case", ["out is a file", "out under a file", "npy for npz", "damaged npz"])
def test_output_and_file_mistakes_are_one_line(workdir, case):
    import numpy as np

    (workdir / "results.txt").write_text("the user's file")
    np.save(workdir / "arrays.npy", np.zeros(3))
    _damaged_npz(workdir / "damaged.npz")
    args, fragment = {
        "out is a file": (["--out", "results.txt"], "--out 'results.txt' is a file, not a folder"),
        "out under a file": (["--out", "results.txt/run"], "cannot be written ("),
        "npy for npz": (["--set", 'data.source="npz"', "--data", "arrays.npy", "--out", "run"],
                        "'arrays.npy' is a single numpy array (.npy), not an .npz archive"),
        "damaged npz": (["--set", 'data.source="npz"', "--data", "damaged.npz", "--out", "run"],
                        "npz file 'damaged.npz' is damaged: its 'x_train' array cannot be read (BadZipFile"),
    }[case]
    before = snapshot(workdir)
    proc = run_module("kd_keras.recipes.classification", "--smoke", *args, cwd=workdir)
    assert_one_line_error(proc, fragment)
    assert snapshot(workdir) == before


def test_ctrl_c_ends_in_one_line_that_says_how_to_resume(tmp_path):
    import signal
    import time

    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONUNBUFFERED"] = "1"  # each epoch line as it is printed, not when a pipe buffer fills
    proc = subprocess.Popen([sys.executable, "-m", "kd_keras.recipes.classification", "--config", "digits",
                             "--set", "train.epochs=50",
                             "--set", "teacher.epochs=50", "--set", "data.limit=256", "--out", "run"], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # a suite started in the background (`cmd &`) ignores SIGINT, and so would the child
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 240
    for line in proc.stdout:  # wait until the teacher is training
        if line.startswith("Epoch 2/") or time.time() > deadline:
            break
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.splitlines() == ["interrupted: finished models and the last finished epoch are kept in run; run the "
                                "same command to resume."]
    assert (tmp_path / "run" / ".progress" / "config.json").exists()  # an interrupted run, kept for resuming
