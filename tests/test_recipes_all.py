"""Every recipe file in recipes/ parses and runs end to end in --smoke mode, on tiny stand-in data.

The test is parametrised over the folder, so a new recipe is tested as soon
as it is added. Each data source gets generated data of its own layout
(an npz, Tiny ImageNet and MHIST folders, a BSDS folder, SR image sets) or
`tfds.testing.mock_data`; classification recipes also shrink images to
32 px. Nothing is downloaded.
"""

import contextlib
import json

import numpy as np
import pytest
from conftest import make_mhist, make_tiny_imagenet
from PIL import Image
from test_dense_data import make_bsds

from kd_keras.config import REPO_ROOT, load_config
from kd_keras.recipes.cli import main

RECIPES = sorted((REPO_ROOT / "recipes").glob("*.toml"))
SHRINK = ["data.image_size=32", "data.limit=24", "data.batch_size=8", "teacher.train_if_missing=true",
          "teacher.epochs=1", "train.learning_rate=1e-4", "teacher.learning_rate=1e-4"]
# Recipes whose networks take minutes even in smoke mode on 2 CPU cores: their full smoke run is opt-in
# (pytest -m slow); every recipe's models are still built and wired by the default test below.
HEAVY = {"resnet50", "resnet101", "bit_m_r50x1", "efficientnet_b3"}
# Recipes whose smoke run another default test already makes, on data of their own layout: here they are opt-in
# too (pytest -m slow), so the default suite does not train the same recipe twice.
COVERED = {"digits": "test_recipe.py::test_default_recipe_smoke_writes_results",
           "fashion_mnist_small": "test_default_recipe.py::test_default_smoke_run_summarises_pairs_and_exports_int8_"
                                  "with_parity",
           "edges_synthetic": "test_dense_recipes.py::edge_run (the edge-detection default)",
           "sr_skimage": "test_dense_recipes.py::sr_run (the super-resolution default)",
           "bsds500": "test_dense_recipes.py::test_bsds_recipe_smoke_runs_on_a_made_folder",
           "sr_t91": "test_dense_recipes.py::test_t91_recipe_smoke_on_the_shared_sets"}


def _models(cfg):
    return {cfg.teacher.model, cfg.student.model, *(d.student.get("model") for d in cfg.distill if d.student)}


def _params(recipes):
    for p in recipes:
        opt_in = bool(_models(load_config(p)) & HEAVY) or p.stem in COVERED
        yield pytest.param(p, id=p.stem, marks=[pytest.mark.slow] if opt_in else [])


def make_npz(path, shape=(32, 32, 3), classes=10):
    rng = np.random.default_rng(0)
    np.savez(path, x_train=rng.integers(0, 256, (40, *shape), dtype=np.uint8), y_train=np.arange(40) % classes,
             x_test=rng.integers(0, 256, (20, *shape), dtype=np.uint8), y_test=np.arange(20) % classes)


def make_sr_sets(root, sets):
    rng = np.random.default_rng(0)
    for name in sets:
        (root / name).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (100 + 4 * i, 112, 3), dtype=np.uint8)).save(root / name / f"{i}.png")


