"""Whole-image teacher maps for dense tasks: computed once, cropped with the image, reused from disk."""

import json
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from kd_keras import Distiller, TeacherMapsCache
from kd_keras.config import REPO_ROOT, load_config
from kd_keras.data.edges import load_synthetic
from kd_keras.losses import BalancedBCELoss, EdgeKDLoss, FitNetsLoss, SideOutputKDLoss
from kd_keras.models import create_model
from kd_keras.tasks.edge_detection import EdgeDetectionTask
from kd_keras.teachers.cache import FINAL, teacher_fingerprint
from kd_keras.teachers.maps import split_maps
from kd_keras.teachers.source import TeacherSource
from kd_keras.teachers.targets import TeacherTargets

EDGES = REPO_ROOT / "recipes" / "edges_synthetic.toml"


def dense_pair(seed=0):
    keras.utils.set_random_seed(seed)
    teacher = create_model("edge_unet", input_shape=(None, None, 3), widths=(8, 16, 32, 64))
    student = create_model("edge_unet", input_shape=(None, None, 3), widths=(4, 8, 8, 16))
    return Distiller(student=student, teacher=teacher, distillation_losses=[EdgeKDLoss()]), teacher


def images(n=3, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (24 + 4 * i, 32 - 4 * i, 3)).astype(np.uint8) for i in range(n)]


def make_cache(d, teacher, **kw):
    return TeacherMapsCache(d.teacher_outputs, teacher_fingerprint(teacher, d.teacher_layers), log=lambda m: None,
                            **kw)


def test_maps_are_the_teachers_whole_image_outputs_in_order():
    d, teacher = dense_pair()
    ims = images()
    maps = make_cache(d, teacher, storage="memory").maps(ims)
    assert [m.shape for m in maps] == [(*im.shape[:2], 1) for im in ims] and maps[0].dtype == np.float16
    for im, m in zip(ims, maps):
        expected = np.asarray(teacher(im[None].astype(np.float32), training=False))[0]
        np.testing.assert_allclose(m.astype(np.float32), expected, rtol=2e-3, atol=2e-3)


def test_disk_maps_are_reused_and_a_changed_image_or_teacher_gets_a_new_key(tmp_path):
    d, teacher = dense_pair()
    ims = images()
    first = make_cache(d, teacher, storage="disk", directory=str(tmp_path))
    maps = first.maps(ims)
    assert first.last["computed"] and first.last["mode"] == "disk" and len(list(tmp_path.glob("*.npz"))) == 1
    again = make_cache(d, teacher, storage="disk", directory=str(tmp_path))  # a new process: from disk
    reused = again.maps(ims)
    assert not again.last["computed"] and again.last["key"] == first.last["key"]
    assert all(np.array_equal(a, b) for a, b in zip(maps, reused))
    changed = [im.copy() for im in ims]
    changed[1][0, 0, 0] ^= 1
    again.maps(changed)
    assert again.last["computed"] and again.last["key"] != first.last["key"]
    d2, teacher2 = dense_pair(seed=1)
    other = make_cache(d2, teacher2, storage="disk", directory=str(tmp_path))
    other.maps(ims)
    assert other.last["computed"] and len(list(tmp_path.glob("*.npz"))) == 3


def test_a_teacher_whose_map_is_not_the_input_size_is_refused():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, None, 3))
    strided = keras.Model(inputs, keras.layers.Conv2D(1, 3, strides=2, padding="same")(inputs))
    student = create_model("edge_unet", input_shape=(None, None, 3), widths=(4, 8, 8, 16))
    d = Distiller(student=student, teacher=strided, distillation_losses=[EdgeKDLoss()])
    with pytest.raises(ValueError, match=r"outputs the size of the input, but the teacher's 'final_output' maps a "
                                         r"\(24, 32\) image to \(12, 16, 1\).*train.teacher_cache = \"off\""):
        make_cache(d, strided).maps(images(1))


def test_edge_crops_carry_their_part_of_the_map_through_flips_and_rotations():
    """Maps equal to each image's red channel: after any crop, flip or rotation the map still equals it."""
    task = EdgeDetectionTask()
    splits = load_synthetic(6, 2, 2, 48, seed=0)
    cfg = load_config(EDGES, ["data.patch_size=24", "data.repeats=3", "data.batch_size=4"]).data
    maps = [e[1][..., :1].astype(np.float16) for e in splits.train]
    train, val, _ = task.pipelines(splits, cfg, 0, TeacherTargets("maps", maps))
    batches = list(train)
    assert sum(len(b[0]) for b in batches) == 18
    turned = 0
    for x, y, t in batches:
        assert set(t) == {FINAL} and t[FINAL].shape == (*x.shape[:3], 1) and y.shape == (*x.shape[:3], 1)
        np.testing.assert_array_equal(t[FINAL].numpy(), x[..., :1].numpy())
        turned += int(np.any(x[..., 0].numpy() != tf.transpose(x[..., 0], (0, 2, 1)).numpy()))
    assert turned and len(next(iter(val))) == 2  # validation batches have no teacher maps


