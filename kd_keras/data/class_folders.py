"""The `folder` source: a folder of class sub-folders (with optional `train/`, `val/`, `test/` levels), scanned once."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import tensorflow as tf

from kd_keras.data.images import IMAGE_EXTENSIONS, is_image_file, read_image
from kd_keras.data.sampling import balanced_indices, class_counts, keep_one_per_class
from kd_keras.data.scan import MAX_IMAGE_PIXELS, refusal, scan
from kd_keras.data.splits import DataSplits, split_val


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
        train_idx, test_idx = keep_one_per_class(*split_val(len(files), 0.2, seed + 1), labels)
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
        tr, va = keep_one_per_class(*split_val(len(files), val_fraction, seed), labels)
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
