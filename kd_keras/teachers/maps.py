"""Teacher maps for dense tasks: the teacher runs once per whole training image, and crops carry its map.

Dense tasks (edge detection) train on random crops with flips and 90-degree
rotations, drawn anew every epoch, so a per-input cache cannot serve them
and a live teacher costs a forward pass per crop: with HED's VGG-16 that is
9 times the student's whole training step. A dense teacher's output is a
map aligned pixel for pixel with its input, so it can instead run once on
each whole training image; its map is stacked with the image and the
label, and every random crop, flip and rotation cuts and turns all three
together. No teacher runs during training.

What the student then learns differs from a live teacher's crop output in
two ways, both stated in the report:

- at crop borders, the map carries the context the crop lacks: it is the
  teacher's whole-image prediction, as at test time, where every model sees
  whole images;
- under a flip or rotation the map is turned with the image, like the
  label, not recomputed on the turned image.

The teacher outputs the losses read are stored as channels of one map:
the final output, and any named layer whose output is a map the size of
the input (HED's side outputs, which `side_kd` reads); `layout` names
them. A layer at another resolution (a backbone feature) cannot be
cropped with the image, and the teacher then runs live.

With `scales` and `flip`, each image's map is the teacher's multi-scale
test (HED, Xie & Tu 2015; RCF, Liu et al. 2017): the teacher runs on the
image resized by each scale, and on its mirror image, each map is resized
(and flipped) back, and their sigmoid probabilities are averaged. The
stored map is the logit of that average.

Maps are stored in float16 (logits; a relative error of 1e-3), in memory or
on disk (one `.npz` per key, written atomically), keyed by the teacher's
fingerprint (`kd_keras.teachers.cache.teacher_fingerprint`), by the scales
and flip, and by every image's bytes and shape: a changed teacher or image
set gets a new key.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time

import numpy as np
import tensorflow as tf

from kd_keras.teachers.cache import FINAL, STORAGES, pass_progress


class MapShapeError(ValueError):
    """A teacher output that is not a map the size of its input, so crops cannot carry it.

    `reason` is the sentence without the fix, for a report that falls back
    to a live teacher.
    """

    def __init__(self, reason: str):
        super().__init__(f"{reason}; let the teacher run live (train.teacher_cache = \"off\").")
        self.reason = reason


def split_maps(maps, layout: list) -> dict:
    """`{name: channels}` of stacked maps (..., C), by `TeacherMapsCache.layout`."""
    out, start = {}, 0
    for name, channels in layout:
        out[name] = maps[..., start: start + channels]
        start += channels
    return out


def images_fingerprint(images: list) -> str:
    """A hex digest of a list of images: each one's dtype, shape and bytes, in order."""
    h = hashlib.sha256()
    for image in images:
        a = np.ascontiguousarray(image)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


