"""The transfer set of classification: images without labels that the teacher labels for the KD students.

`data.unlabeled` (`--unlabeled DIR`, repeatable) lists where they come from:

- a folder of images, flat or nested (sub-folder names are ignored), read
  through the same scan as folder datasets: a corrupt or too large file is
  refused, or left out and counted with `data.skip_bad_images`;
- an `.npz` file: its `x_unlabeled` array (N x H x W [x C], 0-255);
- `"rest"`: the training images that `data.labels_per_class` leaves out,
  whose labels no student sees.

Every image is made the data's size and channels (as the labelled images
are) and carries the label -1, which the pipeline's one-hot turns into an
all-zero row: the hard-label loss skips it (`kd_keras.losses.labelled`), the
distillation loss does not. An unlabelled image that is also a test or
validation image (the same pixels) is refused: it would leak the held-out
images into training.

Reference:
    Hinton, Vinyals, Dean. Distilling the Knowledge in a Neural Network.
    2015 (the "transfer set"). https://arxiv.org/abs/1503.02531
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from kd_keras.data.images import read_image
from kd_keras.data.scan import refusal, scan
from kd_keras.data.images import IMAGE_EXTENSIONS, image_extensions

REST = "rest"
UNLABELED = -1  # the label of a transfer image: one-hot zeros
NPZ_KEY = "x_unlabeled"


@dataclasses.dataclass
class TransferSet:
    """Unlabelled images in the data's shape: an unbatched `(image float32, -1)` dataset and what it holds."""

    images: tf.data.Dataset
    count: int
    description: str
    skipped: int = 0


def entries(value) -> list[str]:
    """`data.unlabeled` as a list of entries ("rest", folders, `.npz` files)."""
    if isinstance(value, str):
        return [value] if value else []
    return list(value)


def check_unlabeled(d, task_name: str) -> None:
    """`data.unlabeled`, checked before any data loads.

    Raises:
        ValueError: a wrong type, a task without it, `"rest"` without
            `labels_per_class`, an `.npz` without
            `x_unlabeled`, a folder that is empty or holds no image.
        FileNotFoundError: a folder or file that does not exist.
    """
    value = d.unlabeled
    if not (isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) and v for v in value))):
        raise ValueError(f"data.unlabeled must be a list of image folders or .npz files, or \"{REST}\", got "
                         f"{value!r}; e.g. --unlabeled photos/.")
    items = entries(value)
    if not items:
        return
    if task_name == "super_resolution":
        raise ValueError("data.unlabeled serves classification; super-resolution needs no labels (a high-resolution "
                         "image is its own target): add the images to its training sets (data.train_sets) and drop "
                         "data.unlabeled.")
    if task_name != "classification":
        raise ValueError(f"data.unlabeled serves classification; {task_name.replace('_', ' ')} takes its unlabelled "
                         f"images per KD student: set [[distill]] transfer = [\"folder/\"] (e.g. --set "
                         f"'distill.0.transfer=[\"{items[0]}\"]') and drop data.unlabeled.")
    for item in items:
        if item == REST:
            if not d.labels_per_class:
                raise ValueError(f"data.unlabeled = \"{REST}\" takes the training images that data.labels_per_class "
                                 f"leaves out, but data.labels_per_class is 0 (every image labelled); set it, e.g. "
                                 f"--set data.labels_per_class=100, or give a folder.")
            continue
        path = Path(item)
        if not path.exists():
            raise FileNotFoundError(f"unlabelled images {item!r} (data.unlabeled) do not exist; check the path.")
        if path.is_file():
            if path.suffix.lower() != ".npz":
                raise ValueError(f"data.unlabeled {item!r} is a file but not an .npz; give a folder of images or an "
                                 f".npz with an {NPZ_KEY} array.")
            _npz_images(item)
        elif not image_files(item):
            raise ValueError(f"unlabelled image folder {item!r} (data.unlabeled) holds no image "
                             f"({', '.join(IMAGE_EXTENSIONS)}), in it or below; check the path.")


