"""Unlabelled images as a transfer set for classification (`data.unlabeled`, `--unlabeled`)."""

import hashlib
import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import tiny_classifier
from kd_keras import Distiller, create_loss
from kd_keras.config import REPO_ROOT
from kd_keras.data import load
from kd_keras.data.subsets import labelled_subset, left_out
from kd_keras.data.unlabeled import load_unlabeled, with_unlabeled
from kd_keras.losses import LabelledAccuracy, LabelledCrossentropy
from kd_keras.recipes.cli import main
from kd_keras.config import DataConfig


def digest(image) -> str:
    return hashlib.sha1(np.asarray(image, np.float32).tobytes()).hexdigest()


def digests(ds) -> list:
    return [digest(x) for x, _ in ds.as_numpy_iterator()]


# ------------------------------------------------------------------ the loss
def test_unlabelled_rows_add_no_hard_label_loss():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 4)).astype("float32")
    labels = np.eye(4, dtype="float32")[[0, 1, 2, 3, 0, 1]]
    mixed = labels.copy()
    mixed[[1, 4]] = 0.0  # two unlabelled rows
    ce = keras.losses.CategoricalCrossentropy(from_logits=True)
    loss = LabelledCrossentropy()
    keep = [0, 2, 3, 5]
    np.testing.assert_allclose(float(loss(mixed, logits)), float(ce(labels[keep], logits[keep])), rtol=1e-5)
    np.testing.assert_allclose(float(loss(labels, logits)), float(ce(labels, logits)), rtol=1e-5)  # all labelled
    assert float(loss(np.zeros_like(labels), logits)) == 0.0
    acc = LabelledAccuracy()
    acc.update_state(mixed, np.eye(4, dtype="float32")[[0, 3, 2, 0, 1, 1]])  # right on 0, 2 and 5, wrong on 3
    assert float(acc.result()) == pytest.approx(3 / 4)


def test_a_batch_of_unlabelled_images_gives_the_gradient_of_student_loss_weight_zero(toy_data):
    x, y = toy_data
    x, unlabelled = x[:16], np.zeros((16, 3), "float32")
    teacher = tiny_classifier(name="teacher")
    student = tiny_classifier(name="student")

    def grads(alpha, labels):
        d = Distiller(teacher, student, create_loss("kd", temperature=4.0), student_loss_weight=alpha)
        d.compile(keras.optimizers.SGD(0.1), LabelledCrossentropy())
        with tf.GradientTape() as tape:
            loss = d.compute_loss(tf.constant(x), tf.constant(labels))
        grads = tape.gradient(loss, student.trainable_weights)
        return [g.numpy() for g in grads], float(d.student_loss_tracker.result())

    with_ce, hard = grads(0.1, unlabelled)
    alone, _ = grads(0.0, unlabelled)
    assert hard == 0.0
    for a, b in zip(with_ce, alone):  # (1 - 0.1) x the distillation gradient: no hard-label term at all
        np.testing.assert_allclose(a, 0.9 * b, rtol=1e-3, atol=1e-5)
    labelled, _ = grads(0.1, y[:16])  # a labelled batch does move the hard-label term: the test can fail
    assert any(not np.allclose(a, 0.9 * b, rtol=1e-3, atol=1e-5) for a, b in zip(labelled, alone))