class TeacherMapsCache:
    """Computes a dense teacher's output map for each whole image once and keeps it.

    Args:
        extract: `fn(x_batch) -> {name: tensor}`, the teacher's
            inference-mode forward pass (`kd_keras.Distiller.teacher_outputs`);
            every output must be a map the size of its input.
        key: the teacher part of the key (`teacher_fingerprint`).
        storage: "memory", "disk", or "auto" (memory while the maps take at
            most `max_memory_mb`, else disk).
        directory: root of the disk caches.
        max_memory_mb: the "auto" limit.
        verbose: report the pass's progress through `log`.
        log: where the progress and the one-line report go.
        scales: the teacher's input scales, averaged (`(1.0,)`: one pass).
        flip: also average the teacher's map of each mirrored input.

    Example:
        >>> cache = TeacherMapsCache(distiller.teacher_outputs, teacher_fingerprint(teacher))
        >>> maps = cache.maps(images)   # float16 HxWxC logits, aligned with `images`
    """

    def __init__(self, extract, key: str, storage: str = "auto", directory: str | None = None,
                 max_memory_mb: float = 2048, verbose: int = 1, log=print, scales=(1.0,), flip: bool = False):
        scales = tuple(float(x) for x in scales)
        if not scales or not all(0.0 < x <= 4.0 for x in scales):
            raise ValueError(f"teacher map scales must be a non-empty list of numbers in (0, 4], got {list(scales)!r}.")
        if storage not in STORAGES:
            raise ValueError(f"teacher maps storage must be one of {', '.join(STORAGES)}, got {storage!r}.")
        if storage == "disk" and not directory:
            raise ValueError("a disk teacher cache needs a directory; set train.teacher_cache_dir.")
        self.extract, self.teacher_key, self.storage = extract, key, storage
        self.directory, self.max_memory_mb, self.verbose, self.log = directory, max_memory_mb, verbose, log
        self.scales, self.flip = scales, bool(flip)
        self._memory: dict = {}
        self.last: dict = {}  # how the last `maps` call was served, for the report
        self.layout: list = []  # [(output name, channels)] of the last maps, in channel order

    def _path(self, key: str) -> str:
        return os.path.join(self.directory or "", f"teacher_maps_{key}.npz")

    def maps(self, images: list) -> list[np.ndarray]:
        """The teacher's maps of each image (float16, HxWxC: the outputs of `layout` stacked), in order."""
        tta = "" if self.tta == "single scale" else self.tta  # single-scale keys as before
        key = hashlib.sha256((self.teacher_key + tta + images_fingerprint(images)).encode()).hexdigest()[:16]
        start = time.perf_counter()
        maps, layout = self._memory.get(key, (None, None))
        computed, mode = False, "memory"
        if maps is None and self.directory and os.path.exists(self._path(key)):
            with np.load(self._path(key)) as f:
                maps, mode = [f[f"m{i}"] for i in range(len(images))], "disk"
                layout = ([(str(n), int(c)) for n, c in f["layout"]] if "layout" in f
                          else [(FINAL, maps[0].shape[-1])])  # caches written before named layers
        if maps is None:
            maps, computed = self._compute(images), True
            layout = self.layout
            mb = sum(m.nbytes for m in maps) / 2**20
            mode = "disk" if self.storage == "disk" or (self.storage == "auto" and mb > self.max_memory_mb) else "memory"
            if mode == "disk":
                self._save(key, maps, layout)
        if mode == "memory":
            self._memory = {key: (maps, layout)}
        self.layout = layout
        seconds = time.perf_counter() - start
        self.last = {"key": key, "mode": mode, "tta": self.tta, "computed": computed, "seconds": seconds,
                     "examples": len(images), "bytes": int(sum(m.nbytes for m in maps)),
                     "path": self._path(key) if mode == "disk" else None}
        return maps

    @property
    def tta(self) -> str:
        """How each map was made, for the key and the report: "single scale" or e.g. "scales 0.5, 1, 1.5 + flip"."""
        if self.scales == (1.0,) and not self.flip:
            return "single scale"
        return f"scales {', '.join(f'{x:g}' for x in self.scales)}{' + flip' if self.flip else ''}"

    def _compute(self, images: list) -> list[np.ndarray]:
        update = pass_progress(len(images), "image", self.verbose, self.log)
        out = []
        for i, image in enumerate(images):
            if self.tta == "single scale":
                out.append(self._map(np.asarray(image, np.float32))[0].astype(np.float16))
            else:
                out.append(self._averaged(np.asarray(image, np.float32)).astype(np.float16))
            update(i + 1)
        return out

    def _averaged(self, image: np.ndarray) -> np.ndarray:
        """The logit of the mean sigmoid probability over the scales (and mirror images), at the image's size."""
        h, w = image.shape[:2]
        total = 0.0
        for scale in self.scales:
            size = (max(1, round(h * scale)), max(1, round(w * scale)))
            x = image if size == (h, w) else tf.image.resize(image, size, antialias=True).numpy()
            for mirrored in (False, True) if self.flip else (False,):
                m = self._map(x[:, ::-1] if mirrored else x)
                m = m[:, :, ::-1] if mirrored else m
                p = tf.sigmoid(tf.constant(m, tf.float32))
                total += tf.image.resize(p, (h, w)).numpy()[0] if size != (h, w) else p.numpy()[0]
        p = np.clip(total / (len(self.scales) * (2 if self.flip else 1)), 1e-6, 1 - 1e-6)
        return np.log(p) - np.log1p(-p)

    def _map(self, image: np.ndarray) -> np.ndarray:
        """The teacher's outputs for one image, stacked as a 1xHxWxC array, checked; sets `layout`."""
        outputs = self.extract(tf.constant(np.ascontiguousarray(image)[None]))
        names = [FINAL] * (FINAL in outputs) + sorted(n for n in outputs if n != FINAL)
        parts = [np.asarray(outputs[n]) for n in names]
        for name, m in zip(names, parts):
            if m.ndim != 4 or m.shape[1:3] != image.shape[:2]:
                raise MapShapeError(f"whole-image teacher maps need outputs the size of the input, but the "
                                    f"teacher's {name!r} maps a {image.shape[:2]} image to {m.shape[1:]}")
        self.layout = [(n, m.shape[-1]) for n, m in zip(names, parts)]
        return np.concatenate(parts, axis=-1)

    def _save(self, key: str, maps: list, layout: list) -> None:
        os.makedirs(self.directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".npz", dir=self.directory)
        os.close(fd)
        try:
            np.savez(tmp, layout=np.array(layout, dtype=object).astype(str), **{f"m{i}": m for i, m in enumerate(maps)})
            os.replace(tmp, self._path(key))
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
