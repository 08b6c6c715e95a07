"""Augmented KD without a live teacher: a cache of replayable augmented views.

Before training, each training image gets K augmented views whose
parameters (crop offsets, flip, translation; for MixUp / CutMix the partner
image, its own crop / flip / translation, and the mixing weight or box) are
drawn from a seeded stateless generator. The frozen teacher runs once on
every view, and its outputs are stored beside the parameters. In training,
epoch e shows image i its view (o_i + e) mod K, o_i a seeded offset per
image: with K >= the epochs (`train.teacher_views = "epochs"`, the default)
every epoch is a view the image has not shown before, as in FKD, which
stores one crop per image per epoch; a smaller K cycles. The student's
input is rendered again from the stored parameters by the same code that
rendered the teacher's, so it is the very view the teacher labelled
(consistent teaching), and no teacher runs during training.

For many classes the teacher's logits can be stored as the top-k
log-probabilities; the other classes then share the remaining probability
mass evenly, as FKD does with its top-k soft labels.

References:
    Shen, Xing. A Fast Knowledge Distillation Framework for Visual
    Recognition (FKD). ECCV 2022. https://arxiv.org/abs/2112.01528
    Yun et al. Re-labeling ImageNet: from Single to Multi-Labels, from
    Global to Localized Labels (ReLabel). CVPR 2021.
    https://arxiv.org/abs/2101.05022
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from kd_keras.data.augment import AugmentConfig, apply_params, draw_params, mix_params
from kd_keras.teachers.cache import FINAL, pass_progress

STORAGES = ("auto", "memory", "disk")
RUNTIMES = ("keras", "tflite_int8")  # where the views pass runs the teacher
META = "kd_keras_views.json"
PER_EPOCH = "epochs"  # train.teacher_views: one stored view per image per epoch


def resolve_views(views, epochs: int) -> int:
    """K from `train.teacher_views`: `"epochs"` is one view per epoch of the schedule; an integer >= 1 is K."""
    if views == PER_EPOCH:
        return max(int(epochs), 1)
    if isinstance(views, bool) or not isinstance(views, int) or views < 1:
        raise ValueError(f"train.teacher_views must be \"{PER_EPOCH}\" (one stored view per image per epoch) or an "
                         f"integer >= 1 (views per image, cycled when fewer than the epochs), got {views!r}.")
    return views


def view_offsets(n: int, views: int, seed: int) -> np.ndarray:
    """o_i, the view image i shows in epoch 0 (epoch e shows (o_i + e) mod K); seeded, `[n]` int32."""
    return tf.random.stateless_uniform([n], tf.constant([seed, 3 * views + 1], tf.int64), 0, views,
                                       dtype=tf.int32).numpy()


def draw_views(cfg: AugmentConfig, image_shape, n: int, views: int, seed: int) -> dict:
    """The parameters of `views` augmented views of each of `n` images, as `[n, views, ...]` numpy arrays.

    View k of image i depends only on (`seed`, k, i, n): the same call
    always draws the same views.
    """
    geometric = dataclasses.replace(cfg, mixup_alpha=0.0, cutmix_alpha=0.0)
    per_view = []
    for k in range(views):
        p = draw_params(cfg, image_shape, n, tf.constant([seed, k], tf.int64))
        if cfg.mixes:
            p["partner"] = tf.random.stateless_uniform([n], tf.constant([seed, views + k], tf.int64), 0, n,
                                                       dtype=tf.int32)
            partner = draw_params(geometric, image_shape, n, tf.constant([seed, 2 * views + k], tf.int64))
            p.update({f"partner_{name}": v for name, v in partner.items()})
        per_view.append({name: v.numpy() for name, v in p.items()})
    return {name: np.stack([p[name] for p in per_view], axis=1) for name in per_view[0]}


def render_views(images, labels, view: dict, cfg: AugmentConfig, table=None):
    """The augmented views of a batch from stored parameters; deterministic.

    Args:
        images: `[B, H, W, C]` raw images.
        labels: `[B, classes]` one-hot labels.
        view: one view's parameters per image (`[B, ...]`).
        cfg: the augmentation the views were drawn for.
        table: `(images, int labels)` of the whole training set, for the
            mixing partners (needed when `cfg` mixes).

    Returns:
        `(images, labels)`; labels are mixed like the images.
    """
    x = apply_params(images, view, cfg)
    if not cfg.mixes:
        return x, labels
    partner = view["partner"]
    px = apply_params(tf.gather(table[0], partner), {k[8:]: v for k, v in view.items() if k.startswith("partner_")},
                      cfg)
    py = tf.one_hot(tf.gather(table[1], partner), tf.shape(labels)[-1], dtype=labels.dtype)
    return mix_params(x, labels, px, py, view)


def expand_topk(values, indices, num_classes: int):
    """Dense log-probabilities from the top-k ones; the other classes share the rest of the mass evenly (FKD)."""
    k = values.shape[-1]
    rest = tf.maximum(1.0 - tf.reduce_sum(tf.exp(values), -1, keepdims=True), 1e-8)
    fill = tf.math.log(rest / float(max(num_classes - k, 1)))
    hot = tf.one_hot(indices, num_classes, dtype=values.dtype)  # [..., k, classes]
    return tf.reduce_sum(hot * values[..., None], -2) + (1.0 - tf.reduce_sum(hot, -2)) * fill


class StoredViews:
    """Stored views of a training set, aligned with its examples, and how to replay them.

    Attributes:
        records: a dataset of one `{"view": {...}, "teacher": {...}, "offset": o_i}` per
            example, each entry of "view" and "teacher" `[views, ...]`.
        info: what the pass did (mode, key, views, seconds, bytes per image, path).
        epoch: the epoch the next pass over the pipeline shows (a variable the pipeline
            counts up at the start of each pass; `epoch_callback()` sets it when a fit
            starts or resumes).
    """

    def __init__(self, records, cfg: AugmentConfig, num_classes: int, views: int, table=None, info=None):
        self.records, self.cfg, self.num_classes, self.views = records, cfg, num_classes, views
        self.table, self.info = table, dict(info or {})
        with tf.init_scope():
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="views_epoch")

    def start_epoch(self):
        """The epoch of a pass that starts now (run once per pass by the pipeline): counts up."""
        return self.epoch.assign_add(1) - 1

    def epoch_callback(self, passes_per_epoch: float = 1.0):
        """A Keras callback that points the views at the epoch a fit starts from (0, or a resumed epoch).

        `passes_per_epoch`: passes over these views' images in one Keras epoch, when an epoch is a number of
        steps rather than one pass (a transfer set's student: its epochs count passes over the labelled images).
        """
        return ViewsEpoch(self, passes_per_epoch)

    def view_index(self, offset, epoch):
        """The view each image shows in `epoch`: `(o_i + epoch) mod K`."""
        return tf.cast((tf.cast(offset, tf.int64) + tf.cast(epoch, tf.int64)) % self.views, tf.int32)

    def replay(self, images, labels, record, epoch):
        """Renders each image's view for `epoch`: `(images, labels, teacher_outputs)`."""
        k = self.view_index(record["offset"], epoch)
        pick = {part: tf.nest.map_structure(lambda v: tf.gather(v, k, axis=1, batch_dims=1), record[part])
                for part in ("view", "teacher")}
        x, y = render_views(images, labels, pick["view"], self.cfg, self.table)
        teacher = dict(pick["teacher"])
        if "topk_values" in teacher:
            teacher[FINAL] = expand_topk(teacher.pop("topk_values"), teacher.pop("topk_indices"), self.num_classes)
        return x, y, teacher


class ViewsEpoch(keras.callbacks.Callback):
    """Sets a `StoredViews`' epoch at the first epoch of a fit (0, or the epoch a resumed fit continues from);
    later epochs count up in the pipeline itself, whose next pass Keras opens as an epoch ends."""

    def __init__(self, stored: StoredViews, passes_per_epoch: float = 1.0):
        super().__init__()
        self.stored, self._started, self.passes_per_epoch = stored, False, passes_per_epoch

    def on_train_begin(self, logs=None):
        self._started = False

    def on_epoch_begin(self, epoch, logs=None):
        if not self._started:
            self.stored.epoch.assign(int(epoch * self.passes_per_epoch))
            self._started = True


class TeacherViewsCache:
    """Runs a teacher once on K stored augmented views of each training image.

    Args:
        extract: `fn(x_batch) -> {name: tensor}`, the teacher's inference
            forward pass (`kd_keras.Distiller.teacher_outputs`).
        key: the teacher part of the key (`teacher_fingerprint`).
        augment: the recipe's augmentation; it must be replayable
            (`AugmentConfig.replay_blocker` empty).
        image_shape: `(H, W, C)`.
        num_classes: classes of the one-hot labels.
        views: K, the views per image (>= 1; one per epoch for distinct views every epoch).
        seed: seed of the views (not of training: runs with other training
            seeds share one cache).
        topk: store the teacher's top-k log-probabilities instead of all
            logits (0: all; ignored when the classes are no more than k).
        storage: "auto" (written to disk when a directory is given, so later
            runs reuse it, and served from memory while it fits in
            `max_memory_mb`), "memory" (never on disk) or "disk" (served
            from disk).
        directory: root of the disk caches; each key gets a sub-folder.
        batch_size: images per teacher call.
        max_memory_mb: the largest cache served from memory.
        verbose: show the pass's progress.
        log: where the one-line reports go.
        runtime: where the pass runs the teacher: "keras" (the teacher
            itself), or "tflite_int8" (converted to a full-integer TFLite
            model calibrated on the first training views, run by LiteRT: faster
            on CPU, but its logits differ; refused for a teacher
            that the converter or LiteRT cannot run, or whose feature maps
            are distilled).
        teacher: the Keras teacher, for `runtime="tflite_int8"`.

    Example:
        >>> cache = TeacherViewsCache(d.teacher_outputs, teacher_fingerprint(teacher, d.teacher_layers),
        ...                           AugmentConfig(flip=True, crop_padding=4), (32, 32, 3), 10, views=16)
        >>> stored = cache.views(train_examples)   # unbatched (image, int label), fixed order
        >>> ds = classification_pipeline(train_examples, 10, (32, 32, 3), 128, True, teacher_views=stored)
    """

    def __init__(self, extract, key: str, augment: AugmentConfig, image_shape, num_classes: int, views: int = 16,
                 seed: int = 0, topk: int = 0, storage: str = "auto", directory: str | None = None,
                 batch_size: int = 256, max_memory_mb: float = 2048, verbose: int = 1, log=print,
                 runtime: str = "keras", teacher=None):
        if isinstance(views, bool) or not isinstance(views, int) or views < 1:
            raise ValueError(f"train.teacher_views must be an integer >= 1 (views per image), got {views!r}.")
        if isinstance(topk, bool) or not isinstance(topk, int) or topk < 0:
            raise ValueError(f"train.teacher_views_topk must be an integer >= 0 (0: all logits), got {topk!r}.")
        if augment.replay_blocker:
            raise ValueError(f"train.teacher_cache = \"views\" cannot replay this augmentation: "
                             f"{augment.replay_blocker}; set train.teacher_cache = \"auto\" (the teacher then "
                             f"runs live) or turn data.augment.randaugment off.")
        if storage not in STORAGES:
            raise ValueError(f"views cache storage must be one of {', '.join(STORAGES)}, got {storage!r}.")
        if runtime not in RUNTIMES:
            raise ValueError(f"train.teacher_views_runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}.")
        if storage == "disk" and not directory:
            raise ValueError("a disk views cache needs a directory; set train.teacher_cache_dir.")
        self.extract, self.teacher_key, self.augment = extract, key, augment
        self.image_shape, self.num_classes = tuple(image_shape), num_classes
        self.k, self.seed, self.topk, self.storage, self.directory = views, seed, topk, storage, directory
        self.batch_size, self.max_memory_mb, self.verbose, self.log = batch_size, max_memory_mb, verbose, log
        self.runtime, self.teacher = runtime, teacher
        self._memory: dict = {}
        self.last: dict = {}

    def key(self, data_key: str) -> str:
        parts = {"teacher": self.teacher_key, "data": data_key, "augment": self.augment.replay_config(),
                 "views": self.k, "seed": self.seed, "topk": self._topk(), "shape": list(self.image_shape),
                 "classes": self.num_classes, "format": 2,
                 **({"runtime": self.runtime} if self.runtime != "keras" else {})}
        return "views-" + hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]

    def views(self, dataset: tf.data.Dataset) -> StoredViews:
        """Stored views for `dataset` (unbatched `(image, int label)` in a fixed order): read, or computed once."""
        start = time.perf_counter()
        images, labels, data_key = _materialise(dataset)
        key, n = self.key(data_key), len(images)
        table = _table(images, labels) if self.augment.mixes else None
        folder = os.path.join(self.directory, key) if self.directory else None
        if key in self._memory:
            records, seconds = self._memory[key]
            info = {"computed": False, "pass_seconds": seconds}
        elif folder and self.storage != "memory" and os.path.isdir(folder):  # complete: renamed from .partial
            records, info = self._load(folder), {"computed": False, "path": folder, **_meta(folder)}
            self.log(f"   teacher views: read from the disk cache {folder} (key {key})")
        else:
            records = self._compute(images, labels, table, folder)
            info = {"computed": True, "pass_seconds": self._pass_seconds}
            if folder and self.storage != "memory":
                info["path"] = folder
        per_image = _bytes_per_image(records, n)
        if isinstance(records, dict):  # numpy arrays: serve from memory if they fit, else from the disk copy
            in_memory = self.storage == "memory" or (self.storage == "auto" and per_image * n / 2**20
                                                      <= self.max_memory_mb) or not folder
            if in_memory:
                self._memory[key] = (records, info.get("pass_seconds", 0.0))
            ds = tf.data.Dataset.from_tensor_slices(records) if in_memory else self._load(folder)
        else:  # read from disk: kept in memory after the first epoch when it fits
            in_memory = self.storage == "auto" and per_image * n / 2**20 <= self.max_memory_mb
            ds = records.cache() if in_memory else records
        info.update(mode="memory" if in_memory else "disk", key=key, examples=n, views=self.k,
                    bytes_per_image=per_image, seconds=time.perf_counter() - start,
                    pass_seconds=info.get("pass_seconds", 0.0))
        if info["computed"]:
            where = "in memory" if in_memory else "on disk"
            kept = f", kept in {folder}" if "path" in info else ""
            self.log(f"   teacher views: {self.k} views x {n} images computed in {info['pass_seconds']:.1f} s, "
                     f"{per_image:,.0f} bytes per image, served {where}{kept} (key {key})")
        self.last = info
        return StoredViews(ds, self.augment, self.num_classes, self.k, table, info)

    def estimate_mb(self, dataset: tf.data.Dataset) -> float:
        """The size of the stored outputs for `dataset`, from one teacher call on one image."""
        first = next(iter(dataset.take(1).batch(1)))
        x = first[0] if isinstance(first, tuple) else first
        out = self.extract(tf.cast(x, tf.float32))
        per_view = sum(int(np.prod(v.shape[1:])) * 4 for v in out.values())
        return per_view * self.k * int(dataset.cardinality()) / 2**20

    # ------------------------------------------------------------ internals
    def _topk(self) -> int:
        return self.topk if 0 < self.topk < self.num_classes else 0

    def _compute(self, images, labels, table, folder):
        n, pass_start = len(images), time.perf_counter()
        params = draw_views(self.augment, self.image_shape, n, self.k, self.seed)
        render = tf.function(lambda x, y, v: render_views(x, y, v, self.augment, table), reduce_retracing=True)
        with tempfile.TemporaryDirectory(prefix="kd_keras_views_") as tmp:
            extract = self._extract(images, labels, params, render, tmp)
            outputs = self._pass(images, labels, params, render, extract)
        records = {"view": params, "teacher": {name: np.concatenate(v) for name, v in outputs.items()},
                   "offset": view_offsets(n, self.k, self.seed)}
        self._pass_seconds = time.perf_counter() - pass_start
        if folder and self.storage != "memory":
            self._save(records, folder, {"pass_seconds": self._pass_seconds, "examples": n, "views": self.k,
                                         "runtime": self.runtime})
        return records

    def _extract(self, images, labels, params, render, tmp):
        """The pass's teacher call: the Keras teacher's, or an int8 TFLite copy's (`runtime`)."""
        if self.runtime == "keras":
            return self.extract
        first = tf.constant(images[:1], tf.float32)
        names = sorted(self.extract(first))
        if names != [FINAL]:
            raise ValueError(f"train.teacher_views_runtime = \"{self.runtime}\" runs the teacher's final output only, "
                             f"but this student distils {', '.join(n for n in names if n != FINAL)} too; set "
                             f"train.teacher_views_runtime = \"keras\".")
        m = min(len(images), 256)  # calibration: the first views of the pass, as the teacher will see them
        view = {name: tf.constant(v[:m, 0]) for name, v in params.items()}
        calib, _ = render(tf.constant(images[:m], tf.float32), tf.one_hot(labels[:m], self.num_classes), view)
        path = os.path.join(tmp, "teacher_int8.tflite")
        try:
            from kd_keras.models.runtimes import LiteRTRuntime, tflite_bytes

            if self.teacher is None:
                raise ValueError("no Keras teacher was given to convert")
            with open(path, "wb") as f:
                f.write(tflite_bytes(self.teacher, "int8", list(calib.numpy())))
            rt = LiteRTRuntime(path, threads=os.cpu_count())
            rt(calib.numpy()[:2])
        except Exception as e:  # the converter's and LiteRT's errors: this teacher cannot run there
            raise ValueError(f"train.teacher_views_runtime = \"{self.runtime}\" cannot run this teacher "
                             f"({str(e).splitlines()[0] if str(e) else type(e).__name__}); set "
                             f"train.teacher_views_runtime = \"keras\".") from None
        self.log(f"   teacher views: the pass runs the teacher as int8 TFLite ({rt.engine}); its logits differ "
                 f"from the Keras teacher's")
        return lambda x: {FINAL: rt(keras.ops.convert_to_numpy(x))}

    def _pass(self, images, labels, params, render, extract):
        n = len(images)
        progress = pass_progress(n * self.k, "view", self.verbose, self.log)
        outputs: dict = {}
        done = 0
        for s in range(0, n, self.batch_size):
            x = tf.constant(images[s: s + self.batch_size], tf.float32)
            y = tf.one_hot(labels[s: s + self.batch_size], self.num_classes)
            per_view = []
            for k in range(self.k):
                view = {name: tf.constant(v[s: s + self.batch_size, k]) for name, v in params.items()}
                view_x, _ = render(x, y, view)
                out = {name: np.asarray(keras.ops.convert_to_numpy(v), np.float32)
                       for name, v in extract(view_x).items()}
                per_view.append(self._compress(out))
                done += len(view_x)
                progress(done)
            for name in per_view[0]:
                outputs.setdefault(name, []).append(np.stack([o[name] for o in per_view], axis=1))
        return outputs

    def _compress(self, out: dict) -> dict:
        k = self._topk()
        if not k or FINAL not in out:
            return out
        logp = tf.nn.log_softmax(out.pop(FINAL), -1)
        values, indices = tf.math.top_k(logp, k)
        return {**out, "topk_values": values.numpy(), "topk_indices": indices.numpy().astype(np.int32)}

    def _save(self, records, folder, meta):
        tmp = folder + ".partial"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(self.directory, exist_ok=True)
        tf.data.Dataset.from_tensor_slices(records).batch(1024).save(tmp)
        with open(os.path.join(tmp, META), "w") as f:
            json.dump(meta, f)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)  # a killed pass leaves only a .partial folder, never a short cache

    @staticmethod
    def _load(folder):
        return tf.data.Dataset.load(folder).unbatch()


