"""Reading image files, and the splits of the dense tasks (edges, super-resolution)."""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
import warnings
from pathlib import Path

import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")  # named in messages
NOT_READ = {".eps", ".ps", ".pdf", ".xpm"}  # Pillow lists them, but reads them only with outside programs or not at all


@functools.lru_cache(maxsize=1)
def image_extensions() -> frozenset:
    """Every file extension the image reader (Pillow) decodes: a folder's images are all of them."""
    from PIL import Image

    Image.init()
    return frozenset(ext.lower() for ext, fmt in Image.registered_extensions().items()
                     if fmt in Image.OPEN and ext.lower() not in NOT_READ) | frozenset(IMAGE_EXTENSIONS)


def is_image_file(path, root=None) -> bool:
    """An image file kd_keras reads: a decodable extension, not hidden (`.DS_Store`, `._x.jpg` AppleDouble files),
    and not inside a hidden folder below `root` (`.ipynb_checkpoints/`)."""
    p = Path(path)
    parts = p.relative_to(root).parts if root is not None else (p.name,)
    return p.suffix.lower() in image_extensions() and not any(part.startswith(".") for part in parts)


@dataclasses.dataclass
class DenseSplits:
    """Images of a dense task, held in memory as numpy arrays.

    Attributes:
        train, val: training and validation examples (task-specific tuples).
        test: test set name -> list of examples.
        description: where the data came from.
        synthetic: whether the data is generated rather than real.
        skipped: training images dropped because they are smaller than the
            patch size.
    """

    train: list
    val: list
    test: dict
    description: str
    synthetic: bool = False
    skipped: int = 0
    input_shape: tuple = (None, None, 3)
    num_classes: int | None = None

    @property
    def num_train(self) -> int:
        return len(self.train)

    @property
    def num_val(self) -> int:
        return len(self.val)

    @property
    def num_test(self) -> int:
        return sum(len(v) for v in self.test.values())


_NOTED: set = set()


def read_image(path: str | os.PathLike, mode: str = "RGB") -> np.ndarray:
    """Decodes an image file to a uint8 array (`mode` "RGB": HxWx3, "L": HxW), as a viewer shows it.

    The one image reader of kd_keras: the EXIF orientation is applied (a
    phone's portrait photo stays upright); palette, CMYK, grey+alpha and
    RGBA images are converted; 16-bit, 32-bit and float images are scaled
    to 0-255 (16-bit: / 257; float in [0, 1]: * 255; others clipped), with a
    one-time note; Pillow's decompression-bomb limit stays on.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a readable image, or is above Pillow's
            pixel limit; the message names it.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image {path!r} does not exist.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.load()
                im = ImageOps.exif_transpose(im)
                if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                    im = _to_8bit(im, path)
                return np.asarray(im.convert(mode), dtype=np.uint8).copy()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ValueError(f"image {path!r} is too large to decode safely ({str(e).split('.')[0]}); downscale it "
                         f"first.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"cannot read image {path!r} ({type(e).__name__}: {str(e)[:80]}); "
                         f"replace or remove the file.") from None


def _to_8bit(im, path: str):
    """A 16-bit, 32-bit or float Pillow image as 8-bit grey, scaled to 0-255 (see `read_image`)."""
    from PIL import Image

    a = np.asarray(im, dtype=np.float64)
    if im.mode.startswith("I;16"):
        scaled, how = a / 257.0, "16-bit values divided by 257"
    elif im.mode == "F" and a.size and np.nanmin(a) >= 0.0 and np.nanmax(a) <= 1.0:
        scaled, how = a * 255.0, "float values in [0, 1] multiplied by 255"
    else:
        scaled, how = a, f"{im.mode}-mode values clipped to 0-255"
    if (im.mode, how) not in _NOTED:
        _NOTED.add((im.mode, how))
        print(f"note: {path} is an image of mode {im.mode}; read with {how} (this note is shown once per kind).")
    return Image.fromarray(np.clip(np.round(np.nan_to_num(scaled)), 0, 255).astype(np.uint8), mode="L")


def list_images(folder: str | os.PathLike, what: str) -> list[Path]:
    """The image files in `folder`, sorted; an error if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{what} folder {os.fspath(folder)!r} does not exist; check data.path.")
    files = sorted(p for p in folder.iterdir() if is_image_file(p))
    if not files:
        raise ValueError(f"{what} folder {os.fspath(folder)!r} has no images "
                         f"({', '.join(IMAGE_EXTENSIONS)}); check data.path.")
    return files


def drop_small(examples: list, patch: int, what: str, size=lambda e: e[0].shape[:2]) -> tuple[list, int]:
    """Drops examples smaller than `patch` on a side, with one warning that counts them."""
    if not patch:
        return examples, 0
    kept = [e for e in examples if min(size(e)) >= patch]
    skipped = len(examples) - len(kept)
    if skipped:
        print(f"warning: skipped {skipped} of {len(examples)} {what} images smaller than the "
              f"{patch}x{patch} patch (data.patch_size).", file=sys.stderr)
    if not kept:
        raise ValueError(f"every {what} image is smaller than data.patch_size={patch}; lower data.patch_size.")
    return kept, skipped


def split_off(examples: list, fraction: float, seed: int) -> tuple[list, list]:
    """Splits a random `fraction` off `examples` (at least one, if there are two or more)."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"data.val_fraction must be in [0, 1), got {fraction}.")
    order = np.random.default_rng(seed).permutation(len(examples))
    n_val = int(round(fraction * len(examples)))
    if fraction > 0 and len(examples) > 1:
        n_val = max(n_val, 1)
    val = [examples[i] for i in sorted(order[:n_val])]
    train = [examples[i] for i in sorted(order[n_val:])]
    return train, val


def assemble(read, train_sets, val_sets, test_sets, patch_size: int, val_fraction: float, seed: int,
             description: str) -> DenseSplits:
    """Reads the sets of each role with `read(set_name)` into `DenseSplits`.

    Training images come from `train_sets`; validation from `val_sets`, or
    `val_fraction` of the training images if none; training images smaller
    than `patch_size` are dropped with a counted warning. Examples are
    tuples whose second item is the image.
    """
    train = [e for s in train_sets for e in read(s)]
    if val_sets:
        val = [e for s in val_sets for e in read(s)]
    else:
        train, val = split_off(train, val_fraction, seed)
    train, skipped = drop_small(train, patch_size, "training", size=lambda e: e[1].shape[:2])
    test = {s: read(s) for s in test_sets}
    return DenseSplits(train, val, test, description, skipped=skipped)


def read_folders(folders, what: str) -> list[tuple[str, np.ndarray]]:
    """`(name, RGB uint8 image)` of every image in each folder (not recursive), sorted; names are `folder/stem`.

    Raises:
        FileNotFoundError: a folder does not exist.
        ValueError: a folder has no images, or an image is unreadable.
    """
    out = []
    for folder in folders:
        for f in list_images(folder, what):
            out.append((f"{Path(folder).name}/{f.stem}", read_image(f)))
    return out
