"""Installed like a library: the wheel carries the recipes and runs them from any folder; the core needs no
pyEdgeEval; shipped recipes by name, --list, and the mistakes around names."""

import glob
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from kd_keras.config import REPO_ROOT, catalog

TASKS = ("classification", "edge_detection", "super_resolution")


def run(cmd, cwd, env=None, timeout=600):
    """`cmd` with this process's environment, less TF_CPP_MIN_LOG_LEVEL, plus `env` (a None value removes)."""
    env = {**{k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}, **(env or {})}
    env = {k: v for k, v in env.items() if v is not None}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def build_and_install(root):
    """The wheel `pip wheel` builds from a copy of the repository, installed into a new virtual environment.

    The copy keeps the build out of the clone (and two test workers out of each other's way). The environment
    gets kd_keras from the wheel and nothing else: its other packages (TensorFlow and the rest, not downloaded
    again) are the running interpreter's, seen through `seeing_this_interpreter`. That works whether the tests
    run in a venv, a conda environment or a bare interpreter; `--system-site-packages` would give the *base*
    interpreter's packages, which in a venv have no Keras.
    """
    import shutil

    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy(REPO_ROOT / name, source)
    shutil.copytree(REPO_ROOT / "kd_keras", source / "kd_keras", ignore=shutil.ignore_patterns("__pycache__"))
    (source / "recipes").mkdir()
    for recipe in (REPO_ROOT / "recipes").glob("*.toml"):
        shutil.copy(recipe, source / "recipes")
    built = run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-w",
                 str(root / "dist")], cwd=root)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = glob.glob(str(root / "dist" / "kd_keras-*.whl"))[0]
    venv = root / "venv"
    made = run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=root)
    assert made.returncode == 0, made.stderr
    python = str(venv / "bin" / "python")
    # This interpreter's pip installs into the new environment (`--python`), before it sees any other package:
    # nothing to satisfy, nothing of the running environment touched.
    installed = run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
                     "--ignore-installed", wheel], cwd=root)
    assert installed.returncode == 0, installed.stderr[-2000:]
    own_site = run([python, "-c", "import site; print(site.getsitepackages()[0])"], cwd=root).stdout.strip()
    seeing_this_interpreter(Path(own_site))
    outside = root / "elsewhere"
    outside.mkdir()
    return python, wheel, outside


def seeing_this_interpreter(own_site):
    """A `.pth` file in the new environment's site-packages that adds the running interpreter's site directories
    (and its user site, where it has one) after its own, as `--system-site-packages` would for a base
    interpreter. `site.addsitedir` also runs their `.pth` files; an editable kd_keras among them comes after the
    wheel's copy, which the test checks."""
    import site

    dirs = [d for d in site.getsitepackages() if os.path.isdir(d)]
    if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages()):
        dirs.append(site.getusersitepackages())
    assert dirs, "the running interpreter reports no site-packages directory"
    lines = [f"import site; site.addsitedir({d!r})" for d in dirs]
    (own_site / "zz_running_interpreter.pth").write_text("\n".join(lines) + "\n")


