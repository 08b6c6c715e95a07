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

import os

import numpy as np
import tensorflow as tf

from kd_keras.data.class_folders import _folder
from kd_keras.data.sampling import balanced_indices, class_counts, keep_one_per_class
from kd_keras.data.scan import MAX_IMAGE_PIXELS
from kd_keras.data.splits import DataSplits, resize as _resize, split_val as _split_val
from kd_keras.data.tfds_source import _tfds

SOURCES = ("digits", "fashion_mnist_small", "npz", "folder", "tfds", "tiny_imagenet", "mhist")
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")

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
