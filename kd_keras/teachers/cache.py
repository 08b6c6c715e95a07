"""Teacher-output cache: run the frozen teacher once, feed its outputs through the batch.

A frozen teacher in inference mode maps a fixed input to a fixed output. When
the training inputs do not change from epoch to epoch (no random
augmentation), its outputs can be computed in one pass and zipped with the
examples; `kd_keras.Distiller` then reads them from `(x, y, teacher_outputs)`
batches and the teacher never runs during training. With random
augmentation the teacher must see each epoch's augmented view
("consistent teaching", Beyer et al. 2022): `kd_keras.teachers.views`
stores K replayable views per image with the teacher's outputs, and
augmentation it cannot replay runs the teacher live.

The cache lives in memory, or on disk (`tf.data.Dataset.save`, TensorFlow's
own snapshot format) for outputs that do not fit. It is keyed by a fingerprint of the teacher (architecture, dtype
policy, every weight), of the layers read, and of the dataset (every input
and label, in order): a changed teacher or dataset gets a new key, and so a
new cache, never a stale one.

Reference:
    Shen, Xing. A Fast Knowledge Distillation Framework for Visual
    Recognition (FKD). ECCV 2022. https://arxiv.org/abs/2112.01528
    (caches soft labels instead of re-running the teacher).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import sys
import time

import keras
import numpy as np
import tensorflow as tf

FINAL = "final_output"
STORAGES = ("auto", "memory", "disk")


def teacher_fingerprint(teacher: keras.Model, layers=(FINAL,)) -> str:
    """A hex digest of the teacher's class, config, dtype policy, weights and the layers read.

    A file teacher counts by its file's sha256, not by where the file is.
    """
    h = hashlib.sha256()
    h.update(type(teacher).__name__.encode())
    try:
        h.update(json.dumps(_without_file_paths(teacher.get_config()), sort_keys=True, default=str).encode())
    except (NotImplementedError, TypeError):
        h.update(teacher.name.encode())
    h.update(str(teacher.dtype_policy.name).encode())
    h.update(json.dumps(sorted(layers)).encode())
    for w in teacher.weights:
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(w))
        h.update(w.path.encode() if hasattr(w, "path") else w.name.encode())
        h.update(str(value.dtype).encode() + str(value.shape).encode())
        h.update(value.tobytes())
    return h.hexdigest()


def _without_file_paths(config):
    """The config without the location of a teacher file (`kd_keras.FileTeacher`): its sha256 names its content.

    A moved or copied teacher file then keeps its cached outputs.
    """
    if isinstance(config, dict):
        return {k: _without_file_paths(v) for k, v in config.items() if not (k == "path" and "sha256" in config)}
    if isinstance(config, (list, tuple)):
        return [_without_file_paths(v) for v in config]
    return config


def dataset_fingerprint(dataset: tf.data.Dataset) -> tuple[str, int]:
    """A hex digest of every element of an unbatched dataset, in order, and its length."""
    h, n = hashlib.sha256(), 0
    for element in dataset.batch(1024).as_numpy_iterator():
        for part in keras.tree.flatten(element):
            part = np.ascontiguousarray(part)
            h.update(str(part.dtype).encode() + str(part.shape[1:]).encode())
            h.update(part.tobytes())
        n += len(keras.tree.flatten(element)[0])
    return h.hexdigest(), n


def pass_progress(n: int, unit: str, verbose: int, log):
    """`update(done)` for a teacher pass over `n` items: a live bar on a terminal, else a line per tenth.

    In a log file Keras' Progbar would redraw endlessly, so lines are written instead.
    """
    bar = keras.utils.Progbar(n, unit_name=unit) if verbose and sys.stdout.isatty() else None
    tenths = 0

    def update(done: int) -> None:
        nonlocal tenths
        if bar is not None:
            bar.update(done)
        elif verbose and done * 10 // max(n, 1) > tenths:
            tenths = done * 10 // max(n, 1)
            log(f"   teacher pass: {done}/{n} {unit}s ({100 * done // max(n, 1)}%)")

    return update


class TeacherOutputCache:
    """Computes a teacher's outputs for a dataset once and serves them per example.

    Args:
        extract: `fn(x_batch) -> {name: tensor}`, the teacher forward pass in
            inference mode; `kd_keras.Distiller.teacher_outputs` is one.
        key: the teacher part of the key (`teacher_fingerprint`).
        storage: "memory", "disk", or "auto" (memory while the outputs take
            at most `max_memory_mb`, else disk).
        directory: root of the disk caches; each key gets a sub-folder.
        batch_size: batch of the one teacher pass.
        max_memory_mb: the "auto" limit.
        verbose: show the progress of the pass (a bar on a terminal,
            a line per tenth through `log` otherwise).
        log: where the one-line report goes.

    Example:
        >>> cache = TeacherOutputCache(distiller.teacher_outputs, teacher_fingerprint(teacher))
        >>> outputs = cache.outputs(train_examples)   # unbatched, aligned with train_examples
        >>> ds = tf.data.Dataset.zip((train_examples, outputs))  # then shuffle and batch
    """

    def __init__(self, extract, key: str, storage: str = "auto", directory: str | None = None,
                 batch_size: int = 256, max_memory_mb: float = 2048, verbose: int = 1, log=print):
        if storage not in STORAGES:
            raise ValueError(f"teacher cache storage must be one of {', '.join(STORAGES)}, got {storage!r}.")
        if storage == "disk" and not directory:
            raise ValueError("a disk teacher cache needs a directory; set train.teacher_cache_dir.")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"teacher cache batch_size must be a positive integer, got {batch_size!r}.")
        self.extract, self.teacher_key, self.storage = extract, key, storage
        self.directory, self.batch_size, self.max_memory_mb = directory, batch_size, max_memory_mb
        self.verbose, self.log = verbose, log
        self._memory: dict = {}
        self.last = {}  # how the last `outputs` call was served, for the report

    def outputs(self, dataset: tf.data.Dataset) -> tf.data.Dataset:
        """Unbatched teacher outputs (a dict per example), aligned with `dataset`.

        Args:
            dataset: unbatched `(x, ...)` examples in a fixed order; only `x`
                goes to the teacher.

        Returns:
            A dataset of `{name: tensor}` with one element per example.
        """
        data_key, n = dataset_fingerprint(dataset)
        key = hashlib.sha256((self.teacher_key + data_key).encode()).hexdigest()[:16]
        start = time.perf_counter()
        if key in self._memory:
            self.last = {"mode": "memory", "key": key, "examples": n, "computed": False, "seconds": 0.0}
            return self._memory[key]
        folder = os.path.join(self.directory, key) if self.directory else None
        if folder and os.path.isdir(folder):  # complete: written as .partial, then renamed
            ds = tf.data.Dataset.load(folder).unbatch()
            self.last = {"mode": "disk", "key": key, "examples": n, "computed": False, "path": folder,
                         "seconds": time.perf_counter() - start}
            self.log(f"   teacher outputs: read from the disk cache {folder} (key {key})")
            return ds
        mode = self.storage
        if mode == "auto":
            mode = "memory" if self._estimate_mb(dataset, n) <= self.max_memory_mb or not folder else "disk"
        if mode == "memory":
            ds = self._compute_in_memory(dataset, n)
            self._memory[key] = ds
        else:
            ds = self._compute_to_disk(dataset, n, folder)
        seconds = time.perf_counter() - start
        self.last = {"mode": mode, "key": key, "examples": n, "computed": True, "seconds": seconds}
        if mode == "disk":
            self.last["path"] = folder
        where = "in memory" if mode == "memory" else f"on disk in {folder}"
        self.log(f"   teacher outputs: computed once for {n} examples in {seconds:.1f} s, cached {where} (key {key})")
        return ds

    # ------------------------------------------------------------ internals
    def _batches(self, dataset, n):
        progress = pass_progress(n, "example", self.verbose, self.log)
        done = 0
        for element in dataset.batch(self.batch_size):
            x = element[0] if isinstance(element, tuple) else element
            out = {k: np.asarray(keras.ops.convert_to_numpy(v), np.float32) for k, v in self.extract(x).items()}
            done += len(next(iter(out.values())))
            progress(done)
            yield out

    def _estimate_mb(self, dataset, n) -> float:
        first = next(iter(dataset.take(1).batch(1)))
        x = first[0] if isinstance(first, tuple) else first
        per_example = sum(int(np.prod(v.shape[1:])) for v in self.extract(x).values()) * 4
        return per_example * n / 2**20

    def _compute_in_memory(self, dataset, n):
        parts: dict = {}
        for out in self._batches(dataset, n):
            for k, v in out.items():
                parts.setdefault(k, []).append(v)
        arrays = {k: np.concatenate(v) for k, v in parts.items()}
        return tf.data.Dataset.from_tensor_slices(arrays)

    def _compute_to_disk(self, dataset, n, folder):
        batches = self._batches(dataset, n)
        first = next(batches)
        spec = {k: tf.TensorSpec((None, *v.shape[1:]), tf.float32) for k, v in first.items()}
        tmp = folder + ".partial"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(self.directory, exist_ok=True)
        tf.data.Dataset.from_generator(lambda: itertools.chain([first], batches), output_signature=spec).save(tmp)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)  # a killed pass leaves only a .partial folder, never a short cache
        return tf.data.Dataset.load(folder).unbatch()
