"""Super-resolution data: folders of high-resolution images, or `skimage.data`.

An example is `(name, hr uint8 HxWx3)`. Low-resolution inputs are made from
it on the fly (see `kd_keras.tasks.super_resolution.downscale`). Grey images
are read as RGB.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from kd_keras.data.images import DenseSplits, assemble, drop_small, list_images, read_image, split_off

# Photographs bundled inside scikit-image (no download). The three colour
# photographs held out for testing play the part of Set5.
SKIMAGE_TRAIN = ("camera", "coins", "moon", "rocket", "hubble_deep_field", "immunohistochemistry", "brick",
                 "grass", "gravel", "clock", "page", "text", "retina")
SKIMAGE_TEST = ("astronaut", "chelsea", "coffee")


def load_sr_folders(path, train_sets=("T91",), val_sets=(), test_sets=("Set5", "Set14"), patch_size: int = 0,
                    val_fraction: float = 0.1, seed: int = 0, limit: int = 0) -> DenseSplits:
    """Reads HR image folders under `path`: one sub-folder per set (T91, Set5, ...).

    Args:
        path: the root holding the set folders.
        train_sets: sets whose images train (random patches).
        val_sets: sets for validation; with none, `val_fraction` of the
            training images is held out.
        test_sets: sets scored one by one, on whole images.
        patch_size: HR training patch side; smaller training images are
            skipped with a warning.
        limit: keep at most this many images per set (0: all).

    Raises:
        FileNotFoundError: the root or a set folder does not exist.
        ValueError: an unreadable image (named).
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"super-resolution folder {os.fspath(root)!r} does not exist; pass --data PATH "
                                f"(a folder with one sub-folder of HR images per set, e.g. T91/, Set5/).")

    def read(name):
        files = list_images(root / name, f"image set {name!r}")
        return [(f.stem, read_image(f)) for f in (files[:limit] if limit else files)]

    return assemble(read, train_sets, val_sets, test_sets, patch_size, val_fraction, seed,
                    f"HR images at {os.fspath(root)} (train {'+'.join(train_sets)}, test {', '.join(test_sets)})")


def load_skimage(patch_size: int = 0, val_fraction: float = 0.1, seed: int = 0, limit: int = 0) -> DenseSplits:
    """The embedded default: photographs bundled in `skimage.data`."""
    import skimage.data

    def get(name):
        image = np.asarray(getattr(skimage.data, name)())
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=-1)
        return name, np.ascontiguousarray(image[..., :3]).astype(np.uint8)

    names = SKIMAGE_TRAIN[:limit] if limit else SKIMAGE_TRAIN
    train, val = split_off([get(n) for n in names], val_fraction, seed)
    train, skipped = drop_small(train, patch_size, "training", size=lambda e: e[1].shape[:2])
    return DenseSplits(train, val, {"skimage": [get(n) for n in SKIMAGE_TEST]},
                       f"skimage.data photographs ({len(names)} for training, "
                       f"{len(SKIMAGE_TEST)} held out for test: {', '.join(SKIMAGE_TEST)})", skipped=skipped)
