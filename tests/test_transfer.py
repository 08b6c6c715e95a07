"""Unlabelled transfer images for edge KD students: only the teacher labels them."""

import json

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from test_dense_recipes import EDGES, run_cli

from kd_keras.config import DataConfig
from kd_keras.data.edges import load_synthetic
from kd_keras.losses.dense import BalancedBCELoss
from kd_keras.tasks.edge_detection import EdgeDetectionTask


def photos(folder, sizes, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i, (h, w) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 256, (h, w, 3)).astype(np.uint8)).save(folder / f"p{i}.png")
    return folder


def test_transfer_images_join_training_with_nan_labels_and_small_ones_are_dropped(tmp_path, capsys):
    from kd_keras.data.images import read_folders

    task, data = EdgeDetectionTask(), DataConfig(source="shapes", patch_size=32, batch_size=4)
    splits = load_synthetic(3, 1, 1, size=40)
    folder = photos(tmp_path / "unlabelled", [(40, 50), (20, 60), (33, 32)])
    both = task.with_transfer(splits, read_folders([str(folder)], "transfer"), data)
    assert "skipped 1 of 3 transfer images smaller than the 32x32 patch" in capsys.readouterr().err
    assert both.num_train == 5 and splits.num_train == 3  # the recipe's splits are left as they were
    assert [e[0] for e in both.train[3:]] == ["transfer/unlabelled/p0", "transfer/unlabelled/p2"]
    assert all(np.isnan(e[2]).all() and e[3].shape[0] == 0 for e in both.train[3:])
    labels = np.concatenate([y.numpy() for _, y in task.pipelines(both, data, 0)[0]])
    assert labels.shape == (5, 32, 32, 1)
    unlabelled = np.isnan(labels).all(axis=(1, 2, 3))
    assert unlabelled.sum() == 2 and not np.isnan(labels[~unlabelled]).any()  # exact: 0-255 shares kept
    assert set(np.unique(labels[~unlabelled])) <= {0.0, 1.0}


def test_balanced_bce_ignores_unlabelled_crops_in_value_and_gradient():
    rng = np.random.default_rng(0)
    labels = (rng.random((2, 8, 8, 1)) < 0.2).astype("float32")
    logits = tf.constant(rng.normal(size=(4, 8, 8, 1)).astype("float32"))
    mixed = np.concatenate([labels, np.full((2, 8, 8, 1), np.nan, "float32")])
    loss = BalancedBCELoss(reduction=None)
    with tf.GradientTape() as tape:
        tape.watch(logits)
        per_image = loss(mixed, logits)
        total = tf.reduce_sum(per_image)
    grad = tape.gradient(total, logits).numpy()
    np.testing.assert_allclose(per_image.numpy()[:2], loss(labels, logits[:2]).numpy(), rtol=1e-6)
    assert np.all(per_image.numpy()[2:] == 0) and np.all(grad[2:] == 0) and np.isfinite(grad).all()
    assert np.abs(grad[:2]).sum() > 0


@pytest.mark.slow  # ~45 s, an edge recipe run (edges are parked); the transfer images' labels, zero loss and bad input
#                   are checked above without training a recipe
def test_a_kd_student_trains_on_its_transfer_set_and_the_baseline_does_not(tmp_path, capsys):
    folder = photos(tmp_path / "photos", [(96, 96)] * 4)
    out = tmp_path / "r"
    code, err, printed = run_cli(capsys, EDGES, "--smoke", "--out", str(out), "--set",
                                 f"distill.0.transfer=[\"{folder}\"]", "--set", "train.teacher_cache=memory",
                                 "--set", "data.batch_size=4")
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    n_train = results["data"]["num_train"]
    baseline_log = printed.split("training baseline")[1].split("training kd")[0]
    kd_log = printed.split("training kd")[1]
    assert f"{n_train // 4}/{n_train // 4} - " in baseline_log  # steps per epoch: labelled crops only
    assert f"{n_train // 4}/{n_train // 4} - " in kd_log  # the same steps: the 4 transfer crops are streamed in them
    kd = results["models"][2]["kd"]
    assert kd["transfer_images"] == 4 and kd["transfer"] == [str(folder)]
    assert kd["teacher_cache"]["examples"] == n_train + 4  # the teacher mapped the transfer images too
    steps = n_train // 4  # one smoke epoch each, the same budget
    assert results["models"][1]["steps"] == results["models"][2]["steps"] == steps
    md = (out / "results.md").read_text()
    assert "4 unlabelled transfer images" in md and "; +4 transfer images |" in md  # the note and the KD column
    assert f"labelled by the teacher alone, within the baseline's {steps:,} optimizer steps." in md
    assert "part of the difference" not in md



