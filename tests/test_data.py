"""Every data source yields the right shapes and dtypes; pipeline ops work."""

import numpy as np
import pytest
import tensorflow as tf

from kd_keras.data import AugmentConfig, classification_pipeline, load
from kd_keras.data.augment import build_image_augmenter, build_mixer


def check_splits(s, shape, num_classes):
    assert s.input_shape == shape and s.num_classes == num_classes
    for ds, n in ((s.train, s.num_train), (s.val, s.num_val), (s.test, s.num_test)):
        items = list(ds.as_numpy_iterator())
        assert len(items) == n
        if not n:
            continue
        x, y = items[0]
        assert x.shape == shape and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 255
        assert y.dtype == np.int32 and 0 <= y < num_classes


def test_digits_default():
    s = load("digits")
    check_splits(s, (8, 8, 1), 10)
    assert (s.num_train, s.num_val, s.num_test) == (1293, 144, 360)
    assert not s.synthetic


def write_npz(path, n=20, shape=(6, 6)):
    rng = np.random.default_rng(0)
    np.savez(path, x_train=rng.integers(0, 256, (n, *shape), dtype=np.uint8), y_train=np.arange(n) % 4,
             x_test=rng.integers(0, 256, (8, *shape), dtype=np.uint8), y_test=np.arange(8) % 4)


def test_npz_grey_and_rgb(tmp_path):
    write_npz(tmp_path / "grey.npz")
    check_splits(load("npz", path=str(tmp_path / "grey.npz")), (6, 6, 1), 4)
    write_npz(tmp_path / "rgb.npz", shape=(6, 6, 3))
    s = load("npz", path=str(tmp_path / "rgb.npz"), image_size=10, val_fraction=0.25)
    check_splits(s, (10, 10, 3), 4)
    assert (s.num_train, s.num_val) == (15, 5)


def test_npz_errors(tmp_path):
    np.savez(tmp_path / "bad.npz", images=np.zeros((2, 4, 4)), labels=np.zeros(2))
    with pytest.raises(ValueError, match=r"lacks key\(s\) x_train, y_train, x_test, y_test.*found: images, labels"):
        load("npz", path=str(tmp_path / "bad.npz"))
    with pytest.raises(FileNotFoundError, match="npz file '/no/such.npz' does not exist"):
        load("npz", path="/no/such.npz")
    with pytest.raises(ValueError, match="path is not set"):
        load("npz")
    with pytest.raises(ValueError, match="unknown dataset source 'cifar'; valid sources: digits, fashion_mnist_small, npz, folder, tfds"):
        load("cifar")


def write_folder(root, classes=("cat", "dog"), per_class=6, size=(9, 7), channels=3):
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            img = rng.integers(0, 256, (*size, channels), dtype=np.uint8)
            tf.io.write_file(str(root / c / f"{i}.png"), tf.io.encode_png(img))


def test_folder_with_and_without_splits(tmp_path):
    write_folder(tmp_path / "flat")
    s = load("folder", path=str(tmp_path / "flat"), image_size=8, val_fraction=0.2)
    check_splits(s, (8, 8, 3), 2)
    assert s.num_train + s.num_val + s.num_test == 12 and s.class_names == ["cat", "dog"]
    write_folder(tmp_path / "split" / "train", per_class=5, channels=1)
    write_folder(tmp_path / "split" / "test", per_class=2, channels=1)
    s = load("folder", path=str(tmp_path / "split"), image_size=8, val_fraction=0.0)
    check_splits(s, (8, 8, 1), 2)
    assert (s.num_train, s.num_test) == (10, 4)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="has no images .* it needs one sub-folder of images per class"):
        load("folder", path=str(tmp_path / "empty"))


def test_tfds_with_mock_data():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=12):
        s = load("tfds", name="mnist", val_fraction=0.25)
        assert s.num_classes == 10 and s.input_shape == (28, 28, 1)
        x, y = next(s.train.as_numpy_iterator())
        assert x.shape == (28, 28, 1) and x.dtype == np.float32 and y.dtype == np.int32
        assert len(list(s.test.as_numpy_iterator())) == 12
    with pytest.raises(ValueError, match="unknown tfds dataset 'no_such_dataset_xyz'"):
        load("tfds", name="no_such_dataset_xyz")


AUG = AugmentConfig(flip=True, crop_padding=2, translate=0.1, randaugment=True, mixup_alpha=0.4, cutmix_alpha=1.0)


@pytest.mark.parametrize("channels", [1, 3])
def test_augment_eager_and_in_dataset_map(channels):
    images = tf.random.uniform((4, 12, 12, channels), 0, 255, seed=1)
    labels = tf.one_hot([0, 1, 2, 0], 3)
    augment, mix = build_image_augmenter(AUG, (12, 12, channels)), build_mixer(AUG, (12, 12, channels))
    seed = tf.constant([3, 4], tf.int64)
    eager = augment(images, seed)
    mixed_x, mixed_y = mix(eager, labels, seed)
    assert eager.shape == images.shape and mixed_x.shape == images.shape
    np.testing.assert_allclose(mixed_y.numpy().sum(-1), 1.0, rtol=1e-5)
    ds = tf.data.Dataset.from_tensors((images, labels)).map(lambda x, y: mix(augment(x, seed), y, seed))
    gx, gy = next(iter(ds))
    assert gx.shape == images.shape and gx.dtype == tf.float32
    assert float(tf.reduce_min(gx)) >= 0 and float(tf.reduce_max(gx)) <= 255.5
    np.testing.assert_allclose(gy.numpy().sum(-1), 1.0, rtol=1e-5)


def test_pipeline_batches_one_hot_and_augments_only_training():
    s = load("digits", limit=100)
    train = classification_pipeline(s.train, 10, s.input_shape, 16, True, AUG)
    test = classification_pipeline(s.test, 10, s.input_shape, 16, False, AUG)
    x, y = next(iter(train))
    assert x.shape == (16, 8, 8, 1) and y.shape == (16, 10)
    tx, ty = next(iter(test))
    raw = np.stack([a for a, _ in s.test.take(16).as_numpy_iterator()])
    np.testing.assert_array_equal(tx.numpy(), raw)  # no augmentation at test time
    assert set(np.unique(ty.numpy())) <= {0.0, 1.0}


def test_augment_config_rejects_bad_values():
    with pytest.raises(ValueError, match="augment.mixup_alpha must be a number >= 0, got -1"):
        AugmentConfig(mixup_alpha=-1)
    assert build_image_augmenter(AugmentConfig(), (8, 8, 1)) is None


def test_folder_images_go_through_the_one_reader(tmp_path):
    """A 16-bit grey PNG is scaled to 0-255 and an EXIF-rotated JPEG is read upright, as everywhere else."""
    from PIL import Image

    root = tmp_path / "mixed"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((6, 10), 257 * (40 * i + 10), np.uint16)).save(root / c / f"{i}.png")
    s = load("folder", path=str(root), image_size=None, val_fraction=0.0)
    assert s.input_shape == (10, 10, 1)
    values = sorted({int(round(float(x.numpy().max()))) for x, _ in s.train.concatenate(s.test)})
    assert set(values) <= {10, 50, 90} and len(values) > 1  # 16-bit values / 257, not clipped to 255
