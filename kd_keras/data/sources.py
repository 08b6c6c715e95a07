"""Image-classification data sources, each returning `DataSplits`.

Sources:
    digits  scikit-learn's `load_digits` (1,797 real 8x8 handwritten digits,
            shipped inside scikit-learn): the fastest smoke run.
    npz     arrays `x_train`, `y_train`, `x_test`, `y_test` in one `.npz`
            (the format of `shared/data/*.npz`).
    folder  a folder of class sub-folders, with optional `train/`, `val/`,
            `test/` levels.
    tfds    any TensorFlow Datasets name, with `data_dir`.
    tiny_imagenet  the official Tiny ImageNet folder (its labelled `val`
            split is the test split); see `kd_keras.data.folders`.
    mhist   the MHIST folder: `annotations.csv` and `images/`.

Images stay raw (0-255, float32 in the pipeline); the models normalise.
A validation split is always carved from the training data (never from
test), so recipes can monitor training without touching the test split.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path

import numpy as np
import tensorflow as tf

from kd_keras.data.images import IMAGE_EXTENSIONS, is_image_file, read_image
from kd_keras.data.sampling import balanced_indices, class_counts, keep_one_per_class
from kd_keras.data.scan import MAX_IMAGE_PIXELS, refusal, scan

SOURCES = ("digits", "fashion_mnist_small", "npz", "folder", "tfds", "tiny_imagenet", "mhist")
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


@dataclasses.dataclass
class DataSplits:
    """Unbatched `(image float32 HxWxC, label int32)` datasets plus metadata."""

    train: tf.data.Dataset
    val: tf.data.Dataset
    test: tf.data.Dataset
    num_classes: int
    input_shape: tuple
    num_train: int
    num_val: int
    num_test: int
    class_names: list
    description: str
    synthetic: bool = False
    skipped: int = 0  # bad image files left out (data.skip_bad_images)
    class_counts: dict = dataclasses.field(default_factory=dict)  # {"train"/"val"/"test": images per class}
    notes: list = dataclasses.field(default_factory=list)  # how mixed images were made one set (kd_keras.data.scan)
    unlabeled: int = 0  # training examples without a label (label -1): a transfer set (kd_keras.data.unlabeled)
    labelled_repeats: int = 1  # with a transfer set: how often each labelled image is in one pass


def load(source: str, path: str | None = None, name: str | None = None, data_dir: str | None = None,
         image_size: int | None = None, val_fraction: float = 0.1, seed: int = 0, limit: int | None = None,
         manual_dir: str | None = None, skip_bad_images: bool = False, max_image_pixels: int = MAX_IMAGE_PIXELS,
         log=print) -> DataSplits:
    """Loads a classification dataset.

    Args:
        source: one of `SOURCES`.
        path: file (npz) or folder (folder) to read.
        name: the tfds dataset name (tfds).
        data_dir: tfds data directory.
        image_size: resize images to this square side when loading
            (needed for folders and tfds sets of mixed sizes).
        val_fraction: share of the training data held out for validation.
        seed: seed of the train/validation split.
        limit: keep at most this many training and test examples (smoke runs).
        manual_dir: tfds manual download folder (imagenet2012's tar files).
        skip_bad_images: folder sources: leave corrupt or too large files
            out (counted in `skipped`) instead of refusing them.
        max_image_pixels: folder sources: the largest image (width x
            height) decoded; see `kd_keras.data.scan`.
        log: where a large folder's progress goes.

    Raises:
        ValueError: unknown source or malformed data.
        FileNotFoundError: a missing path.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown dataset source {source!r}; valid sources: {', '.join(SOURCES)}.")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}.")
    if source == "digits":
        arrays, desc = _digits(), "sklearn load_digits (real 8x8 handwritten digits)"
        return _from_arrays(*arrays, None, desc, val_fraction, seed, limit, image_size)
    if source == "fashion_mnist_small":
        from kd_keras.assets import asset_path

        x_tr, y_tr, x_te, y_te, names = _npz(str(asset_path("fashion_mnist_small.npz", "the embedded data file")))
        desc = "Fashion-MNIST subset (embedded; MIT licence, Zalando SE)"
        return _from_arrays(x_tr, y_tr, x_te, y_te, names, desc, val_fraction, seed, limit, image_size)
    if source == "npz":
        x_tr, y_tr, x_te, y_te, names = _npz(_require_path(path, "npz file", must_be_file=True))
        return _from_arrays(x_tr, y_tr, x_te, y_te, names, f"npz {path}", val_fraction, seed, limit, image_size)
    if source in ("tiny_imagenet", "mhist"):
        from kd_keras.data import folders

        index = (folders.index_tiny_imagenet if source == "tiny_imagenet" else folders.index_mhist)(path or "")
        what = "Tiny ImageNet" if source == "tiny_imagenet" else "MHIST"
        x_tr, y_tr, x_te, y_te, names, skipped = folders.load_indexed(index, what, image_size, limit,
                                                                       skip_bad_images, max_image_pixels)
        splits = _from_arrays(x_tr, y_tr, x_te, y_te, names, f"{what} {path}", val_fraction, seed, None, None)
        splits.skipped = skipped
        return splits
    if source == "folder":
        return _folder(_require_path(path, "image folder", must_be_file=False), image_size, val_fraction, seed, limit,
                       skip_bad_images, max_image_pixels, log)
    return _tfds(name, data_dir, image_size, val_fraction, limit, manual_dir)