def stand_in(cfg, tmp_path):
    """(overrides, context) that give the recipe tiny generated data of its source's layout."""
    source, task = cfg.data.source, cfg.task
    shrink = [*SHRINK, "train.pairs=1"] if task == "classification" else []
    if source == "fashion_mnist_small":  # the embedded set and its shipped 28 px teacher: no resize
        shrink = [o for o in shrink if not o.startswith("data.image_size")]
    if task == "classification" and cfg.data.labels_per_class:  # a label or two per class of the tiny stand-ins
        shrink = [*shrink, "data.labels_per_class=1"] + (["data.limit=200"] if source == "fashion_mnist_small" else [])
    if source == "npz":
        make_npz(tmp_path / "data.npz")
        return [*shrink, f"data.path=\"{tmp_path / 'data.npz'}\""], contextlib.nullcontext()
    if source == "tfds":
        import tensorflow_datasets as tfds

        return shrink, tfds.testing.mock_data(num_examples=24)
    if source == "tiny_imagenet":
        return [*shrink, f"data.path=\"{make_tiny_imagenet(tmp_path / 'tin', per_class=6)}\""], contextlib.nullcontext()
    if source == "mhist":
        return [*shrink, f"data.path=\"{make_mhist(tmp_path / 'mhist', n=16)}\""], contextlib.nullcontext()
    if source == "bsds":
        make_bsds(tmp_path / "bsds")
        return [f"data.path=\"{tmp_path / 'bsds'}\"", "data.patch_size=32"], contextlib.nullcontext()
    if source == "folder" and task == "super_resolution":
        sets = [*(cfg.data.train_sets or ["T91"]), *cfg.data.val_sets, *(cfg.data.test_sets or ["Set5", "Set14"])]
        make_sr_sets(tmp_path / "sr", sets)
        return [f"data.path=\"{tmp_path / 'sr'}\""], contextlib.nullcontext()
    if source == "folder":
        for c in range(2):
            folder = tmp_path / "imgs" / f"c{c}"
            folder.mkdir(parents=True)
            for i in range(8):
                Image.fromarray(np.full((32, 32, 3), 40 * c + i, np.uint8)).save(folder / f"{i}.png")
        return [*shrink, f"data.path=\"{tmp_path / 'imgs'}\""], contextlib.nullcontext()
    return shrink, contextlib.nullcontext()  # digits, shapes, skimage ship with their libraries


def test_the_recipe_folder_holds_every_reproduced_experiment():
    names = {p.stem for p in RECIPES}
    assert {"cifar10_resnet101_mobilenet", "tiny_imagenet_resnet50", "cifar10_resnet18_smallcnn",
            "imagenet_resnet18_smallcnn", "mhist_resnet_mobilenet", "mnist_kd", "fashion_mnist_bit_mobilenetv3",
            "food101_bit_efficientnet"} <= names


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipe_is_valid_and_its_models_fit_together(recipe):
    """Keys, models, losses and feature-layer names of every recipe, with its real networks at 32 px."""
    from kd_keras import Distiller
    from kd_keras.config import ModelConfig
    from kd_keras.recipes.validate import validate
    from kd_keras.tasks import TASKS

    cfg = load_config(recipe)
    task = TASKS[cfg.task]()
    plans = validate(cfg, task)
    if cfg.task == "classification":
        classes = 2 if cfg.data.source == "mhist" else 10
        splits = type("Splits", (), {"num_classes": classes, "input_shape": (32, 32, 3)})()
    else:
        task.scale = cfg.data.scale
        splits = type("Splits", (), {"num_classes": None, "input_shape": (None, None, 3)})()
    teacher = task.create_model(cfg.teacher, splits, weights="")
    for d, losses in plans:
        student = task.create_model(ModelConfig(**d.student) if d.student else cfg.student, splits, weights="")
        Distiller(teacher, student, losses, [l.weight for l in d.losses], d.student_loss_weight)


@pytest.mark.parametrize("recipe", list(_params(RECIPES)))
def test_recipe_runs_in_smoke_mode(recipe, tmp_path, capsys):
    cfg = load_config(recipe)
    assert cfg.command and cfg.expected.strip(), "a recipe states its command and its measured/reference result"
    overrides, context = stand_in(cfg, tmp_path)
    out = tmp_path / "run"
    # Stand-in data is random pixels: a shipped teacher is at chance on it by design, so its fit check is off.
    argv = ["--config", str(recipe), "--smoke", "--out", str(out), "--set", "teacher.check_fit=false"]
    for o in overrides:
        argv += ["--set", o]
    with context:
        code = main(cfg.task, str(recipe), argv)
    err = capsys.readouterr().err
    assert code == 0, err[-2000:]
    results = json.loads((out / "results.json").read_text())
    roles = [r["role"] for r in results["models"]]
    assert roles[:2] == ["teacher", "baseline"] and roles.count("kd") == len(cfg.distill)
    metric = results["metric"]
    for row in results["models"]:
        assert row[metric] is not None and row["latency_ms_b1"] > 0