def image_files(folder: str) -> list[str]:
    """Every image file in `folder` and below (hidden files and folders skipped), sorted."""
    out = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(x for x in dirs if not x.startswith("."))
        out += [os.path.join(root, f) for f in sorted(files)
                if not f.startswith(".") and os.path.splitext(f)[1].lower() in image_extensions()]
    return out


def load_unlabeled(d, splits, rest: tf.data.Dataset | None = None, rest_count: int = 0, log=print) -> TransferSet:
    """The transfer set of `data.unlabeled` in the shape of `splits` (its images' size and channels).

    Args:
        d: the `DataConfig`.
        splits: the loaded `DataSplits` (their input shape; their test and
            validation images for the overlap check).
        rest: the training images `labels_per_class` left out, unbatched
            `(image, label)` (for `"rest"`), and their count.
        log: where progress and skipped files go.

    Raises:
        ValueError: bad files (without `skip_bad_images`), no usable image, or
            an unlabelled image that is also a test or validation image.
    """
    shape = tuple(splits.input_shape)
    parts, described, arrays, skipped = [], [], [], 0
    for item in entries(d.unlabeled):
        if item == REST:
            parts.append(rest.map(lambda x, y: (x, tf.constant(UNLABELED, tf.int32))))
            described.append(f"{rest_count:,} training images left out by data.labels_per_class (labels unused)")
            continue
        if os.path.isfile(item):
            images = _npz_images(item)
            what = f"{NPZ_KEY} of {item}"
        else:
            images, bad = _read_folder(item, shape, d.skip_bad_images, d.max_image_pixels, log)
            skipped += bad
            what = f"{item}" + (f" ({bad:,} bad files left out: --skip-bad-images)" if bad else "")
        images = _to_shape(images, shape, item)
        arrays.append(images)
        described.append(f"{len(images):,} images from {what}")
    count = rest_count * (REST in entries(d.unlabeled)) + sum(len(a) for a in arrays)
    if arrays:
        x = np.concatenate(arrays)
        check_no_overlap(x, splits, d.unlabeled)
        parts.append(tf.data.Dataset.from_tensor_slices(x).map(
            lambda i: (tf.cast(i, tf.float32), tf.constant(UNLABELED, tf.int32))))
    if count < 1:
        raise ValueError(f"data.unlabeled {d.unlabeled!r} gives no usable image; check the folders.")
    images = parts[0]
    for p in parts[1:]:
        images = images.concatenate(p)
    return TransferSet(images.apply(tf.data.experimental.assert_cardinality(count)), count, "; ".join(described),
                       skipped)


def check_no_overlap(images: np.ndarray, splits, where) -> None:
    """Refuses unlabelled images whose pixels are those of a test or validation image."""
    seen = {_digest(x): i for i, x in enumerate(images)}
    for split, ds in (("test", splits.test), ("validation", splits.val)):
        if ds is None:
            continue
        for x, _ in ds.batch(512).as_numpy_iterator():
            for image in np.asarray(x):
                hit = seen.get(_digest(image))
                if hit is not None:
                    total = sum(1 for image in _all(ds) if _digest(image) in seen)
                    raise ValueError(f"data.unlabeled {where!r}: {total:,} unlabelled image(s) are {split} images "
                                     f"(the same pixels, e.g. unlabelled image #{hit}); remove them from the transfer "
                                     f"set: a {split} image must never be trained on.")


def _all(ds):
    for x, _ in ds.batch(512).as_numpy_iterator():
        yield from np.asarray(x)


def _digest(image) -> str:
    return hashlib.sha1(np.ascontiguousarray(np.clip(np.round(image), 0, 255).astype(np.uint8)).tobytes()).hexdigest()


def _npz_images(path: str) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as z:
            if NPZ_KEY not in z.files:
                raise ValueError(f"data.unlabeled {path!r} has no {NPZ_KEY} array (it has {', '.join(z.files)}); "
                                 f"save the unlabelled images as {NPZ_KEY} (N x H x W [x C], 0-255).")
            x = np.asarray(z[NPZ_KEY])
    except ValueError:
        raise
    except Exception as e:  # a damaged archive
        raise ValueError(f"cannot read data.unlabeled {path!r} ({type(e).__name__}); give a .npz made by "
                         f"numpy.savez.") from None
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3) or not len(x) or not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"data.unlabeled {path!r}: {NPZ_KEY} must be N x H x W [x 1 or 3] numbers, got shape "
                         f"{x.shape} of {x.dtype}.")
    return x