def _require_path(path, what: str, must_be_file: bool) -> str:
    if not path:
        raise ValueError(f"the {what} path is not set; pass data.path=... (or the recipe's data flag).")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} {path!r} does not exist; check the path.")
    if must_be_file and not os.path.isfile(path):
        raise ValueError(f"{what} {path!r} is not a file.")
    if not must_be_file and not os.path.isdir(path):
        raise ValueError(f"{what} {path!r} is not a folder.")
    return path


# ------------------------------------------------------------------ arrays
def _digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    # Pixel values are 0..16; scale to the 0-255 range every model expects.
    x = np.round(digits.images * (255.0 / 16.0)).astype("uint8")[..., None]
    y = digits.target.astype("int32")
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    return x_tr, y_tr, x_te, y_te


def _npz(path: str):
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as e:
        raise ValueError(f"cannot read npz file {path!r} ({type(e).__name__}); give a .npz made by numpy.savez.") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(f"{path!r} is a single numpy array (.npy), not an .npz archive; save the splits with "
                         f"numpy.savez(path, {', '.join(f'{k}=...' for k in NPZ_KEYS)}).")
    missing = [k for k in NPZ_KEYS if k not in data.files]
    if missing:
        raise ValueError(
            f"npz file {path!r} lacks key(s) {', '.join(missing)}; it needs {', '.join(NPZ_KEYS)} "
            f"(found: {', '.join(data.files) or 'none'})."
        )
    keys = [*NPZ_KEYS, *(["class_names"] if "class_names" in data.files else [])]
    arrays = {}
    for k in keys:
        try:
            arrays[k] = data[k]
        except Exception as e:  # a damaged member: zipfile's CRC check, a truncated array, pickled objects
            raise ValueError(f"npz file {path!r} is damaged: its {k!r} array cannot be read ({type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else 'no detail'}); write it again with "
                             f"numpy.savez.") from None
    names = [str(n) for n in arrays["class_names"]] if "class_names" in arrays else None
    return arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], names


