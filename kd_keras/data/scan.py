"""Image folders read once before training, so that no bad file surfaces in the middle of a run.

`scan` opens every file with Pillow, checks its pixel count against
`data.max_image_pixels` before decoding it (a decompression bomb or a
20,000-pixel scan would fill the memory), decodes it in full (a truncated
JPEG or a text file named `.jpg` is found here, not inside `tf.data` in
epoch 3), and records its size and mode. The rules that follow from it:

- **bad files** (corrupt, or over the pixel cap) are refused, a few named
  and all counted, unless `data.skip_bad_images` (`--skip-bad-images`):
  then they are left out and counted in the report;
- **channels**: grey if most images are grey, else RGB; the others are
  converted (a colour photo among grey scans becomes grey, a grey one among
  colour photos RGB);
- **size**: every image is resized to one square side, `data.image_size`
  when set, else the most common longer side (one huge image does not set
  the size of the set).

A folder of more than 2,000 images prints its progress every 10 seconds.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import os
import time
import warnings

GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
MAX_IMAGE_PIXELS = 89_478_485  # Pillow's own decompression-bomb threshold (~9,459 px square)


@dataclasses.dataclass
class Scan:
    """What `scan` found: usable files, bad ones with the reason, and the set's channels and common side."""

    good: list
    bad: list  # (file, why)
    grey: int
    sides: collections.Counter

    @property
    def channels(self) -> int:
        return 1 if self.grey * 2 > len(self.good) else 3

    @property
    def side(self) -> int:
        """The most common longer side (of equals, the larger)."""
        return max(self.sides.items(), key=lambda kv: (kv[1], kv[0]))[0] if self.sides else 0

    def notes(self, image_size: int = 0) -> list[str]:
        """One sentence per rule that changed images (mixed modes, mixed sizes)."""
        out, n = [], len(self.good)
        if 0 < self.grey < n:
            majority = "grey" if self.channels == 1 else "RGB"
            out.append(f"{self.grey:,} of {n:,} images are grey and {n - self.grey:,} colour: all are read as "
                       f"{majority} (the majority)")
        if len(self.sides) > 1:
            lo, hi = min(self.sides), max(self.sides)
            to = (f"{image_size}x{image_size} (data.image_size)" if image_size else
                  f"{self.side}x{self.side}, the most common longer side; set data.image_size to choose")
            out.append(f"images are of {len(self.sides)} sizes (longer side {lo} to {hi} px): all are resized to {to}")
        return out


def inspect_file(path: str, max_pixels: int, convert: str = ""):
    """`(why_bad, longer_side, grey)`: `why_bad` is "" for a usable image. With `convert` (a Pillow mode), a fourth
    item: the decoded image in that mode (None if bad), so a loader decodes each file once."""
    from PIL import Image

    image = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the cap below is the rule
            with Image.open(path) as im:
                w, h = im.size
                if w * h > max_pixels:
                    why = f"too large, {w}x{h} = {w * h / 1e6:.0f} MP over data.max_image_pixels"
                    return (why, 0, False, None) if convert else (why, 0, False)
                grey = im.mode in GREY_MODES
                im.load()
                if convert:
                    image = im.convert(convert)
    except Image.DecompressionBombError:
        return ("too large for Pillow", 0, False, None) if convert else ("too large for Pillow", 0, False)
    except (OSError, ValueError, SyntaxError, EOFError) as e:  # Pillow's errors for truncated or non-image files
        why = f"corrupt: {(str(e).splitlines() or [type(e).__name__])[0][:60]}"
        return (why, 0, False, None) if convert else (why, 0, False)
    return ("", max(w, h), grey, image) if convert else ("", max(w, h), grey)


def scan(files, max_pixels: int = MAX_IMAGE_PIXELS, log=print, what: str = "images", every: float = 10.0,
         large: int = 2000) -> Scan:
    """Reads every file once (in threads: Pillow decodes outside the GIL); see the module docstring.

    A list of more than `large` files logs its progress every `every` seconds.
    """
    files = list(files)
    good, bad, grey, sides = [], [], 0, collections.Counter()
    start = last = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for k, (path, (why, side, is_grey)) in enumerate(zip(files, pool.map(lambda f: inspect_file(f, max_pixels),
                                                                           files)), start=1):
            if why:
                bad.append((path, why))
            else:
                good.append(path)
                grey += is_grey
                sides[side] += 1
            now = time.monotonic()
            if len(files) > large and now - last >= every:
                last = now
                log(f"   checking {what}: {k:,} of {len(files):,} read ({now - start:.0f} s)")
    return Scan(good, bad, grey, sides)


def refusal(bad: list, total: int, where: str) -> str:
    """The one line that refuses bad files: a few named with their reason, all counted, and the fixes."""
    shown = "; ".join(f"{os.path.basename(p)} ({why})" for p, why in bad[:3]) + (" ..." if len(bad) > 3 else "")
    return (f"{where}: {len(bad):,} of {total:,} image files cannot be used ({shown}); remove or replace them, "
            f"or pass --skip-bad-images (data.skip_bad_images = true) to train without them.")