@pytest.mark.parametrize("kd_steps, flagged", [(600, False), (630, False), (631, True), (569, True), (852, True)])
def test_a_kd_student_is_flagged_when_its_steps_differ_from_the_baselines_by_more_than_5_percent(kd_steps, flagged):
    from kd_keras.benchmark.report import model_notes

    rows = [{"name": "baseline", "role": "baseline", "ods": 0.66, "steps": 600},
            {"name": "kd", "role": "kd", "ods": 0.67, "steps": kd_steps, "gap_recovered": 0.1, "kd": {"epochs": 12}}]
    notes = model_notes(rows, "ods", lambda d: f"{d:+.3f} ODS")
    assert notes[0] == "- kd: +0.010 ODS vs baseline; recovers 10.0% of the teacher-baseline gap."
    flag = [n for n in notes if "optimizer steps" in n]
    assert flag == ([f"  It trained {kd_steps:,} optimizer steps, the baseline 600: part of the difference can be "
                     f"the {'longer' if kd_steps > 600 else 'shorter'} training. For equal budgets set the baseline's "
                     f"train.epochs and this entry's own epochs to match."] if flagged else [])

@pytest.mark.parametrize("value, message", [
    ('["{missing}"]', "distill.0.transfer folder '{missing}' does not exist; check distill.0.transfer."),
    ('"{folder}"', "config key distill.0.transfer must be of type list of strings, got '{folder}'."),
])
def test_a_bad_transfer_setting_is_one_line_before_training(tmp_path, capsys, value, message):
    folder = photos(tmp_path / "photos", [(96, 96)])
    missing = tmp_path / "nope"
    code, err, _ = run_cli(capsys, EDGES, "--smoke", "--out", str(tmp_path / "r"), "--set",
                           f"distill.0.transfer={value.format(missing=missing, folder=folder)}")
    assert code == 2 and "\n" not in err and message.format(missing=missing, folder=folder) in err, err
    assert not (tmp_path / "r").exists()


def test_transfer_on_classification_is_refused_in_one_line(tmp_path, capsys):
    from kd_keras.config import REPO_ROOT
    from kd_keras.recipes.cli import main

    folder = photos(tmp_path / "photos", [(8, 8)])
    code = main("classification", str(REPO_ROOT / "recipes" / "digits.toml"),
                ["--smoke", "--out", str(tmp_path / "r"), "--set", f"distill.0.transfer=[\"{folder}\"]"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == ("error: distill.0.transfer: classification has no unlabelled transfer images "
                                 "(edge detection has); remove it.")


@pytest.mark.parametrize("recipe, setting, message", [
    ("edges_synthetic", "distill.0.teacher_scales=[0.5, 5]",
     "distill.0.teacher_scales must be a list of scales in (0, 4], e.g. [0.5, 1.0, 1.5], got [0.5, 5.0]."),
    ("edges_synthetic", "distill.0.teacher_scales=\"1.5\"",
     "config key distill.0.teacher_scales must be of type list of numbers, got '1.5'."),
    ("edges_synthetic", "train.teacher_cache=\"off\"", "and here train.teacher_cache = \"off\"; remove them."),
    ("digits", "train.seed=0", "and here classification has no whole-image teacher maps; remove them."),
])
def test_a_bad_teacher_scales_setting_is_one_line_before_training(tmp_path, capsys, recipe, setting, message):
    from kd_keras.config import REPO_ROOT
    from kd_keras.recipes.cli import main

    config = REPO_ROOT / "recipes" / f"{recipe}.toml"
    task = "edge_detection" if recipe.startswith("edges") else "classification"
    code = main(task, str(config), ["--smoke", "--out", str(tmp_path / "r"), "--set", "distill.0.teacher_flip=true",
                                    "--set", setting])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and message in err, err
    assert not (tmp_path / "r").exists()
