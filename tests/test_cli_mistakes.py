"""User mistakes on the command lines, run in subprocesses as a user would: exit 2, one line, nothing touched."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kd_keras import quiet


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


@pytest.mark.parametrize("module, source", [("kd_keras.recipes.classification", "digits"),
                                            ("kd_keras.recipes.edge_detection", "shapes"),
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
