"""Classification datasets in their official folder layouts: Tiny ImageNet and MHIST.

Each has an `index_*` step that checks the layout and lists `(file,
label)` pairs without decoding anything (a wrong layout gets one line that
names the missing file or column), and a loader that decodes the images
into memory. Grayscale images become RGB. Corrupt or too large files are
refused before training, a few named and all counted, unless
`data.skip_bad_images` leaves them out (counted in the report);
`python -m kd_keras.data.prepare` lists them without training.

References:
    Le & Yang. Tiny ImageNet Visual Recognition Challenge. Stanford CS231N, 2015.
    Wei et al. A Petri Dish for Histopathology Image Analysis (MHIST).
    AIME 2021. https://arxiv.org/abs/2101.12355
"""

from __future__ import annotations

import csv
import os

import numpy as np

from kd_keras.data.scan import MAX_IMAGE_PIXELS, inspect_file, refusal

TINY_IMAGENET_LAYOUT = "wnids.txt, words.txt, train/<wnid>/images/*.JPEG, val/images/, val/val_annotations.txt"
MHIST_COLUMNS = ("Image Name", "Majority Vote Label", "Number of Annotators who Selected SSA", "Partition")
MHIST_CLASSES = ("HP", "SSA")


def _require(root: str, rel: str, what: str, layout: str) -> str:
    path = os.path.join(root, rel)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} folder {root!r} has no {rel}; expected the official layout: {layout}.")
    return path


def index_tiny_imagenet(root: str) -> dict:
    """Checks a Tiny ImageNet folder and lists its labelled images.

    The official `val` split (labels in `val/val_annotations.txt`) is the
    test split here; the unlabelled `test/` folder is ignored.

    Returns:
        {"classes": wnids, "names": class descriptions, "train": [(file,
        label)], "test": [(file, label)]}.
    """
    what, layout = "Tiny ImageNet", TINY_IMAGENET_LAYOUT
    if not os.path.isdir(root):
        raise FileNotFoundError(f"Tiny ImageNet folder {root!r} does not exist; download tiny-imagenet-200.zip from "
                                f"http://cs231n.stanford.edu/tiny-imagenet-200.zip, unzip it and pass its path.")
    with open(_require(root, "wnids.txt", what, layout)) as f:
        wnids = [line.strip() for line in f if line.strip()]
    words = {}
    with open(_require(root, "words.txt", what, layout)) as f:
        for line in f:
            wnid, _, text = line.rstrip("\n").partition("\t")
            words[wnid] = text
    label = {w: i for i, w in enumerate(wnids)}
    train = []
    for w in wnids:
        folder = _require(root, os.path.join("train", w, "images"), what, layout)
        train += [(os.path.join(folder, f), label[w]) for f in sorted(os.listdir(folder)) if not f.startswith(".")]
    annotations = _require(root, os.path.join("val", "val_annotations.txt"), what, layout)
    images = _require(root, os.path.join("val", "images"), what, layout)
    test = []
    with open(annotations) as f:
        for n, line in enumerate(f, start=1):
            parts = line.split("\t")
            if len(parts) < 2 or parts[1] not in label:
                raise ValueError(f"{annotations} line {n}: expected '<file>\\t<wnid from wnids.txt>\\t...', "
                                 f"got {line.strip()[:80]!r}.")
            path = os.path.join(images, parts[0])
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{annotations} line {n} names {parts[0]!r}, which is not in {images}.")
            test.append((path, label[parts[1]]))
    if not train or not test:
        raise ValueError(f"Tiny ImageNet folder {root!r} has no {'training' if not train else 'validation'} images.")
    return {"classes": wnids, "names": [words.get(w, w) for w in wnids], "train": train, "test": test}