# ------------------------------------------------------------------ the data
@pytest.fixture
def unique_npz(tmp_path):
    """An npz whose every image is distinct (its index in its pixels), 5 classes."""
    def images(n, offset):
        x = np.zeros((n, 8, 8, 1), "uint8")
        for i in range(n):
            k = i + offset
            x[i, 0, 0, 0], x[i, 0, 1, 0], x[i, 1, 0, 0] = k % 251, (k // 251) % 251, 7
        return x

    rng = np.random.default_rng(0)
    path = tmp_path / "unique.npz"
    np.savez(path, x_train=images(300, 0), y_train=rng.integers(0, 5, 300).astype("int32"),
             x_test=images(60, 1000), y_test=rng.integers(0, 5, 60).astype("int32"))
    return path


def test_rest_holds_exactly_the_images_labels_per_class_leaves_out(unique_npz):
    splits = load("npz", path=str(unique_npz), val_fraction=0.1, seed=3)
    labelled = labelled_subset(splits, 8, seed=3)
    rest, n = left_out(splits, 8, seed=3)
    train, kept, unlabelled = digests(splits.train), digests(labelled.train), digests(rest)
    assert n == len(unlabelled) == splits.num_train - 40 and len(kept) == 40
    assert not set(kept) & set(unlabelled)  # no image is both
    assert sorted(kept + unlabelled) == sorted(train)  # together: the training split, each image once
    held_out = set(digests(splits.val)) | set(digests(splits.test))
    assert not held_out & set(unlabelled)
    cfg = DataConfig(source="npz", path=str(unique_npz), labels_per_class=8, unlabeled="rest")
    found = load_unlabeled(cfg, splits, rest, n, log=lambda *_: None)
    assert found.count == n and {y for _, y in found.images.as_numpy_iterator()} == {-1}


def test_the_mixed_split_shows_every_image_once_per_pass_and_repeats_labelled_ones_for_a_share(unique_npz):
    splits = load("npz", path=str(unique_npz), val_fraction=0.1, seed=0)
    labelled = labelled_subset(splits, 8, seed=0)
    rest, n = left_out(splits, 8, seed=0)
    found = load_unlabeled(DataConfig(unlabeled="rest", labels_per_class=8), splits, rest, n, log=lambda *_: None)
    mixed = with_unlabeled(labelled, found, 0.0, seed=0)
    seen = [(digest(x), int(y)) for x, y in mixed.train.as_numpy_iterator()]
    assert mixed.num_train == len(seen) == 40 + n and mixed.unlabeled == n
    assert sorted(d for d, _ in seen) == sorted(digests(labelled.train) + digests(rest))
    assert sum(y == -1 for _, y in seen) == n
    labelled_at = [i for i, (_, y) in enumerate(seen) if y >= 0]
    assert labelled_at[0] < len(seen) // 4 and labelled_at[-1] > 3 * len(seen) // 4  # spread, not a block
    shared = with_unlabeled(labelled, found, 0.5, seed=0)
    repeats = round(0.5 * n / (0.5 * 40))
    assert shared.labelled_repeats == repeats and shared.num_train == 40 * repeats + n
    ys = [int(y) for _, y in shared.train.as_numpy_iterator()]
    assert sum(y >= 0 for y in ys) == 40 * repeats and sum(y == -1 for y in ys) == n


def test_a_nested_folder_is_read_in_the_datas_size_and_channels(tmp_path):
    rng = np.random.default_rng(0)
    for i, sub in enumerate(["a", "b/c", "b/c/d"]):
        (tmp_path / "photos" / sub).mkdir(parents=True)
        for j in range(3):
            Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(
                tmp_path / "photos" / sub / f"{i}{j}.png")
    (tmp_path / "photos" / "notes.txt").write_text("not an image")
    splits = load("digits")
    found = load_unlabeled(DataConfig(unlabeled=[str(tmp_path / "photos")]), splits, log=lambda *_: None)
    images = [x for x, _ in found.images.as_numpy_iterator()]
    assert found.count == len(images) == 9
    assert all(x.shape == (8, 8, 1) for x in images)  # the digits' size and channels
    (tmp_path / "photos" / "a" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"unlabelled image folder .*1 of 10 image files cannot be used.*broken.png"):
        load_unlabeled(DataConfig(unlabeled=[str(tmp_path / "photos")]), splits, log=lambda *_: None)
    found = load_unlabeled(DataConfig(unlabeled=[str(tmp_path / "photos")], skip_bad_images=True), splits,
                           log=lambda *_: None)
    assert found.count == 9 and found.skipped == 1


def test_npz_x_unlabeled_is_read(tmp_path):
    np.savez(tmp_path / "more.npz", x_unlabeled=np.full((5, 16, 16, 3), 128, "uint8"))
    found = load_unlabeled(DataConfig(unlabeled=[str(tmp_path / "more.npz")]), load("digits"), log=lambda *_: None)
    assert found.count == 5 and next(found.images.as_numpy_iterator())[0].shape == (8, 8, 1)


# ------------------------------------------------------------------ a run
def run_digits(capsys, *argv):
    code = main("classification", str(REPO_ROOT / "recipes" / "digits.toml"), list(argv))
    return code, capsys.readouterr().err.strip()


ENTRIES = ('distill=[{name="kd", student_loss_weight=0.1, unlabeled=false, losses=[{method="kd"}]}, '
           '{name="kdt", student_loss_weight=0.1, losses=[{method="kd"}]}]')


def test_a_run_with_rest_trains_kd_on_both_in_the_baselines_steps(tmp_path, capsys, monkeypatch):
    from kd_keras.recipes import runner

    seen = {}

    class Recording(runner.Distiller):
        def fit(self, x=None, *args, steps_per_epoch=None, **kwargs):
            rows, zero, images = 0, 0, set()
            batches = steps_per_epoch and math.ceil(runner_splits[0] / 8)  # one pass over a streamed set
            for _, y, *_ in (x.take(batches) if batches else x):
                y = np.asarray(y)
                rows += len(y)
                zero += int((y.sum(-1) == 0).sum())
            out = super().fit(x, *args, steps_per_epoch=steps_per_epoch, **kwargs)
            seen[self.name] = {"rows": rows, "unlabelled": zero, "steps": int(self.optimizer.iterations.numpy())}
            return out

    runner_splits = [0]
    original = runner.Runner._fit

    def fit(self, role, name, student, *args, splits=None, **kwargs):
        runner_splits[0] = (splits or self.splits).num_train
        return original(self, role, name, student, *args, splits=splits, **kwargs)

    monkeypatch.setattr(runner, "Distiller", Recording)
    monkeypatch.setattr(runner.Runner, "_fit", fit)
    out = tmp_path / "run"
    code, err = run_digits(capsys, "--smoke", "--out", str(out), "--unlabeled", "rest", "--set", "train.epochs=2",
                           "--set", "data.labels_per_class=4",
                           "--set", "data.batch_size=8", "--set", ENTRIES)
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    rows = {r["name"]: r for r in results["models"]}
    n_l = results["data"]["num_train"]
    kdt = rows["kdt"]["kd"]
    n_u = kdt["transfer_images"]
    assert n_l == 40 and n_u > 100  # 4 labels per class in --smoke; the rest of the 230 training images
    assert seen["baseline_distiller"] == {"rows": n_l, "unlabelled": 0, "steps": 2 * 5}  # never an unlabelled image
    assert seen["kd_distiller"]["unlabelled"] == 0 and seen["kd_distiller"]["steps"] == 10
    assert seen["kdt_distiller"] == {"rows": n_l + n_u, "unlabelled": n_u, "steps": 10}  # each once per pass
    assert rows["kdt"]["steps"] == rows["baseline"]["steps"] == rows["kd"]["steps"] == 10
    assert kdt["teacher_cache"]["mode"] == "views" and kdt["teacher_cache"]["examples"] == n_l + n_u  # views cover them
    assert rows["kd"]["kd"]["teacher_cache"]["examples"] == n_l and rows["kd"]["kd"]["transfer_images"] == 0
    md = (out / "results.md").read_text()
    assert f"It also trained on {n_u:,} unlabelled transfer images (rest), labelled by the teacher alone, within " \
           f"the baseline's 10 optimizer steps." in md
    assert "- Equal budgets: the baseline and every KD student took 10 optimizer steps (2 epochs over the 40 " \
           "labelled training images, batch 8); the transfer set's images are streamed within them." in md


# ------------------------------------------------------------------ bad input
@pytest.fixture
def folders(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text("no image here")
    return tmp_path


BAD = {
    "missing": (["--unlabeled", "{tmp}/nope"], "unlabelled images '{tmp}/nope' (data.unlabeled) do not exist"),
    "empty": (["--unlabeled", "{tmp}/empty"], "unlabelled image folder '{tmp}/empty' (data.unlabeled) holds no image"),
    "no image": (["--unlabeled", "{tmp}/texts"], "unlabelled image folder '{tmp}/texts' (data.unlabeled) holds no "
                                                 "image"),
    "rest without labels_per_class": (["--unlabeled", "rest"], "data.unlabeled = \"rest\" takes the training images "
                                                               "that data.labels_per_class leaves out"),
    "share": (["--unlabeled", "rest", "--set", "data.labels_per_class=4", "--set", "distill.0.labeled_share=1.0"],
              "distill.0.labeled_share must be in [0, 1)"),
    "not a list": (["--set", "data.unlabeled=3"], "data.unlabeled must be a list of image folders or .npz files"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_unlabelled_input_gets_one_line_before_anything_runs(case, folders, capsys):
    argv, message = BAD[case]
    out = folders / "out"
    code, err = run_digits(capsys, *[a.format(tmp=folders) for a in argv], "--smoke", "--out", str(out))
    assert code == 2, err
    assert err.startswith("error: ") and message.format(tmp=folders) in err and "\n" not in err
    assert not out.exists()


def test_unlabelled_test_images_are_refused_before_the_teacher_runs(tmp_path, capsys):
    splits = load("digits")
    test = np.stack([x for x, _ in splits.test.take(3).as_numpy_iterator()]).astype("uint8")
    np.savez(tmp_path / "leak.npz", x_unlabeled=np.concatenate([np.zeros((2, 8, 8, 1), "uint8"), test]))
    out = tmp_path / "out"
    code, err = run_digits(capsys, "--unlabeled", str(tmp_path / "leak.npz"), "--smoke", "--out", str(out))
    assert code == 2 and "\n" not in err, err
    assert "3 unlabelled image(s) are test images (the same pixels, e.g. unlabelled image #2)" in err
    assert not out.exists()  # no teacher trained, nothing written


def test_unlabeled_on_an_edge_recipe_points_to_transfer(tmp_path, capsys):
    code = main("edge_detection", str(REPO_ROOT / "recipes" / "edges_synthetic.toml"),
                ["--smoke", "--out", str(tmp_path / "out"), "--set", f"data.unlabeled=[\"{tmp_path}\"]"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert "data.unlabeled serves classification; edge detection takes its unlabelled images per KD student: set " \
           "[[distill]] transfer" in err


def test_the_unlabeled_flag_is_data_unlabeled_and_repeats():
    from kd_keras.recipes.cli import flag_overrides, parser

    args = parser("classification", "recipes/digits.toml").parse_args(["--unlabeled", "a b/", "--unlabeled", "rest"])
    assert "data.unlabeled=[\"a b/\", \"rest\"]" in flag_overrides(args, "classification", [], "recipes/digits.toml")
    from kd_keras.config import load_config

    cfg = load_config(str(REPO_ROOT / "recipes" / "digits.toml"), ["data.unlabeled=[\"a b/\", \"rest\"]"])
    assert cfg.data.unlabeled == ["a b/", "rest"]


def test_the_batchnorm_lag_of_a_short_schedule_is_counted_in_epochs():
    from kd_keras.models import create_model
    from kd_keras.training.batchnorm_lag import batchnorm_lag_epochs

    slow = create_model("small_cnn", 10, (28, 28, 1), widths=(16, 32, 64))
    fast = create_model("small_cnn", 10, (28, 28, 1), widths=(16, 32, 64), bn_momentum=0.9)
    assert batchnorm_lag_epochs(slow, 8) == 18  # 0.99^138 < 1/4: 138 steps, 18 epochs of 8
    assert batchnorm_lag_epochs(fast, 8) == 2 and batchnorm_lag_epochs(slow, 70) == 2
    assert batchnorm_lag_epochs(tiny_classifier(bn=False), 8) == 0


def test_distiller_fit_from_arrays_takes_unlabelled_images_as_minus_one(toy_data):
    x, y = toy_data
    labels = y.argmax(-1).astype("int32")
    labels[::2] = -1  # half the images unlabelled
    teacher, student = tiny_classifier(name="teacher"), tiny_classifier(name="student")
    d = Distiller(teacher, student, create_loss("kd", temperature=4.0), student_loss_weight=0.5)
    d.compile(keras.optimizers.SGD(0.05), LabelledCrossentropy(), metrics=[LabelledAccuracy(name="accuracy")])
    history = d.fit(x, labels, epochs=2, batch_size=16, augment={"flip": True}, teacher_cache="views", verbose=0)
    assert d.teacher_cache_info["mode"] == "views" and d.teacher_cache_info["examples"] == 64
    assert np.isfinite(history.history["loss"]).all() and int(d.optimizer.iterations.numpy()) == 8
    zero_rows = y.copy()
    zero_rows[::2] = 0.0  # an all-zero one-hot row is an unlabelled image too, never class 0
    from kd_keras.teachers.fit_data import int_labels

    assert (int_labels(zero_rows, 3, unlabelled=True)[::2] == -1).all()
    assert (int_labels(zero_rows, 3, unlabelled=True)[1::2] == y.argmax(-1)[1::2]).all()
    with pytest.raises(ValueError, match=r"has labels from -2 to 2, but the student has 3 outputs \(-1: an unlabelled"):
        d.fit(x, np.where(labels < 0, -2, labels), epochs=1, batch_size=16, augment={"flip": True},
              teacher_cache="views", verbose=0)


def test_unlabeled_on_a_super_resolution_recipe_says_it_needs_no_labels(tmp_path, capsys):
    code = main("super_resolution", str(REPO_ROOT / "recipes" / "sr_skimage.toml"),
                ["--smoke", "--out", str(tmp_path / "out"), "--set", f"data.unlabeled=[\"{tmp_path}\"]"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert "super-resolution needs no labels (a high-resolution image is its own target)" in err
