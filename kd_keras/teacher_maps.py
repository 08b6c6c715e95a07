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

Maps are stored in float16 (logits; a relative error of 1e-3), in memory or
on disk (one `.npz` per key, written atomically), keyed by the teacher's
fingerprint (`kd_keras.teacher_cache.teacher_fingerprint`) and by every
image's bytes and shape: a changed teacher or image set gets a new key.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time

import numpy as np
import tensorflow as tf

from kd_keras.teacher_cache import FINAL, STORAGES, pass_progress


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
            it must return only `"final_output"`, a map the size of its input.
        key: the teacher part of the key (`teacher_fingerprint`).
        storage: "memory", "disk", or "auto" (memory while the maps take at
            most `max_memory_mb`, else disk).
        directory: root of the disk caches.
        max_memory_mb: the "auto" limit.
        verbose: report the pass's progress through `log`.
        log: where the progress and the one-line report go.

    Example:
        >>> cache = TeacherMapsCache(distiller.teacher_outputs, teacher_fingerprint(teacher))
        >>> maps = cache.maps(images)   # float16 HxWxC logits, aligned with `images`
    """

    def __init__(self, extract, key: str, storage: str = "auto", directory: str | None = None,
                 max_memory_mb: float = 2048, verbose: int = 1, log=print):
        if storage not in STORAGES:
            raise ValueError(f"teacher maps storage must be one of {', '.join(STORAGES)}, got {storage!r}.")
        if storage == "disk" and not directory:
            raise ValueError("a disk teacher cache needs a directory; set train.teacher_cache_dir.")
        self.extract, self.teacher_key, self.storage = extract, key, storage
        self.directory, self.max_memory_mb, self.verbose, self.log = directory, max_memory_mb, verbose, log
        self._memory: dict = {}
        self.last: dict = {}  # how the last `maps` call was served, for the report

    def _path(self, key: str) -> str:
        return os.path.join(self.directory or "", f"teacher_maps_{key}.npz")

    def maps(self, images: list) -> list[np.ndarray]:
        """The teacher's final-output map of each image (float16, HxWxC), in order."""
        key = hashlib.sha256((self.teacher_key + images_fingerprint(images)).encode()).hexdigest()[:16]
        start = time.perf_counter()
        maps, computed, mode = self._memory.get(key), False, "memory"
        if maps is None and self.directory and os.path.exists(self._path(key)):
            with np.load(self._path(key)) as f:
                maps, mode = [f[f"m{i}"] for i in range(len(images))], "disk"
        if maps is None:
            maps, computed = self._compute(images), True
            mb = sum(m.nbytes for m in maps) / 2**20
            mode = "disk" if self.storage == "disk" or (self.storage == "auto" and mb > self.max_memory_mb) else "memory"
            if mode == "disk":
                self._save(key, maps)
        if mode == "memory":
            self._memory = {key: maps}
        seconds = time.perf_counter() - start
        self.last = {"key": key, "mode": mode, "computed": computed, "seconds": seconds, "examples": len(images),
                     "bytes": int(sum(m.nbytes for m in maps)), "path": self._path(key) if mode == "disk" else None}
        return maps

    def _compute(self, images: list) -> list[np.ndarray]:
        update = pass_progress(len(images), "image", self.verbose, self.log)
        out = []
        for i, image in enumerate(images):
            outputs = self.extract(tf.constant(np.asarray(image, np.float32)[None]))
            if set(outputs) != {FINAL}:
                raise ValueError(f"whole-image teacher maps store the final output only, but the losses read "
                                 f"{sorted(outputs)}; let the teacher run live (train.teacher_cache = \"off\").")
            m = np.asarray(outputs[FINAL])
            if m.ndim != 4 or m.shape[1:3] != image.shape[:2]:
                raise ValueError(f"whole-image teacher maps need an output map the size of the input, but the "
                                 f"teacher maps a {image.shape[:2]} image to {m.shape[1:]}; let the teacher run "
                                 f"live (train.teacher_cache = \"off\").")
            out.append(m[0].astype(np.float16))
            update(i + 1)
        return out

    def _save(self, key: str, maps: list) -> None:
        os.makedirs(self.directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".npz", dir=self.directory)
        os.close(fd)
        try:
            np.savez(tmp, **{f"m{i}": m for i, m in enumerate(maps)})
            os.replace(tmp, self._path(key))
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
