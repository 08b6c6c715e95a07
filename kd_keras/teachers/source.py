"""Where a KD student's teacher outputs come from: a live teacher, a cache of fixed inputs, or stored views.

The runner asks `TeacherSource.train_data` for each KD student's training
batches. Its choice follows `train.teacher_cache` and the recipe's inputs:

- fixed inputs (no random augmentation): the teacher's outputs once per
  example (`kd_keras.TeacherOutputCache`);
- random augmentation that can be replayed (crop, flip, translation,
  MixUp, CutMix): K stored views per image with the teacher's outputs
  (`kd_keras.TeacherViewsCache`);
- random crops of a dense task whose teacher outputs a map aligned with its
  input (edge detection): the teacher's map of each whole training image,
  cropped with it, with any side outputs the size of the input
  (`kd_keras.TeacherMapsCache`);
- anything else (RandAugment, "off", features at another resolution on dense crops): the
  teacher runs live, and the reason is reported.

One cache serves every KD student of a run that reads the same teacher
layers; a disk copy serves later runs.
"""

from __future__ import annotations

import os

from kd_keras.cli.errors import unwritable_reason
from kd_keras.data.images import read_folders
from kd_keras.teachers.cache import FINAL, STORAGES, TeacherOutputCache, teacher_fingerprint
from kd_keras.teachers.maps import MapShapeError, TeacherMapsCache
from kd_keras.teachers.targets import TeacherTargets
from kd_keras.teachers.views import TeacherViewsCache, resolve_views

MODES = ("off", "views", *STORAGES)


def check_teacher_cache(cfg, task, out_dir: str) -> None:
    """The `train.teacher_cache*` settings, checked before anything trains.

    Raises:
        ValueError: an unknown mode, K < 1, a negative top-k, a cache forced
            on inputs it cannot serve, or a cache folder that is not writable.
    """
    t = cfg.train
    if t.teacher_cache not in MODES or not t.teacher_cache_memory_mb >= 0:
        raise ValueError(f"train.teacher_cache must be one of {', '.join(MODES)} and "
                         f"train.teacher_cache_memory_mb >= 0, got {t.teacher_cache!r} and "
                         f"{t.teacher_cache_memory_mb}.")
    resolve_views(t.teacher_views, t.epochs)
    if t.teacher_views_runtime != "keras":
        try:
            import ai_edge_litert.interpreter  # noqa: F401
        except ImportError:
            raise ValueError(f"train.teacher_views_runtime = {t.teacher_views_runtime!r} needs LiteRT, which is not "
                             f"installed; pip install ai-edge-litert, or set train.teacher_views_runtime = "
                             f"\"keras\".") from None
    if t.teacher_views_topk < 0:
        raise ValueError(f"train.teacher_views_topk must be >= 0 (0: store all logits), got {t.teacher_views_topk}.")
    if task is None:
        return
    random = task.random_inputs(cfg.data)
    if t.teacher_cache in ("memory", "disk") and random and task.maps_blocker(cfg.data):
        raise ValueError(f"train.teacher_cache = {t.teacher_cache!r} needs fixed training inputs, but this recipe "
                         f"trains on {random}; set train.teacher_cache = \"views\" or \"auto\" (stored augmented "
                         f"views where they can be replayed, else a live teacher).")
    blocker = task.replay_blocker(cfg.data) if random else ""
    if t.teacher_cache == "views" and blocker:
        raise ValueError(f"train.teacher_cache = \"views\" cannot replay this recipe's inputs: {blocker}; set "
                         f"train.teacher_cache = \"auto\" (the teacher then runs live) or change the augmentation.")
    if t.teacher_cache != "off" and cfg.distill:
        folder = t.teacher_cache_dir or os.path.join(out_dir, "teacher_cache")
        _check_writable(folder)


def _check_writable(folder: str) -> None:
    why = unwritable_reason(folder)
    if why:
        raise ValueError(f"the teacher cache folder {folder!r} cannot be created ({why}); set "
                         f"train.teacher_cache_dir to a writable folder or train.teacher_cache = \"off\".")