def _meta(folder) -> dict:
    """What the pass that wrote a disk cache recorded (its time), if anything."""
    try:
        with open(os.path.join(folder, META)) as f:
            return {"pass_seconds": float(json.load(f)["pass_seconds"])}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _materialise(dataset):
    """The images, int labels and a content digest of an unbatched `(image, label)` dataset."""
    xs, ys = [], []
    for x, y in dataset.batch(1024).as_numpy_iterator():
        xs.append(np.asarray(x, np.float32))
        ys.append(np.asarray(y, np.int32))
    images, labels = np.concatenate(xs), np.concatenate(ys)
    h = hashlib.sha256()
    for part in (images, labels):
        h.update(str(part.dtype).encode() + str(part.shape).encode())
        h.update(np.ascontiguousarray(part).tobytes())
    return images, labels, h.hexdigest()


def _table(images, labels):
    """The training set as tensors for the mixing partners: uint8 when the pixels are whole 0-255 values."""
    whole = images.min() >= 0 and images.max() <= 255 and np.array_equal(images, np.round(images))
    return tf.constant(images.astype(np.uint8) if whole else images), tf.constant(labels)


def _bytes_per_image(records, n) -> float:
    if not isinstance(records, dict):
        spec = records.element_spec
        return float(sum(np.prod(s.shape) * s.dtype.size for s in tf.nest.flatten(spec)))
    return float(sum(v.nbytes for v in tf.nest.flatten(records))) / max(n, 1)