def index_mhist(root: str) -> dict:
    """Checks an MHIST folder (`annotations.csv`, images in `images/` or beside it) and lists its images.

    Labels: HP = 0, SSA = 1 (the majority vote of 7 pathologists);
    `Partition` gives the official train/test split.
    """
    if not os.path.isdir(root):
        raise FileNotFoundError(f"MHIST folder {root!r} does not exist; request MHIST at "
                                f"https://bmirds.github.io/MHIST/, unzip images.zip and annotations.csv into one "
                                f"folder and pass its path.")
    csv_path = _require(root, "annotations.csv", "MHIST", "annotations.csv and images/*.png")
    images = os.path.join(root, "images") if os.path.isdir(os.path.join(root, "images")) else root
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in MHIST_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{csv_path} lacks column(s) {', '.join(map(repr, missing))}; MHIST's annotations.csv "
                             f"has {', '.join(map(repr, MHIST_COLUMNS))}.")
        rows = list(reader)
    split = {"train": [], "test": []}
    for n, row in enumerate(rows, start=2):
        vote, part = row["Majority Vote Label"].strip(), row["Partition"].strip().lower()
        if vote not in MHIST_CLASSES or part not in split:
            raise ValueError(f"{csv_path} line {n}: label must be HP or SSA and partition train or test, "
                             f"got {vote!r} and {part!r}.")
        path = os.path.join(images, row["Image Name"].strip())
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{csv_path} line {n} names {row['Image Name']!r}, which is not in {images}.")
        split[part].append((path, MHIST_CLASSES.index(vote)))
    return {"classes": list(MHIST_CLASSES), "names": ["hyperplastic polyp", "sessile serrated adenoma"],
            "train": split["train"], "test": split["test"]}


def decode(pairs: list, image_size: int | None, what: str, max_pixels: int = MAX_IMAGE_PIXELS) -> tuple:
    """Decodes `(file, label)` pairs to uint8 RGB arrays of one size; returns `(images, labels, bad)`, `bad` the
    `(file, why)` of corrupt or too large files, which are left out."""
    from PIL import Image

    images, labels, bad = [], [], []
    for path, label in pairs:
        why, _, _, im = inspect_file(path, max_pixels, convert="RGB")  # checked and decoded in one read
        if why:
            bad.append((path, why))
            continue
        if image_size and im.size != (image_size, image_size):
            im = im.resize((image_size, image_size), Image.BILINEAR)
        array = np.asarray(im, np.uint8)
        if images and array.shape != images[0].shape:
            raise ValueError(f"{path} is {array.shape[1]}x{array.shape[0]} but earlier {what} images are "
                             f"{images[0].shape[1]}x{images[0].shape[0]}; set data.image_size to resize them all.")
        images.append(array)
        labels.append(label)
    return images, labels, bad


def load_indexed(index: dict, what: str, image_size, limit, skip_bad: bool = False,
                 max_pixels: int = MAX_IMAGE_PIXELS) -> tuple:
    """`(x_train, y_train, x_test, y_test, class_names, skipped)` from an index, `limit` images per split at most.

    Corrupt or too large files are refused (one line naming a few) unless `skip_bad`: then left out, and counted
    in `skipped`.
    """
    train, test = index["train"], index["test"]
    if limit:  # a class-balanced share (the index lists each class's files together)
        from kd_keras.data.sampling import balanced_indices

        train = [train[i] for i in balanced_indices([label for _, label in train], limit)]
        test = [test[i] for i in balanced_indices([label for _, label in test], limit)]
    x_tr, y_tr, bad_tr = decode(train, image_size, what, max_pixels)
    x_te, y_te, bad_te = decode(test, image_size, what, max_pixels)
    bad = bad_tr + bad_te
    if bad and not skip_bad:
        raise ValueError(refusal(bad, len(train) + len(test), f"{what} folder"))
    if not x_tr or not x_te:
        raise ValueError(f"{what} folder: no usable {'training' if not x_tr else 'test'} image (left out "
                         f"{len(bad)} bad files).")
    if bad:
        print(f"   --skip-bad-images: left out {len(bad):,} bad {what} image file(s), e.g. "
              f"{', '.join(os.path.basename(p) for p, _ in bad[:3])}")
    return (np.stack(x_tr), np.asarray(y_tr, np.int32), np.stack(x_te), np.asarray(y_te, np.int32),
            index["classes"], len(bad))