def small_source():
    """A TeacherSource over 4 synthetic edge images and 24-px crops, and its splits."""
    task = EdgeDetectionTask()
    cfg = load_config(EDGES, ["data.limit=4", "data.patch_size=24"])
    splits = task.load(cfg.data, 0)
    return TeacherSource(cfg, task, splits, "/nonexistent", log=lambda m: None), splits


def test_runner_uses_maps_for_the_final_output_and_a_live_teacher_for_features_at_another_resolution():
    source, splits = small_source()
    d, _ = dense_pair()
    ds, how, info = source.train_data(d, None)
    assert info["mode"] == "maps" and info["examples"] == splits.num_train and how.startswith("teacher maps of the")
    x, _, t = next(iter(ds))
    assert t[FINAL].shape == (*x.shape[:3], 1)
    keras.utils.set_random_seed(0)
    teacher = create_model("edge_unet", input_shape=(None, None, 3))
    student = create_model("edge_unet", input_shape=(None, None, 3))
    name = "enc2_out"
    feat = Distiller(student=student, teacher=teacher, distillation_losses=[FitNetsLoss(name, name)])
    live, how, info = source.train_data(feat, "the default batches")
    assert live == "the default batches" and info == {"mode": "live"}
    assert re.search(rf"the teacher's '{name}' maps a \(\d+, \d+\) image to \(\d+, \d+, 16\)$", how), how


def side_pair(seed=0, layer="dec1_out"):
    """An edge_unet teacher whose stride-1 decoder output (8 channels) a side_kd hint reads, with its final map."""
    keras.utils.set_random_seed(seed)
    teacher = create_model("edge_unet", input_shape=(None, None, 3), widths=(8, 16, 32, 64))
    student = create_model("edge_unet", input_shape=(None, None, 3), widths=(4, 8, 8, 16))
    losses = [EdgeKDLoss(), SideOutputKDLoss(layer, "enc2_out")]
    return Distiller(student=student, teacher=teacher, distillation_losses=losses), teacher


def test_maps_store_side_outputs_the_size_of_the_input_beside_the_final_map(tmp_path):
    d, teacher = side_pair()
    ims = images()
    cache = make_cache(d, teacher, storage="disk", directory=str(tmp_path))
    maps = cache.maps(ims)
    assert cache.layout == [(FINAL, 1), ("dec1_out", 8)] and [m.shape[-1] for m in maps] == [9] * 3
    probe = keras.Model(teacher.inputs, [teacher.output, teacher.get_layer("dec1_out").output])
    for im, m in zip(ims, maps):
        final, side = (np.asarray(a)[0] for a in probe(im[None].astype(np.float32), training=False))
        parts = split_maps(m.astype(np.float32), cache.layout)
        np.testing.assert_allclose(parts[FINAL], final, rtol=2e-3, atol=2e-3)
        np.testing.assert_allclose(parts["dec1_out"], side, rtol=2e-3, atol=2e-2)
    again = make_cache(d, teacher, storage="disk", directory=str(tmp_path))  # a new process: the layout from disk
    again.maps(ims)
    assert not again.last["computed"] and again.layout == cache.layout


def test_a_disk_cache_written_before_named_layers_reads_as_the_final_map(tmp_path):
    d, teacher = dense_pair()
    ims = images()
    first = make_cache(d, teacher, storage="disk", directory=str(tmp_path))
    maps = first.maps(ims)
    path = first.last["path"]
    np.savez(path, **{f"m{i}": m for i, m in enumerate(maps)})  # the format without a layout
    old = make_cache(d, teacher, storage="disk", directory=str(tmp_path))
    assert all(np.array_equal(a, b) for a, b in zip(old.maps(ims), maps))
    assert not old.last["computed"] and old.layout == [(FINAL, 1)]


def test_runner_crops_side_outputs_with_the_image_and_the_batches_carry_each_by_name():
    source, _ = small_source()
    d, _ = side_pair()
    ds, how, info = source.train_data(d, None)
    assert info["mode"] == "maps" and how.startswith("teacher maps of the")
    x, _, t = next(iter(ds))
    assert set(t) == {FINAL, "dec1_out"}
    assert t[FINAL].shape == (*x.shape[:3], 1) and t["dec1_out"].shape == (*x.shape[:3], 8)
    d.compile(optimizer="adam", loss=BalancedBCELoss())
    head = d.distillation_losses[1].adapter
    before = head.get_weights()[0].copy()
    history = d.fit(ds.take(2), epochs=1, verbose=0).history  # the step reads the cropped side map by name
    assert np.isfinite(history["distillation_loss"][-1]) and history["distillation_loss"][-1] > 0
    assert not np.array_equal(head.get_weights()[0], before)  # the side head trains with the student