def _as_images(x, where: str):
    """Images as (N, H, W, C) with pixel values 0-255, checked: the models scale them themselves."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"{where} must hold images (N, H, W) or (N, H, W, 1|3), got shape {x.shape}.")
    if x.dtype.kind not in "uif":
        raise ValueError(f"{where} must hold numeric pixel values, got dtype {x.dtype}; save the decoded images "
                         f"(uint8, 0-255).")
    if not x.size:
        raise ValueError(f"{where} holds no images; give at least one.")
    if x.dtype.kind == "f":
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        if bad:
            raise ValueError(f"{where} holds {bad:,} NaN or infinite pixel values; fix or drop those images.")
    low, high = float(x.min()), float(x.max())
    if x.dtype.kind == "f" and low >= 0.0 and high <= 1.0:
        raise ValueError(f"{where} holds floats in [0, 1] (max {high:g}), but the models expect pixel values "
                         f"0-255; multiply by 255 (or save uint8 images).")
    if low < 0.0 or high > 255.0:
        raise ValueError(f"{where} has pixel values from {low:g} to {high:g}, outside 0-255; scale them to 0-255 "
                         f"(e.g. 16-bit images: divide by 257).")
    return x


def _as_labels(y, n: int, where: str):
    y = np.asarray(y)
    if y.ndim == 2 and y.shape == (n, y.shape[1]) and y.shape[1] > 1:
        if np.isin(y, (0, 1)).all() and (y.sum(-1) == 1).all():  # one-hot rows: their class ids
            return y.argmax(-1).astype("int32")
        raise ValueError(f"{where} has shape {y.shape}: one row of {y.shape[1]} values per image, but not one-hot; "
                         f"give integer class ids 0..K-1, one per image.")
    y = y.reshape(-1)
    if y.shape[0] != n:
        raise ValueError(f"{where} has {y.shape[0]} labels for {n} images.")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{where} must hold integer class ids >= 0, got dtype {y.dtype}.")
    if y.size and y.min() < 0:
        raise ValueError(f"{where} has label {int(y.min())} (at index {int(y.argmin())}); class ids must be integers "
                         f">= 0: 0..K-1 for K classes.")
    return y.astype("int32")


def _check_classes(y_tr, y_te, class_names) -> int:
    """The number of classes: the class names' when given, else the training labels' 0..K-1, all present.

    Raises:
        ValueError: a label outside the named classes; without names, training labels that skip classes (a
            stray large label would build a model with that many classes) or test labels no training image has.
    """
    if not y_tr.size or not y_te.size:
        raise ValueError(f"the {'training' if not y_tr.size else 'test'} split holds no labels; give at least one "
                         f"image per split.")
    k = len(class_names) if class_names is not None else int(y_tr.max()) + 1
    if k < 2:
        which = f"class_names {list(class_names)!r}" if class_names is not None else "every label is 0"
        raise ValueError(f"the data has {k} class ({which}); a classifier needs at least two.")
    if class_names is not None:
        for where, y in (("y_train", y_tr), ("y_test", y_te)):
            if y.max() >= k:
                raise ValueError(f"{where} has label {int(y.max())}, but class_names names {k} classes (labels "
                                 f"0..{k - 1}); fix the labels or class_names.")
        return k
    k = int(y_tr.max()) + 1
    missing = np.setdiff1d(np.arange(k), y_tr)
    if missing.size:
        shown = ", ".join(str(int(c)) for c in missing[:5]) + (", ..." if missing.size > 5 else "")
        raise ValueError(f"y_train's largest label is {k - 1}, but {missing.size:,} of the classes 0..{k - 1} have no "
                         f"training image ({shown}); use labels 0..K-1, or add class_names to the npz to keep "
                         f"classes without training images.")
    extra = np.unique(y_te[y_te >= k])
    if extra.size:
        raise ValueError(f"y_test has label(s) {', '.join(str(int(c)) for c in extra[:5])} that no training image "
                         f"has (training labels are 0..{k - 1}); fix the labels, or add class_names to the npz.")
    return k


def _split_val(n: int, val_fraction: float, seed: int):
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * val_fraction))
    return order[n_val:], order[:n_val]


def _from_arrays(x_tr, y_tr, x_te, y_te, class_names, desc, val_fraction, seed, limit, image_size):
    x_tr, x_te = _as_images(x_tr, "x_train"), _as_images(x_te, "x_test")
    y_tr, y_te = _as_labels(y_tr, len(x_tr), "y_train"), _as_labels(y_te, len(x_te), "y_test")
    if x_tr.shape[1:] != x_te.shape[1:]:
        raise ValueError(f"x_train images are {x_tr.shape[1:]} but x_test images are {x_te.shape[1:]}.")
    num_classes = _check_classes(y_tr, y_te, class_names)
    if limit:
        keep, keep_te = balanced_indices(y_tr, limit), balanced_indices(y_te, limit)
        x_tr, y_tr, x_te, y_te = x_tr[keep], y_tr[keep], x_te[keep_te], y_te[keep_te]
    tr_idx, val_idx = keep_one_per_class(*_split_val(len(x_tr), val_fraction, seed), y_tr)

    def ds(x, y):
        d = tf.data.Dataset.from_tensor_slices((x, y))
        return d.map(lambda i, l: (_resize(tf.cast(i, tf.float32), image_size), l), num_parallel_calls=tf.data.AUTOTUNE)

    shape = tuple(x_tr.shape[1:]) if not image_size else (image_size, image_size, x_tr.shape[-1])
    return DataSplits(
        train=ds(x_tr[tr_idx], y_tr[tr_idx]), val=ds(x_tr[val_idx], y_tr[val_idx]), test=ds(x_te, y_te),
        num_classes=num_classes, input_shape=shape, num_train=len(tr_idx), num_val=len(val_idx),
        num_test=len(x_te), class_names=class_names or [str(i) for i in range(num_classes)], description=desc,
        class_counts={"train": class_counts(y_tr[tr_idx], num_classes), "val": class_counts(y_tr[val_idx], num_classes),
                      "test": class_counts(y_te, num_classes)},
    )


def _resize(image, image_size):
    if not image_size:
        return image
    return tf.image.resize(image, (image_size, image_size), method="bilinear")


# ------------------------------------------------------------------ folder
def _list_classes(root: Path, left_out: list | None = None):
    """`(classes, files, labels)` of a class-folder tree; the files that are not images go to `left_out`."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    files, labels = [], []
    for i, c in enumerate(classes):
        for f in sorted((root / c).rglob("*")):
            if is_image_file(f, root / c):
                files.append(str(f))
                labels.append(i)
            elif left_out is not None and f.is_file():
                left_out.append(str(f.relative_to(root)))
    return classes, files, labels