def _read_folder(folder: str, shape, skip_bad: bool, max_pixels: int, log) -> tuple[np.ndarray, int]:
    """The folder's images decoded in the data's channels, at their own size; `(images or list, bad count)`."""
    files = image_files(folder)
    found = scan(files, max_pixels, log, what=f"unlabelled images in {folder}")
    if found.bad and not skip_bad:
        raise ValueError(refusal(found.bad, len(files), f"unlabelled image folder {folder!r}"))
    if found.bad:
        log(f"   --skip-bad-images: left out {len(found.bad):,} bad unlabelled image file(s) of {folder}, e.g. "
            f"{', '.join(os.path.basename(p) for p, _ in found.bad[:3])}")
    if not found.good:
        raise ValueError(f"unlabelled image folder {folder!r}: none of its {len(files):,} image files can be used.")
    mode = "L" if shape[-1] == 1 else "RGB"
    h, w = shape[0], shape[1]

    def one(path):
        image = read_image(path, mode)
        image = image if image.ndim == 3 else image[..., None]
        if image.shape[:2] != (h, w):
            image = tf.image.resize(tf.cast(image, tf.float32), (h, w), method="bilinear").numpy()
        return np.clip(np.round(image), 0, 255).astype(np.uint8)

    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        images = list(pool.map(one, found.good))
    return np.stack(images), len(found.bad)


def _to_shape(images: np.ndarray, shape, where: str) -> np.ndarray:
    """`images` (N x H x W x C) in the data's size and channels: resized (bilinear) and grey <-> RGB converted."""
    h, w, c = shape
    if images.shape[-1] != c:
        if c == 1:  # ITU-R 601 luma, as Pillow's "L"
            images = np.sum(images.astype(np.float32) * np.array([0.299, 0.587, 0.114], np.float32), -1,
                            keepdims=True)
        else:
            images = np.repeat(images, 3, axis=-1)
    if images.shape[1:3] != (h, w):
        if h is None:
            raise ValueError(f"data.unlabeled {where!r}: the data's images have no fixed size; set data.image_size.")
        images = tf.image.resize(tf.cast(images, tf.float32), (h, w), method="bilinear").numpy()
    return np.clip(np.round(images), 0, 255).astype(np.uint8) if images.dtype != np.uint8 else images


def with_unlabeled(splits, transfer: TransferSet, labeled_share: float = 0.0, seed: int = 0):
    """`splits` whose training split holds its labelled images and the transfer set's, mixed in a fixed order.

    The order interleaves the two at random (seeded), so that every stretch of
    it, and every batch the pipeline's shuffle draws from it, holds labelled
    images in proportion. With `labeled_share` in (0, 1) the labelled images
    are repeated `r` times, `r` the whole number that brings their share
    closest to it (at least once); each unlabelled image is in the split once.
    """
    n_l, n_u = splits.num_train, transfer.count
    repeats = 1 if not labeled_share else max(1, round(labeled_share * n_u / ((1.0 - labeled_share) * n_l)))
    order = np.concatenate([np.zeros(n_l * repeats, np.int64), np.ones(n_u, np.int64)])
    np.random.default_rng(seed).shuffle(order)
    labelled = splits.train.repeat(repeats) if repeats > 1 else splits.train
    train = tf.data.Dataset.choose_from_datasets([labelled, transfer.images], tf.data.Dataset.from_tensor_slices(order),
                                                 stop_on_empty_dataset=True)
    total = n_l * repeats + n_u
    train = train.apply(tf.data.experimental.assert_cardinality(total))
    share = f", the labelled ones repeated {repeats}x ({100 * n_l * repeats / total:.0f}% of each pass)" \
        if repeats > 1 else ""
    return dataclasses.replace(splits, train=train, num_train=total, unlabeled=n_u, labelled_repeats=repeats,
                               description=f"{splits.description} + {n_u:,} unlabelled images{share}")