class TeacherSource:
    """Chooses and builds each KD student's training batches (see the module docstring)."""

    def __init__(self, cfg, task, splits, out_dir: str, log=print):
        self.cfg, self.task, self.splits, self.log = cfg, task, splits, log
        t = cfg.train
        self.directory = t.teacher_cache_dir or os.path.join(out_dir, "teacher_cache")
        self.outputs_cache, self.views_caches, self.maps_cache = None, {}, None
        self.stored_views = None  # the views of the last train_data that served views
        self.seed = t.seed  # of shuffling and augmentation; the runner sets each pair's

    def train_data(self, distiller, default_ds, data=None, splits=None, tta=None, epochs=None):
        """`(dataset, how, info)`: the batches, a sentence on the teacher's source, and the cache's record.

        `data` and `splits` are the student's own data settings (a `[[distill]]` entry's `augment`) and
        training images (with its `transfer` set), else the recipe's; `tta` is its `(teacher_scales,
        teacher_flip)`, the multi-scale test of whole-image teacher maps; `epochs` its schedule (for
        `train.teacher_views = "epochs"`; default `train.epochs`).
        """
        t, data, splits = self.cfg.train, data or self.cfg.data, splits or self.splits
        if not distiller.needs_teacher:
            return default_ds, "", None
        random = self.task.random_inputs(data)
        if t.teacher_cache == "off":
            return default_ds, "teacher runs live: train.teacher_cache = \"off\"", {"mode": "live"}
        if not random:
            return self._fixed(distiller, data, splits)
        blocker = self.task.replay_blocker(data)
        if blocker:
            why = f"teacher runs live: the inputs change every epoch ({random}) and {blocker}"
            if self.task.maps_blocker(data):
                return default_ds, why, {"mode": "live"}
            try:
                return self._maps(distiller, data, splits, tta)
            except MapShapeError as e:  # a feature map at another resolution: crops cannot carry it
                return default_ds, f"{why}; {e.reason}", {"mode": "live"}
        return self._views(distiller, default_ds, random, data, splits, epochs or t.epochs)

    def _maps(self, distiller, data, splits, tta=None):
        t = self.cfg.train
        if self.maps_cache is None:
            storage = t.teacher_cache if t.teacher_cache in STORAGES else "auto"
            self.maps_cache = TeacherMapsCache(None, "", storage=storage, directory=self.directory,
                                               max_memory_mb=t.teacher_cache_memory_mb, log=self.log)
        cache = self.maps_cache
        cache.extract = distiller.teacher_outputs
        cache.teacher_key = teacher_fingerprint(distiller.teacher, distiller.teacher_layers)
        scales, flip = tta or ((), False)
        cache.scales, cache.flip = tuple(float(x) for x in scales) or (1.0,), bool(flip)
        maps = cache.maps(self.task.map_images(splits))
        train, _, _ = self.task.pipelines(splits, data, self.seed, TeacherTargets("maps", maps, cache.layout))
        last = cache.last
        where = "in memory" if last["mode"] == "memory" else "on disk"
        when = f"computed in one pass of {last['seconds']:.1f} s" if last["computed"] else "reused"
        tta = "" if last["tta"] == "single scale" else f", each averaged over {last['tta']}"
        how = (f"teacher maps of the {last['examples']} whole training images{tta}, cropped, flipped and rotated with "
               f"them ({when}, outside the training time; {last['bytes'] / 2**20:.1f} MB {where})")
        return train, how, {**{k: v for k, v in last.items() if k != "path"}, "mode": "maps", "storage": last["mode"]}

    def _fixed(self, distiller, data, splits):
        t = self.cfg.train
        storage = t.teacher_cache if t.teacher_cache in STORAGES else "auto"
        if self.outputs_cache is None:
            self.outputs_cache = TeacherOutputCache(None, "", storage=storage, directory=self.directory,
                                                    max_memory_mb=t.teacher_cache_memory_mb, log=self.log)
        cache = self.outputs_cache
        cache.extract = distiller.teacher_outputs
        cache.teacher_key = teacher_fingerprint(distiller.teacher, distiller.teacher_layers)
        outputs = cache.outputs(self.task.train_examples(splits, data))
        train, _, _ = self.task.pipelines(splits, data, self.seed, TeacherTargets("outputs", outputs))
        last = cache.last
        where = "in memory" if last["mode"] == "memory" else "on disk"
        when = f"computed in one pass of {last['seconds']:.1f} s" if last["computed"] else "reused"
        return train, f"teacher outputs cached {where} ({when}, outside the training time)", \
            {**{k: v for k, v in last.items() if k != "path"}, "mode": "outputs", "storage": last["mode"]}

    def _views(self, distiller, default_ds, random, data, splits, epochs):
        t = self.cfg.train
        k = resolve_views(t.teacher_views, epochs)
        if (data.augment, k) not in self.views_caches:  # one cache per augmentation and K; keyed by both on disk
            self.views_caches[data.augment, k] = TeacherViewsCache(
                None, "", data.augment, self.splits.input_shape, self.splits.num_classes, views=k,
                seed=t.teacher_views_seed, topk=t.teacher_views_topk, directory=self.directory,
                max_memory_mb=t.teacher_cache_memory_mb, log=self.log, runtime=t.teacher_views_runtime)
        cache = self.views_caches[data.augment, k]
        cache.extract, cache.teacher = distiller.teacher_outputs, distiller.teacher
        cache.teacher_key = teacher_fingerprint(distiller.teacher, distiller.teacher_layers)
        examples = self.task.train_examples(splits, data)
        features = [name for name in distiller.teacher_layers if name != FINAL]
        if features:
            mb = cache.estimate_mb(examples)
            if mb > t.teacher_cache_memory_mb:
                return default_ds, (f"teacher runs live: the inputs change every epoch ({random}) and storing the "
                                    f"feature maps {', '.join(features)} of {k} views per image would "
                                    f"take {mb:,.0f} MB, above train.teacher_cache_memory_mb"), {"mode": "live"}
        stored = cache.views(examples)
        self.stored_views = stored  # its epoch callback goes to the fit
        train, _, _ = self.task.pipelines(splits, data, self.seed, TeacherTargets("views", stored))
        info = stored.info
        when = (f"computed in one pass of {info['pass_seconds']:.1f} s" if info["computed"]
                else f"reused from an earlier pass of {info['pass_seconds']:.1f} s")
        where = "memory" if info["mode"] == "memory" else "disk"
        per = "one per epoch" if info["views"] >= epochs else f"cycled over {epochs} epochs"
        runtime = "" if t.teacher_views_runtime == "keras" else f", teacher run as {t.teacher_views_runtime}"
        how = (f"teacher outputs from {info['views']} stored augmented views per image ({per}; {random}; "
               f"{when}{runtime}, "
               f"outside the training time; {info['bytes_per_image'] * info['examples'] / 2**20:.2f} MB, "
               f"{info['bytes_per_image']:,.0f} bytes per image, served from {where})")
        return train, how, {**{k: v for k, v in info.items() if k != "path"}, "mode": "views", "storage": info["mode"]}


def transfer_splits(task, splits, plans, data_cfg, log=print) -> dict:
    """`{student name: its training splits}` for each `[[distill]]` entry with a `transfer` set.

    Read once per set of folders, before anything trains, so that an
    unreadable image stops the run before the teacher's pass.
    """
    out, read = {}, {}
    for d, _ in plans:
        if not d.transfer:
            continue
        key = tuple(d.transfer)
        if key not in read:
            read[key] = task.with_transfer(splits, read_folders(d.transfer, "transfer"), data_cfg)
        out[d.name] = read[key]
        log(f"data for {d.name}: {out[d.name].num_train - splits.num_train} unlabelled transfer images from "
            f"{', '.join(d.transfer)}, labelled by the teacher alone")
    return out