def test_the_installed_wheel_runs_the_recipes_from_another_folder(tmp_path):
    """Every shipped recipe and the default's assets in the wheel; the three defaults and a recipe by name run
    outside."""
    python, wheel, outside = build_and_install(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    packed = sorted(Path(n).name for n in names if n.startswith("kd_keras/recipe_files/"))
    assert packed == sorted(p.name for p in (REPO_ROOT / "recipes").glob("*.toml"))
    # The default's data and teacher are in (with their licence and card), every other teacher stays out
    assets = {"fashion_mnist_small.npz", "fashion_mnist_small_resnet20.keras", "fashion_mnist_small_resnet20.md",
              "FASHION_MNIST_LICENSE.txt"}
    assert assets <= {Path(n).name for n in names if n.startswith("kd_keras/assets/")}
    assert [n for n in names if n.endswith(".keras")] == ["kd_keras/assets/fashion_mnist_small_resnet20.keras"]
    assert os.path.getsize(wheel) < 10e6
    alone = {"PYTHONPATH": None}  # a PYTHONPATH naming the clone would put its kd_keras first
    where = run([python, "-c", "import kd_keras, keras; print(kd_keras.__file__, kd_keras.__version__)"],
                cwd=outside, env=alone)
    assert where.returncode == 0, where.stderr[-2000:]  # Keras and the rest come from the running interpreter
    assert where.stdout.startswith(str(tmp_path / "venv")), where.stdout  # the wheel's copy, not the clone
    for task in TASKS:
        proc = run([python, "-m", f"kd_keras.recipes.{task}", "--smoke", "--out", f"run_{task}"], cwd=outside,
                   env=alone)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert json.loads((outside / f"run_{task}" / "results.json").read_text())["environment"]["kd_keras"]
    listed = run([python, "-m", "kd_keras.recipes.super_resolution", "--list"], cwd=outside, env=alone)
    assert listed.returncode == 0 and "sr_skimage" in listed.stdout and "sr_t91" in listed.stdout
    assert "digits" not in listed.stdout.split("other tasks")[0]  # only this task's recipes are listed
    proc = run([python, "-m", "kd_keras.recipes.classification", "--config", "cifar10_small", "--smoke", "--data",
                str(tiny_cifar(outside / "tiny.npz")), "--out", "by_name"], cwd=outside, env=alone)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((outside / "by_name" / "results.json").read_text())["recipe"] == "cifar10_small"
    # its teacher, saved_models/cifar10_small_resnet56.keras, is not in the wheel: trained, as the recipe allows
    assert "teacher weights saved_models/cifar10_small_resnet56.keras not found: training the teacher" in proc.stdout


def tiny_cifar(path):
    """CIFAR-shaped npz: 32x32 RGB, 10 classes, a few images each."""
    import numpy as np

    rng = np.random.default_rng(0)
    y = np.arange(100) % 10
    x = rng.integers(0, 255, (100, 32, 32, 3), dtype=np.uint8)
    np.savez(path, x_train=x, y_train=y, x_test=x[:40], y_test=y[:40])
    return path


SITE_HIDING_EXTRAS = '''
import sys


class HideExtras:
    """Makes pyEdgeEval (the `edges` extra) and tensorflow_datasets (the `tfds` extra) look uninstalled."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("pyEdgeEval", "tensorflow_datasets"):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None


sys.meta_path.insert(0, HideExtras())
'''


def test_the_core_runs_without_the_extras_and_each_recipe_that_needs_one_names_it(tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(SITE_HIDING_EXTRAS)
    env = {"PYTHONPATH": str(tmp_path / "site")}
    hidden = run([sys.executable, "-c", "import kd_keras.recipes.runner, kd_keras.tasks\nimport pyEdgeEval"],
                 cwd=tmp_path, env=env)
    assert "No module named 'pyEdgeEval'" in hidden.stderr  # the simulation works, and kd_keras imports without it
    proc = run([sys.executable, "-m", "kd_keras.recipes.classification", "--smoke", "--pairs", "1", "--out", "cls"],
               cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = run([sys.executable, "-m", "kd_keras.recipes.edge_detection", "--smoke", "--out", "edges"], cwd=tmp_path,
               env=env)
    assert proc.returncode == 2 and proc.stderr.splitlines() == [
        "error: edge detection is scored with the BSDS benchmark of pyEdgeEval, which is not installed; install the "
        "extra: pip install \"kd_keras[edges]\" (pyEdgeEval builds from source: it needs a C++ compiler)."]
    assert not (tmp_path / "edges").exists()
    proc = run([sys.executable, "-m", "kd_keras.recipes.classification", "--config", "mnist_kd", "--smoke", "--out",
                "mnist"], cwd=tmp_path, env=env)
    assert proc.returncode == 2 and proc.stderr.splitlines() == [
        "error: data.source = \"tfds\" reads TensorFlow Datasets, which is not installed; install the extra: "
        "pip install \"kd_keras[tfds]\"."]


def test_config_by_name_by_path_and_the_mistakes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    names = catalog.shipped()
    assert {"digits", "cifar10_small", "edges_synthetic", "sr_skimage"} <= set(names)
    assert catalog.resolve("cifar10_small") == str(names["cifar10_small"])
    assert catalog.resolve("recipes/cifar10_small.toml") == str(names["cifar10_small"])  # a clone's path, anywhere
    with pytest.raises(ValueError, match="unknown recipe 'cifar10_smal'.*shipped recipes: .*cifar10_small"):
        catalog.resolve("cifar10_smal")
    with pytest.raises(FileNotFoundError, match="config file 'mine/x.toml' does not exist"):
        catalog.resolve("mine/x.toml")
    (tmp_path / "cifar10_small.toml").write_text('name = "mine"\n')
    said = []
    assert catalog.resolve("cifar10_small.toml", log=said.append) == "cifar10_small.toml"
    assert said and "using the file cifar10_small.toml here, not the shipped recipe 'cifar10_small'" in said[0]
    listing = catalog.listing("classification")
    assert "cifar10_small" in listing and "edges_synthetic" not in listing.split("other tasks")[0]