FOLDER_LAYOUT = "one sub-folder of images per class (my_images/cat/*.jpg, my_images/dog/*.jpg)"


def _check_class_folders(root: Path, classes, files, labels, path: str) -> None:
    """A classification folder: at least two class sub-folders, each with images."""
    if not files:
        loose = [p for p in root.iterdir() if p.is_file() and is_image_file(p)]
        found = (f"{len(loose)} images but no class sub-folders" if loose else
                 f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {len(classes)} sub-folders" if classes else
                 f"no images ({', '.join(IMAGE_EXTENSIONS)})")
        raise ValueError(f"image folder {path!r} has {found}; it needs {FOLDER_LAYOUT}.")
    if len(classes) < 2:
        only = root / classes[0]
        inner = sorted(p.name for p in only.iterdir() if p.is_dir() and not p.name.startswith("."))
        if classes[0].lower() in ("test", "val", "valid", "validation"):
            raise ValueError(f"image folder {path!r} has only a {classes[0]}/ folder; give it a train/ folder beside "
                             f"it ({path}/train/<class>/...), or pass the class folders themselves: {FOLDER_LAYOUT}.")
        if len(inner) >= 2:
            raise ValueError(f"image folder {path!r} has one sub-folder, {classes[0]!r}, which holds the class "
                             f"folders ({', '.join(inner[:5])}{', ...' if len(inner) > 5 else ''}): pass --data "
                             f"{os.path.join(path, classes[0])}.")
        raise ValueError(f"image folder {path!r} has one class, {classes[0]!r}; a classifier needs at least two: "
                         f"{FOLDER_LAYOUT}.")
    empty = [c for i, c in enumerate(classes) if i not in set(labels)]
    if empty:
        raise ValueError(f"image folder {path!r}: the class sub-folder{'s' if len(empty) > 1 else ''} "
                         f"{', '.join(map(repr, empty[:5]))} {'have' if len(empty) > 1 else 'has'} no images "
                         f"({', '.join(IMAGE_EXTENSIONS)}); add images or remove the folder.")


def first_image_side(path: str) -> int | None:
    """The side a folder source resizes to when `data.image_size` is not set: its training images' most common
    longer side (headers only), else None."""
    import collections

    from PIL import Image

    root = Path(path)
    _, files, _ = _list_classes(root / "train" if (root / "train").is_dir() else root)
    sides = collections.Counter()
    for f in files:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the scan refuses it, in one line
                with Image.open(f) as im:
                    sides[int(max(im.size))] += 1
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            continue  # the scan names it
    return max(sides.items(), key=lambda kv: (kv[1], kv[0]))[0] if sides else None