@pytest.mark.slow  # ~50 s; test_dense_recipes.py::test_edge_smoke_run_trains_on_the_teachers_stored_maps checks the
#                   same on the default run (stored in memory); this one forces "disk" and its files
def test_edge_recipe_reports_the_maps_in_results(tmp_path, capsys):
    from kd_keras.recipes.cli import main

    out = tmp_path / "run"
    code = main("edge_detection", str(EDGES),
                ["--smoke", "--set", "train.teacher_cache=\"disk\"", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    kd = next(m for m in json.loads((out / "results.json").read_text())["models"] if m["role"] == "kd")
    assert kd["kd"]["teacher_cache"]["mode"] == "maps" and kd["kd"]["teacher_cache"]["storage"] == "disk"
    assert "cropped, flipped and rotated with them (computed in one pass of" in kd["kd"]["teacher_outputs"]
    assert list((out / "teacher_cache").glob("teacher_maps_*.npz"))


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_multi_scale_maps_average_the_teachers_probabilities_over_scales_and_mirror_images():
    d, teacher = dense_pair()
    ims = images(2)
    maps = make_cache(d, teacher, storage="memory", scales=(0.5, 1.0), flip=True).maps(ims)
    for im, m in zip(ims, maps):
        h, w = im.shape[:2]
        x = im.astype(np.float32)
        total = 0
        for scale in (0.5, 1.0):
            xs = tf.image.resize(x, (round(h * scale), round(w * scale)), antialias=True).numpy() if scale != 1 else x
            for flip in (False, True):
                p = _sigmoid(np.asarray(teacher((xs[:, ::-1] if flip else xs)[None], training=False)))[0]
                p = p[:, ::-1] if flip else p
                total = total + tf.image.resize(p, (h, w)).numpy()
        p = total / 4
        assert m.shape == (h, w, 1)
        np.testing.assert_allclose(m.astype(np.float32), np.log(p / (1 - p)), rtol=3e-3, atol=3e-3)
        single = np.asarray(teacher(x[None], training=False))[0]
        assert np.abs(m.astype(np.float32) - single).max() > 1e-2  # not the one-pass map


def test_multi_scale_maps_get_their_own_key_and_single_scale_keys_stay(tmp_path):
    d, teacher = dense_pair()
    ims = images(2)
    one = make_cache(d, teacher, storage="disk", directory=str(tmp_path))
    one.maps(ims)
    multi = make_cache(d, teacher, storage="disk", directory=str(tmp_path), scales=[1.0, 1.5])
    multi.maps(ims)
    assert multi.last["computed"] and multi.last["key"] != one.last["key"]
    assert (one.last["tta"], multi.last["tta"]) == ("single scale", "scales 1, 1.5")
    again = make_cache(d, teacher, storage="disk", directory=str(tmp_path), scales=(1.0,), flip=False)
    again.maps(ims)
    assert not again.last["computed"] and again.last["key"] == one.last["key"]
    with pytest.raises(ValueError, match=r"scales must be a non-empty list of numbers in \(0, 4\], got \[0.0\]"):
        make_cache(d, teacher, scales=[0.0])


@pytest.mark.slow  # ~45 s; multi-scale maps are checked on a toy teacher above, the recipe path with maps by
#                   test_edge_recipe_reports_the_maps_in_results
def test_edge_recipe_with_multi_scale_teacher_maps(tmp_path, capsys):
    from kd_keras.recipes.cli import main

    out = tmp_path / "run"
    code = main("edge_detection", str(EDGES), ["--smoke", "--set", "distill.0.teacher_scales=[0.75, 1.0]",
                                               "--set", "distill.0.teacher_flip=true", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    kd = next(m for m in json.loads((out / "results.json").read_text())["models"] if m["role"] == "kd")
    assert kd["kd"]["teacher_scales"] == [0.75, 1.0] and kd["kd"]["teacher_flip"] is True
    assert kd["kd"]["teacher_cache"]["tta"] == "scales 0.75, 1 + flip"
    assert "whole training images, each averaged over scales 0.75, 1 + flip, cropped" in kd["kd"]["teacher_outputs"]
    assert "; teacher maps over scales 0.75, 1 + flip |" in (out / "results.md").read_text()  # the KD column
