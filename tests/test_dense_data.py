"""Edge and super-resolution data: loaders on tiny made folders, synthetic shapes, LR pipeline."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kd_keras.data.edges import load_bsds, synthetic_shapes
from kd_keras.data.images import read_image
from kd_keras.data.sr import load_sr_folders
from kd_keras.tasks.base import random_crops
from kd_keras.tasks.super_resolution import downscale, modcrop


def make_bsds(root, sizes=None, annotators=True):
    """A BSDS500-layout folder: images/{split}/*.jpg, gt/{split}/*.png, gt_all_{split}.npz."""
    rng = np.random.default_rng(0)
    sizes = sizes or {"train": [(40, 48), (48, 40)], "val": [(40, 40)], "test": [(41, 47)]}
    for split, shapes in sizes.items():
        (root / "images" / split).mkdir(parents=True)
        (root / "gt" / split).mkdir(parents=True)
        maps = {}
        for i, (h, w) in enumerate(shapes):
            name = f"{split}{i}"
            image = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
            Image.fromarray(image).save(root / "images" / split / f"{name}.jpg")
            ann = np.zeros((3, h, w), np.uint8)
            ann[:, h // 2, :] = 1
            ann[0, :, w // 3] = 1
            maps[name] = ann
            Image.fromarray(np.round(255 * ann.mean(0)).astype(np.uint8)).save(root / "gt" / split / f"{name}.png")
        if annotators:
            np.savez(root / f"gt_all_{split}.npz", **maps)
    return root


def test_bsds_loader_reads_images_consensus_and_every_annotator(tmp_path):
    splits = load_bsds(make_bsds(tmp_path), patch_size=32)
    assert (splits.num_train, splits.num_val, splits.num_test) == (2, 1, 1)
    name, image, label, ann = splits.test["test"][0]
    assert name == "test0" and image.shape == (41, 47, 3) and image.dtype == np.uint8
    assert ann.shape == (3, 41, 47) and ann.dtype == bool
    assert label[20, 0] == pytest.approx(1.0) and label[0, 47 // 3] == pytest.approx(85 / 255)
    assert not splits.synthetic and "BSDS500" in splits.description


def test_bsds_without_annotations_scores_against_the_consensus(tmp_path):
    splits = load_bsds(make_bsds(tmp_path, annotators=False))
    ann = splits.test["test"][0][3]
    assert ann.shape == (1, 41, 47) and ann[0, 20].all() and not ann[0, 0, 47 // 3]


def test_missing_ground_truth_is_named(tmp_path):
    root = make_bsds(tmp_path)
    (root / "gt" / "test" / "test0.png").unlink()
    with pytest.raises(ValueError, match=r"ground-truth map '.*gt/test/test0.png' is missing for image "
                                         r"'.*images/test/test0.jpg'"):
        load_bsds(root)


def test_corrupt_image_is_named(tmp_path):
    root = make_bsds(tmp_path)
    (root / "images" / "train" / "train1.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=r"cannot read image '.*train1.jpg' .*replace or remove the file"):
        load_bsds(root)


def test_images_smaller_than_the_patch_are_skipped_with_a_count(tmp_path, capsys):
    sizes = {"train": [(40, 48), (48, 50), (30, 60)], "test": [(41, 47)]}
    splits = load_bsds(make_bsds(tmp_path, sizes), val_sets=(), val_fraction=0.0, patch_size=44)
    assert splits.num_train == 1 and splits.skipped == 2
    assert "skipped 2 of 3 training images smaller than the 44x44 patch" in capsys.readouterr().err
    with pytest.raises(ValueError, match="every training image is smaller than data.patch_size=64"):
        load_bsds(tmp_path, val_sets=(), val_fraction=0.0, patch_size=64)


def test_synthetic_shapes_have_exact_one_pixel_boundaries():
    a = synthetic_shapes(3, 48, seed=5)
    b = synthetic_shapes(3, 48, seed=5)
    for (name, image, label, ann), (_, image2, _, _) in zip(a, b):
        np.testing.assert_array_equal(image, image2)  # deterministic per seed
        assert image.shape == (48, 48, 3) and set(np.unique(label)) <= {0.0, 1.0}
        assert ann.shape == (1, 48, 48) and (ann[0] == (label > 0)).all() and 0 < label.mean() < 0.3


def test_sr_folders_read_sets_and_make_grey_images_rgb(tmp_path):
    rng = np.random.default_rng(0)
    for folder, n in (("T91", 4), ("Set5", 2)):
        (tmp_path / folder).mkdir()
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (30 + i, 40)).astype(np.uint8)).save(tmp_path / folder / f"{i}.png")
    splits = load_sr_folders(tmp_path, test_sets=["Set5"], val_fraction=0.25)
    assert (splits.num_train, splits.num_val, splits.num_test) == (3, 1, 2)
    assert splits.test["Set5"][1][1].shape == (31, 40, 3)
    with pytest.raises(FileNotFoundError, match="image set 'Set14' folder"):
        load_sr_folders(tmp_path, test_sets=["Set14"])


def test_read_image_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="image '.*nope.png' does not exist"):
        read_image(tmp_path / "nope.png")


@pytest.mark.parametrize("in_dataset", [False, True])
def test_downscale_is_bicubic_with_antialias_eager_and_in_a_dataset(in_dataset):
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (2, 16, 12, 3)).astype(np.float32)
    if in_dataset:
        lr = np.stack(list(tf.data.Dataset.from_tensor_slices(hr).map(lambda x: downscale(x, 4)).as_numpy_iterator()))
    else:
        lr = downscale(hr, 4).numpy()
    expected = np.clip(np.round(tf.image.resize(hr, (4, 3), "bicubic", antialias=True).numpy()), 0, 255)
    np.testing.assert_array_equal(lr, expected)
    flat = np.full((8, 8, 3), 77.0, np.float32)
    np.testing.assert_array_equal(downscale(flat, 2).numpy(), np.full((4, 4, 3), 77.0))


def test_modcrop_and_random_crops():
    assert modcrop(np.zeros((13, 10, 3)), 4).shape == (12, 8, 3)
    arrays = [np.full((20, 30, 1), i, np.uint8) for i in range(3)]
    crops = list(random_crops(arrays, 8, repeats=2, flip=True).as_numpy_iterator())
    assert len(crops) == 6 and all(c.shape == (8, 8, 1) for c in crops)
    assert sorted(int(c[0, 0, 0]) for c in crops) == [0, 0, 1, 1, 2, 2]  # each image twice per pass


def test_random_crops_repeat_for_a_new_dataset_of_the_same_seed_and_change_every_epoch():
    """The baseline and each KD student get their own pipeline: the same seed must give them the same crops."""
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (40 + 3 * i, 50 - 2 * i, 3)).astype(np.uint8) for i in range(5)]

    def epochs(seed, n=2):
        ds = random_crops(arrays, 16, repeats=2, flip=True, seed=seed)
        return [np.stack(list(ds.as_numpy_iterator())) for _ in range(n)]

    first, again, other = epochs(0), epochs(0), epochs(1)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[0], first[1])  # a new epoch draws new crops
    assert not np.array_equal(first[0], other[0])
    with_map = [np.concatenate([a.astype(np.float16), a[..., :1].astype(np.float16)], -1) for a in arrays]
    mapped = np.stack(list(random_crops(with_map, 16, repeats=2, flip=True, seed=0).as_numpy_iterator()))
    np.testing.assert_array_equal(mapped[..., :3].astype(np.uint8), first[0])  # a teacher map changes no crop
