"""Edge-detection data: the BSDS500 folder layout, and a synthetic shapes set.

An example is `(name, image uint8 HxWx3, label float32 HxW in [0, 1],
annotations bool KxHxW)`: the label is the share of annotators who marked
each pixel a boundary, and the annotations are every annotator's map (the
BSDS protocol scores against each of them).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from kd_keras.data.images import DenseSplits, assemble, list_images, read_image

BSDS_SPLITS = ("train", "val", "test")


def load_bsds(path, train_sets=("train",), val_sets=("val",), test_sets=("test",), patch_size: int = 0,
              val_fraction: float = 0.1, seed: int = 0, limit: int = 0) -> DenseSplits:
    """Reads the BSDS500 layout.

    `images/{split}/*.jpg`, consensus boundary maps `gt/{split}/<id>.png`
    (0-255 = share of annotators), and optionally `gt_all_{split}.npz` with
    every annotator's binary map per image id, shape (K, H, W). Without it,
    the consensus map thresholded at one half is the single annotation.

    Args:
        path: the dataset root.
        train_sets, val_sets, test_sets: splits to use for each role. With
            no `val_sets`, `val_fraction` of the training images is held out.
        patch_size: training crop side; smaller training images are skipped.
        limit: keep at most this many images per role (0: all).

    Raises:
        FileNotFoundError: the root or a split folder does not exist.
        ValueError: a ground-truth map is missing, unreadable or of another
            size than its image, or an image is unreadable.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"BSDS500 folder {os.fspath(root)!r} does not exist; pass --data PATH "
                                f"(a folder with images/ and gt/).")

    def read(split):
        return _read_split(root, split, limit)

    return assemble(read, train_sets, val_sets, test_sets, patch_size, val_fraction, seed,
                    f"BSDS500 at {os.fspath(root)} (train {'+'.join(train_sets)}, test {'+'.join(test_sets)})")


def _read_split(root: Path, split: str, limit: int) -> list:
    files = list_images(root / "images" / split, f"BSDS500 images/{split}")
    if limit:
        files = files[:limit]
    npz_path = root / f"gt_all_{split}.npz"
    annotations = np.load(npz_path) if npz_path.exists() else None
    out = []
    for f in files:
        gt_path = root / "gt" / split / f"{f.stem}.png"
        if not gt_path.exists():
            raise ValueError(f"ground-truth map {os.fspath(gt_path)!r} is missing for image {os.fspath(f)!r}; "
                             f"add it or remove the image.")
        image = read_image(f)
        label = read_image(gt_path, mode="L").astype(np.float32) / 255.0
        if label.shape != image.shape[:2]:
            raise ValueError(f"ground-truth map {os.fspath(gt_path)!r} is {label.shape[1]}x{label.shape[0]} but "
                             f"its image is {image.shape[1]}x{image.shape[0]}; they must match.")
        if annotations is not None:
            if f.stem not in annotations:
                raise ValueError(f"{os.fspath(npz_path)!r} has no annotations for image {f.stem!r}; "
                                 f"add them or remove the file to score against gt/{split}/ alone.")
            annot = annotations[f.stem].astype(bool)
        else:
            annot = (label >= 0.5)[None]
        out.append((f.stem, image, label, annot))
    return out


# --------------------------------------------------------------- synthetic
def synthetic_shapes(num_images: int, size: int = 96, seed: int = 0, shapes=(3, 7)) -> list:
    """Random polygons and ellipses over textured backgrounds, with exact boundaries.

    Every region (background and each shape, later shapes occluding earlier
    ones) gets a colour and one texture: flat, a gradient, stripes or
    blotches, all with pixel noise. Stripes and blotches make edges inside a
    region that are not boundaries, so a detector must tell texture from
    object boundary. A pixel is a boundary when its region differs from its
    right or lower neighbour's: one-pixel-thin, exact maps.

    Returns:
        `(name, image, label, annotations)` examples (see module docstring),
        with the label in {0, 1} and one annotation per image.
    """
    from skimage.draw import ellipse, polygon

    rng = np.random.default_rng(seed)
    out = []
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    for i in range(num_images):
        regions = np.zeros((size, size), np.int32)
        for r in range(1, int(rng.integers(shapes[0], shapes[1] + 1)) + 1):
            cy, cx = rng.uniform(0, size, 2)
            if rng.random() < 0.5:
                ry, rx = rng.uniform(size / 12, size / 3, 2)
                rr, cc = ellipse(cy, cx, ry, rx, shape=regions.shape, rotation=rng.uniform(0, np.pi))
            else:
                n = int(rng.integers(3, 7))
                angles = np.sort(rng.uniform(0, 2 * np.pi, n))
                radius = rng.uniform(size / 10, size / 3, n)
                rr, cc = polygon(cy + radius * np.sin(angles), cx + radius * np.cos(angles), shape=regions.shape)
            regions[rr, cc] = r
        image = np.zeros((size, size, 3), np.float32)
        colours = _distinct_colours(rng, int(regions.max()) + 1)
        for r, colour in enumerate(colours):
            mask = regions == r
            if mask.any():
                image[mask] = colour + _texture(rng, yy, xx, size)[mask][:, None]
        image += rng.normal(0, rng.uniform(2, 10), image.shape)
        image = np.clip(image, 0, 255).astype(np.uint8)
        edges = np.zeros((size, size), bool)
        edges[:, :-1] |= regions[:, :-1] != regions[:, 1:]
        edges[:-1, :] |= regions[:-1, :] != regions[1:, :]
        out.append((f"shapes_{seed}_{i:04d}", image, edges.astype(np.float32), edges[None]))
    return out


def _distinct_colours(rng, n: int, min_distance: float = 60.0) -> list:
    colours = []
    while len(colours) < n:
        c = rng.uniform(20, 235, 3)
        if all(np.linalg.norm(c - o) >= min_distance for o in colours) or rng.random() < 0.02:
            colours.append(c)
    return colours


def _texture(rng, yy, xx, size):
    kind = rng.integers(4)
    if kind == 0:
        return np.zeros_like(yy)
    if kind == 1:
        angle = rng.uniform(0, 2 * np.pi)
        return rng.uniform(10, 40) * ((np.cos(angle) * xx + np.sin(angle) * yy) / size - 0.5)
    if kind == 2:
        angle, period = rng.uniform(0, np.pi), rng.uniform(4, 12)
        return rng.uniform(8, 25) * np.sign(np.sin(2 * np.pi * (np.cos(angle) * xx + np.sin(angle) * yy) / period))
    from scipy.ndimage import gaussian_filter
    return rng.uniform(10, 30) * np.tanh(gaussian_filter(rng.normal(0, 1, yy.shape), 2.0) * 3)


def load_synthetic(num_train: int = 300, num_val: int = 40, num_test: int = 40, size: int = 96,
                   seed: int = 0) -> DenseSplits:
    """The embedded default: generated shapes, labelled synthetic."""
    return DenseSplits(
        synthetic_shapes(num_train, size, seed), synthetic_shapes(num_val, size, seed + 1000),
        {"shapes": synthetic_shapes(num_test, size, seed + 2000)},
        f"synthetic shapes {size}x{size} (generated polygons and ellipses over textures, exact boundaries)",
        synthetic=True)