def _folder(path: str, image_size, val_fraction, seed, limit, skip_bad=False, max_pixels=MAX_IMAGE_PIXELS, log=print):
    root = Path(path)
    has_splits = (root / "train").is_dir()
    left_out = []
    classes, files, labels = _list_classes(root / "train" if has_splits else root, left_out)
    _check_class_folders(root / "train" if has_splits else root, classes, files, labels, path)
    files, labels = np.array(files), np.array(labels, "int32")
    if has_splits and (root / "test").is_dir():
        test_classes, test_files, test_labels = _list_classes(root / "test", left_out)
        if test_classes != classes:
            raise ValueError(f"{path}/test has classes {test_classes}, but {path}/train has {classes}.")
        test_files, test_labels = np.array(test_files), np.array(test_labels, "int32")
        train_idx = np.arange(len(files))
    else:  # no test split on disk: hold out 20% deterministically
        train_idx, test_idx = keep_one_per_class(*_split_val(len(files), 0.2, seed + 1), labels)
        test_files, test_labels = files[test_idx], labels[test_idx]
    files, labels = files[train_idx], labels[train_idx]
    if limit:
        keep, keep_te = balanced_indices(labels, limit), balanced_indices(test_labels, limit)
        files, labels, test_files, test_labels = files[keep], labels[keep], test_files[keep_te], test_labels[keep_te]
    is_val = np.zeros(len(files), bool)
    if has_splits and (root / "val").is_dir():  # a validation split on disk: used as it is, not data.val_fraction
        val_classes, val_files, val_labels = _list_classes(root / "val", left_out)
        if val_classes != classes:
            raise ValueError(f"{path}/val has classes {val_classes}, but {path}/train has {classes}.")
        keep = balanced_indices(val_labels, limit) if limit else np.arange(len(val_files))
        files = np.concatenate([files, np.array(val_files)[keep]]) if len(keep) else files
        labels = np.concatenate([labels, np.array(val_labels, "int32")[keep]]) if len(keep) else labels
        is_val = np.concatenate([is_val, np.ones(len(keep), bool)])
        log(f"   validation images from {path}/val ({len(keep)}), not a share of train/")
    if left_out:
        log(f"   left out {len(left_out):,} file(s) that are not images kd_keras reads (hidden, or not an image "
            f"format): {', '.join(left_out[:3])}{', ...' if len(left_out) > 3 else ''}")
    found = scan([*files, *test_files], max_pixels, log)  # every file read once, before any training
    skipped = 0
    if found.bad:
        if not skip_bad:
            raise ValueError(refusal(found.bad, len(files) + len(test_files), f"image folder {path!r}"))
        bad = {p for p, _ in found.bad}
        keep, keep_test = ~np.isin(files, list(bad)), ~np.isin(test_files, list(bad))
        skipped = int((~keep).sum() + (~keep_test).sum())
        files, labels, is_val = files[keep], labels[keep], is_val[keep]
        test_files, test_labels = test_files[keep_test], test_labels[keep_test]
        log(f"   --skip-bad-images: left out {skipped:,} bad image file(s), e.g. "
            f"{', '.join(os.path.basename(p) for p, _ in found.bad[:3])}")
        emptied = [c for i, c in enumerate(classes) if i not in set(labels[~is_val].tolist())]
        if emptied:
            raise ValueError(f"image folder {path!r}: without its bad files, class {emptied[0]!r} has no usable "
                             f"training image; add images to it or remove the folder.")
    if is_val.any():
        tr, va = np.random.default_rng(seed).permutation(np.flatnonzero(~is_val)), np.flatnonzero(is_val)
    else:
        tr, va = keep_one_per_class(*_split_val(len(files), val_fraction, seed), labels)
    channels = found.channels
    notes = found.notes(image_size or 0)
    image_size = image_size or found.side
    mode = "RGB" if channels == 3 else "L"

    def decode(fname):  # kd_keras' one image reader: EXIF orientation, 16-bit and float scaling, any mode
        image = read_image(fname.decode() if isinstance(fname, bytes) else str(fname), mode)
        return image if image.ndim == 3 else image[..., None]

    def ds(f, l):
        def read(fname, label):
            img = tf.numpy_function(decode, [fname], tf.uint8)
            img = tf.image.resize(tf.cast(tf.ensure_shape(img, (None, None, channels)), tf.float32),
                                  (image_size, image_size), method="bilinear")
            return tf.ensure_shape(img, (image_size, image_size, channels)), label

        return tf.data.Dataset.from_tensor_slices((f, l)).map(read, num_parallel_calls=tf.data.AUTOTUNE)

    shown = f" ({skipped:,} bad image files left out: --skip-bad-images)" if skipped else ""
    return DataSplits(
        train=ds(files[tr], labels[tr]), val=ds(files[va], labels[va]), test=ds(test_files, test_labels),
        num_classes=len(classes), input_shape=(image_size, image_size, channels), num_train=len(tr),
        num_val=len(va), num_test=len(test_files), class_names=classes, description=f"folder {path}{shown}",
        skipped=skipped, notes=notes,
        class_counts={"train": class_counts(labels[tr], len(classes)), "val": class_counts(labels[va], len(classes)),
                      "test": class_counts(test_labels, len(classes))},
    )


# -------------------------------------------------------------------- tfds
TFDS_MISSING = ("data.source = \"tfds\" reads TensorFlow Datasets, which is not installed; install the extra: "
                "pip install \"kd_keras[tfds]\".")


def missing_tfds() -> str:
    """The one-line hint when tensorflow-datasets (the `tfds` extra) is not installed, else ""."""
    import importlib.util

    try:
        return "" if importlib.util.find_spec("tensorflow_datasets") is not None else TFDS_MISSING
    except (ImportError, ValueError):  # a broken or hidden install
        return TFDS_MISSING


def _online(timeout: float = 3.0) -> bool:
    """Whether the storage tfds downloads from answers within `timeout` seconds."""
    import socket

    try:
        socket.create_connection(("storage.googleapis.com", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _tfds(name, data_dir, image_size, val_fraction, limit, manual_dir=None):
    if missing_tfds():
        raise ValueError(TFDS_MISSING)
    import tensorflow_datasets as tfds

    if not name:
        raise ValueError("the tfds dataset name is not set; pass data.name=... (e.g. 'cifar10').")
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as e:
        raise ValueError(f"unknown tfds dataset {name!r} ({str(e).splitlines()[0][:120]}).") from None
    known = list(builder.info.splits)  # empty until prepared (or under tfds.testing.mock_data)
    if known and ("train" not in known or not {"test", "validation"} & set(known)):
        raise ValueError(f"tfds dataset {name!r} needs a 'train' and a 'test' or 'validation' split; has {known}.")
    test_split = "test" if not known or "test" in known else "validation"
    pct = int(round(val_fraction * 100))
    if test_split == "test" and "validation" in known:
        train_s, val_s = "train", "validation"
    else:
        train_s, val_s = f"train[{pct}%:]", f"train[:{pct}%]"
    mocked = getattr(tfds.core.DatasetBuilder.as_dataset, "__module__", "").startswith("tensorflow_datasets.testing")
    prepared = mocked or os.path.isdir(builder.data_dir)  # under tfds.testing.mock_data nothing is downloaded
    if not prepared and not manual_dir and not _online():  # tfds would retry its downloads for minutes first
        raise ValueError(f"tfds dataset {name!r} is not prepared in {builder.data_dir!r} and this machine cannot "
                         f"reach the internet to download it; download it where there is internet (python -c "
                         f"\"import tensorflow_datasets as tfds; tfds.load('{name}')\") and copy the folder, or set "
                         f"data.data_dir to a folder that holds it.")
    kwargs = {}
    if manual_dir:
        kwargs["download_and_prepare_kwargs"] = {
            "download_config": tfds.download.DownloadConfig(manual_dir=manual_dir)}
    try:
        tr, va, te = tfds.load(name, split=[train_s, val_s, test_split], data_dir=data_dir, as_supervised=True,
                               **kwargs)
    except Exception as e:
        files = "ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar" if name == "imagenet2012" else "its files"
        hint = (f"put {files} in data.manual_dir (tfds prepares them into data.data_dir)"
                if manual_dir or name == "imagenet2012" else
                "download it where there is internet, or set data.data_dir to a folder that holds it")
        first = (str(e).strip().splitlines() or [""])[0][:100]
        raise ValueError(f"could not load tfds dataset {name!r} ({type(e).__name__}: {first}); {hint}.") from None
    label = builder.info.features["label"]
    shape = tuple(builder.info.features["image"].shape)
    if image_size is None and None in shape[:2]:
        raise ValueError(f"tfds dataset {name!r} has images of varying size {shape}; set data.image_size.")
    out_shape = (image_size, image_size, shape[-1] or 3) if image_size else shape

    def prep(img, lab):
        return _resize(tf.cast(img, tf.float32), image_size), tf.cast(lab, tf.int32)

    if limit:
        tr, va, te = tr.take(limit), va.take(limit), te.take(limit)
    tr, va, te = (d.map(prep, num_parallel_calls=tf.data.AUTOTUNE) for d in (tr, va, te))
    return DataSplits(
        train=tr, val=va, test=te, num_classes=label.num_classes, input_shape=out_shape,
        num_train=_count(tr), num_val=_count(va), num_test=_count(te), class_names=list(label.names),
        description=f"tfds {name}",
    )


def _count(ds: tf.data.Dataset) -> int:
    n = int(ds.cardinality())
    if n >= 0:
        return n
    return int(ds.reduce(0, lambda c, _: c + 1))  # one pass, only when tfds cannot tell
