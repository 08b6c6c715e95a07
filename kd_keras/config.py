"""Recipe configs: frozen dataclasses, read from TOML, overridden by `--set`.

A recipe is one TOML file in `recipes/`. Every key has a default here, so a
file states only what differs. Unknown keys are errors that list the valid
ones, and values are type-checked, so a typo never silently falls back to a
default.

Example:
    >>> cfg = load_config("recipes/digits.toml", overrides=["train.epochs=3"])
    >>> cfg.train.epochs
    3
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from pathlib import Path

from kd_keras.data.augment import AugmentConfig

REPO_ROOT = Path(__file__).resolve().parents[1]


# Data sources that read data.path (--data); the others (digits, tfds, shapes, skimage) take none.
PATH_SOURCES = ("npz", "folder", "bsds", "tiny_imagenet", "mhist")

@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the images come from and how they are batched.

    Attributes:
        source: classification: "digits", "npz", "folder", "tfds",
            "tiny_imagenet" or "mhist";
            edge detection: "shapes" (synthetic) or "bsds"; super-resolution:
            "skimage" or "folder".
        path: npz file or image folder.
        path_env: environment variable read for `path` when `path` is empty.
        name: tfds dataset name.
        data_dir: tfds data directory.
        manual_dir: tfds manual download folder (e.g. imagenet2012's
            ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar).
        image_size: resize images to this side when loading (0: keep).
        val_fraction: share of the training split held out for validation.
        batch_size: training batch size.
        limit: keep at most this many train/test examples (0: all).
        cache: keep decoded images in memory (turn off for data larger
            than RAM).
        scale: super-resolution factor (2, 3 or 4).
        patch_size: dense tasks: side of the random training crops (for
            super-resolution, of the high-resolution patch); training images
            smaller than this are skipped with a warning.
        repeats: dense tasks: random crops per training image and epoch.
        train_sets, val_sets, test_sets: dense tasks: sub-folders (image
            sets or BSDS splits) for each role; empty means the task's
            default, and empty `val_sets` holds out `val_fraction` of the
            training images.
    """

    source: str = "digits"
    path: str = ""
    path_env: str = ""
    name: str = ""
    data_dir: str = ""
    manual_dir: str = ""
    image_size: int = 0
    val_fraction: float = 0.1
    batch_size: int = 64
    limit: int = 0
    cache: bool = True
    scale: int = 2
    patch_size: int = 0
    repeats: int = 1
    train_sets: list = dataclasses.field(default_factory=list)
    val_sets: list = dataclasses.field(default_factory=list)
    test_sets: list = dataclasses.field(default_factory=list)
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)

    def resolved_path(self) -> str:
        if self.path:
            return self.path
        if self.path_env and os.environ.get(self.path_env):
            return os.environ[self.path_env]
        if self.source in PATH_SOURCES:
            hint = f"set ${self.path_env} or " if self.path_env else ""
            raise ValueError(f"data.path is empty for source {self.source!r}; {hint}pass --data PATH.")
        return ""


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """A registered model.

    Attributes:
        model: a name from `kd_keras.list_models()`.
        options: factory options, e.g. `{ image_size = 32, alpha = 0.5 }`.
        weights: `"imagenet"` or a `.keras`/`.weights.h5` path to start from.
    """

    model: str = "small_cnn"
    options: dict = dataclasses.field(default_factory=dict)
    weights: str = ""


@dataclasses.dataclass(frozen=True)
class AdapterConfig:
    """What a teacher file (`.onnx`, `.tflite`, SavedModel) expects, declared (`kd_keras.file_teacher`).

    kd_keras feeds raw 0-255 NHWC RGB batches; the adapter turns them into
    the file's input: resize to `size`, reorder to `channels`, multiply by
    `scale`, subtract `mean`, divide by `std`, transpose to `layout`. A
    torchvision ImageNet model exported to ONNX takes `layout = "nchw"`,
    `scale = 0.00392156862745098` (1/255), `mean = [0.485, 0.456, 0.406]`,
    `std = [0.229, 0.224, 0.225]`. kd_keras' own exports need none of it.

    Attributes:
        layout: "nhwc" (TensorFlow, TFLite) or "nchw" (PyTorch exports).
        size: `[height, width]` to resize to (bilinear); empty keeps the data's.
        scale: factor on the 0-255 pixels, before `mean` and `std`.
        mean, std: per-channel (or one) values, after `scale`; empty: 0 and 1.
        channels: "rgb" or "bgr" (Caffe and OpenCV models).
        output: "logits", or "probabilities" (a softmax ending; their logs
            are used as logits, the same distribution).
    """

    layout: str = "nhwc"
    size: object = dataclasses.field(default_factory=list)  # lists of numbers: checked by file_teacher.check_adapter
    scale: float = 1.0
    mean: object = dataclasses.field(default_factory=list)
    std: object = dataclasses.field(default_factory=list)
    channels: str = "rgb"
    output: str = "logits"


@dataclasses.dataclass(frozen=True)
class TeacherConfig(ModelConfig):
    """The teacher: loaded from `weights`, or trained by the recipe.

    Attributes:
        train_if_missing: if `weights` does not exist, train the teacher
            (and save it in the output dir) instead of failing.
        finetune: after loading `weights`, train the teacher on the
            recipe's data for `epochs` (e.g. a BiT-M backbone from TF-Hub,
            whose head does not fit the classes); off: use it as loaded.
        epochs: teacher training epochs (0: `train.epochs`).
        learning_rate: teacher learning rate (0: `train.learning_rate`).
        check_fit: before any student trains, refuse a loaded teacher
            whose validation accuracy is no better than chance (a teacher
            for other data); false uses it anyway.
        adapter: for a teacher file (`weights` an `.onnx`, `.tflite` or
            SavedModel folder; `model` is then not used), how it wants its
            input and gives its output (`AdapterConfig`).
    """

    model: str = "resnet20"
    train_if_missing: bool = False
    finetune: bool = False
    epochs: int = 0
    learning_rate: float = 0.0
    check_fit: bool = True
    adapter: AdapterConfig = dataclasses.field(default_factory=AdapterConfig)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation, shared by the baseline and every KD student.

    Attributes:
        epochs: training epochs.
        optimizer: "adam", "adamw" or "sgd" (momentum 0.9, Nesterov).
        learning_rate: peak learning rate.
        weight_decay: decoupled weight decay (0: off).
        schedule: "cosine" or "constant".
        warmup_epochs: linear warm-up epochs of the cosine schedule.
        seed: seed of weights, shuffling and augmentation.
        hard_loss: the supervised loss, `{ method = NAME, <options> }` with a
            name from `kd_keras.list_losses("supervised")`; empty: the task's
            default.
        precise_bn_batches: after each training run, recompute the model's
            BatchNorm statistics as the average over this many training
            batches (`kd_keras.precise_bn`); 0: off, keep the moving
            averages of training.
        teacher_cache: KD students: "auto" caches the teacher's outputs
            when the training inputs are fixed (no random augmentation or
            crops), in memory or, above `teacher_cache_memory_mb`, on disk,
            and uses "views" when the augmentation can be replayed;
            "memory" or "disk" force the storage of fixed inputs; "views"
            stores `teacher_views` augmented views per image with the
            teacher's outputs (`kd_keras.teacher_views`); "off" always runs
            the teacher live. Otherwise (RandAugment, dense random crops)
            the teacher runs live.
        teacher_cache_dir: folder of disk caches, shared between runs
            (empty: `<output dir>/teacher_cache`).
        teacher_cache_memory_mb: "auto" keeps outputs up to this size in
            memory; views caches larger than this are served from disk, and
            views with feature maps larger than this run the teacher live.
        teacher_views: K, the augmented views stored per training image.
        teacher_views_seed: seed of the stored views (not of training, so
            runs with other training seeds share one cache).
        teacher_views_topk: store the teacher's top-k log-probabilities
            per view instead of all logits (0: all; for many classes).
        precision: "float32", "mixed_float16" (GPUs; the loss is scaled) or
            "mixed_bfloat16" (TPUs, recent CPUs and GPUs); variables and
            losses stay float32.
        jit_compile: compile the train step with XLA: true, false, or
            "auto" (Keras' choice: on with a GPU, off on CPU).
        strategy: "default" (one device), "mirrored" (all local GPUs;
            `data.batch_size` is the global batch) or "multi_worker"
            (`tf.distribute.MultiWorkerMirroredStrategy` from `TF_CONFIG`;
            see the README).
        resume: back up each training run every epoch and, when the same
            command runs again after a crash or kill, continue where it
            stopped (`keras.callbacks.BackupAndRestore`); finished models
            are loaded, not retrained.
    """

    epochs: int = 20
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "cosine"
    warmup_epochs: int = 0
    seed: int = 0
    hard_loss: dict = dataclasses.field(default_factory=dict)
    precise_bn_batches: int = 0
    teacher_cache: str = "auto"
    teacher_cache_dir: str = ""
    teacher_cache_memory_mb: float = 2048.0
    teacher_views: int = 16
    teacher_views_seed: int = 0
    teacher_views_topk: int = 0
    precision: str = "float32"
    jit_compile: object = "auto"
    strategy: str = "default"
    resume: bool = True


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """One distillation term: a registered method, its weight and options.

    Any other key in the TOML table is an option of the method, e.g.
    `{ method = "kd", weight = 1.0, temperature = 4.0 }`.
    """

    method: str = "kd"
    weight: float = 1.0
    options: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class DistillConfig:
    """One KD student: its losses and the hard-label weight.

    Attributes:
        name: name of this student in the results.
        student_loss_weight: weight of the hard-label loss, in [0, 1].
        losses: the distillation terms.
        student: another student architecture for this entry only,
            `{ model = NAME, options = {...} }` (empty: the recipe's
            `student`, which the baseline shares). Such a student has no
            baseline of its own, so no KD gain is computed for it.
        warmup_epochs: ramp the distillation term up linearly over this
            many epochs (per step; DKD's warm-up); 0 is off. Must be
            shorter than the student's training.
        epochs: this student's training epochs (0: `train.epochs`); a
            longer schedule for function matching.
        augment: augmentation settings that replace the recipe's
            `data.augment` ones for this student only, e.g.
            `{ mixup_alpha = 1.0 }` for function matching (the teacher sees
            the same mixed images).
    """

    name: str = "kd"
    student_loss_weight: float = 0.5
    losses: tuple = (LossConfig(),)
    student: dict = dataclasses.field(default_factory=dict)
    warmup_epochs: int = 0
    epochs: int = 0
    augment: dict = dataclasses.field(default_factory=dict)

    def data_config(self, data: DataConfig) -> DataConfig:
        """The recipe's data settings with this entry's `augment` applied."""
        if not self.augment:
            return data
        try:
            augment = from_dict(AugmentConfig, {**to_dict(data.augment), **self.augment}, "augment.")
        except ValueError as e:
            raise ValueError(f"distill entry {self.name!r}: {e}") from None
        return dataclasses.replace(data, augment=augment)


@dataclasses.dataclass(frozen=True)
class ReportConfig:
    """How models are measured.

    Attributes:
        latency_runs: timed batch-1 runs per model and round (>= 20).
        throughput_batch: batch size of the throughput measurement.
        rounds: interleaved timing rounds over all models; the latency is
            the median of `rounds * latency_runs` calls.
        image_size: dense tasks: side of the (square) input image that
            latency is measured at (0: the task's default).
        edge_thresholds: edge detection: thresholds of the BSDS benchmark
            (99 in the protocol; fewer is faster and slightly lower).
        edge_max_dist: edge detection: matching tolerance, a fraction of
            the image diagonal (0.0075 in the protocol).
        edge_max_images: edge detection: score ODS/OIS/AP on the first N
            test images only (0: all). The benchmark's matching takes about
            a minute per BSDS image at 99 thresholds on one CPU core.
        workers: processes for the edge benchmark (0: one per CPU).
        export_quantize: with `--export`: the TFLite variants written for
            each KD student ("none" is fp32; also "fp16", "dynamic", "int8").
            The teacher is exported in fp32 for comparison.
        export_threads: with `--export`: LiteRT threads for the exported
            models' metric and timing.
        export_runs: with `--export`: timed batch-1 runs per exported model
            (>= 50).
    """

    latency_runs: int = 30
    throughput_batch: int = 64
    rounds: int = 3
    image_size: int = 0
    edge_thresholds: int = 99
    edge_max_dist: float = 0.0075
    edge_max_images: int = 0
    workers: int = 0
    export_quantize: list = dataclasses.field(default_factory=lambda: ["none", "int8"])
    export_threads: int = 2
    export_runs: int = 50


@dataclasses.dataclass(frozen=True)
class Config:
    """A whole recipe.

    Attributes:
        name: recipe name (default output dir `runs/<name>`).
        task: "classification", "edge_detection" or "super_resolution": the
            recipe command that runs it (`python -m kd_keras.recipes.<task>`).
        description: what the recipe reproduces.
        command: the command that runs it.
        expected: the measured result, as text, kept with the recipe.
    """

    name: str = "recipe"
    task: str = "classification"
    description: str = ""
    command: str = ""
    expected: str = ""
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    teacher: TeacherConfig = dataclasses.field(default_factory=TeacherConfig)
    student: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    distill: tuple = (DistillConfig(),)
    report: ReportConfig = dataclasses.field(default_factory=ReportConfig)


# ------------------------------------------------------------------ parsing
_LIST_OF = {("Config", "distill"): DistillConfig, ("DistillConfig", "losses"): LossConfig}


def from_dict(cls, data: dict, where: str = ""):
    """Builds dataclass `cls` from a dict, checking keys and value types."""
    if not isinstance(data, dict):
        raise ValueError(f"{where or 'config'} must be a table, got {data!r}.")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    if cls is LossConfig:  # method options sit beside method and weight
        data = dict(data)
        options = {k: data.pop(k) for k in list(data) if k not in ("method", "weight", "options")}
        data["options"] = {**data.get("options", {}), **options}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(
            f"unknown config key(s) {', '.join(where + k for k in unknown)}; "
            f"valid keys{' in ' + where.rstrip('.') if where else ''}: {', '.join(fields)}."
        )
    kwargs = {}
    for key, value in data.items():
        hint, path = hints[key], f"{where}{key}"
        item_cls = _LIST_OF.get((cls.__name__, key))
        if item_cls is not None:
            if not isinstance(value, (list, tuple)):
                raise ValueError(f"{path} must be a list of tables, got {value!r}.")
            kwargs[key] = tuple(from_dict(item_cls, v, f"{path}.{i}.") for i, v in enumerate(value))
        elif dataclasses.is_dataclass(hint):
            kwargs[key] = from_dict(hint, value, f"{path}.")
        else:
            kwargs[key] = _check_type(value, hint, path)
    return cls(**kwargs)


def _check_type(value, hint, path):
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif hint is str:
        ok = isinstance(value, str)
    elif hint is dict:
        ok = isinstance(value, dict)
    elif hint is list:
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
        value = list(value) if ok else value
    else:
        ok = True
    if not ok:
        kind = "list of strings" if hint is list else hint.__name__
        raise ValueError(f"config key {path} must be of type {kind}, got {value!r}.")
    return value


def to_dict(cfg) -> dict:
    """The config as plain TOML-able data (what results.json records)."""
    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if dataclasses.is_dataclass(v):
            v = to_dict(v)
        elif isinstance(v, tuple):
            v = [to_dict(x) if dataclasses.is_dataclass(x) else x for x in v]
        out[f.name] = v
    return out


def quote(text: str) -> str:
    """A string as a TOML value for `--set key=VALUE`."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_value(text: str):
    """Parses a `--set` value as TOML (`3`, `0.5`, `true`, `[1, 2]`, `{a = 1}`),
    falling back to a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_override(data: dict, assignment: str) -> None:
    """Applies `a.b.0.c=value` to nested dicts/lists in place."""
    if "=" not in assignment:
        raise ValueError(f"--set expects key=value, got {assignment!r}.")
    key, text = assignment.split("=", 1)
    parts = key.strip().split(".")
    node = data
    for i, part in enumerate(parts[:-1]):
        nxt = parts[i + 1]
        if isinstance(node, list):
            node = _list_item(node, part, key)
            continue
        if part not in node:
            node[part] = [] if nxt.isdigit() else {}
        node = node[part]
    last = parts[-1]
    if isinstance(node, list):
        idx = int(last) if last.isdigit() else None
        if idx is None or idx >= len(node):
            raise ValueError(f"--set {key}: index {last!r} is out of range (list has {len(node)} items).")
        node[idx] = parse_value(text.strip())
    else:
        node[last] = parse_value(text.strip())


def _list_item(node: list, part: str, key: str):
    if not part.isdigit():
        raise ValueError(f"--set {key}: {part!r} must be a list index.")
    idx = int(part)
    if idx == len(node):
        node.append({})
    if idx >= len(node):
        raise ValueError(f"--set {key}: index {idx} is out of range (list has {len(node)} items).")
    return node[idx]


def find_file(path: str | os.PathLike) -> Path:
    """Resolves a path relative to the working directory, then to the repository."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p
    in_repo = REPO_ROOT / p
    return in_repo if in_repo.exists() else p


def load_config(path: str | os.PathLike | None, overrides=(), smoke: bool = False) -> Config:
    """Reads a TOML recipe, applies `key=value` overrides and the smoke switch.

    Args:
        path: a TOML file, or `None` for the built-in defaults.
        overrides: `key=value` strings, e.g. `"train.epochs=3"`.
        smoke: shrink the run to seconds (1 epoch, 256 examples, 20 timing
            runs) to check that a recipe works end to end. Explicit
            `overrides` are applied after it, so `--smoke --set
            train.epochs=3` trains 3 epochs.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: bad TOML, unknown keys, wrong types.
    """
    data: dict = {}
    if path is not None:
        p = find_file(path)
        if not p.is_file():
            raise FileNotFoundError(f"config file {os.fspath(path)!r} does not exist; give a TOML file's path or a "
                                    f"shipped recipe's name (python -m kd_keras.recipes.<task> --list).")
        try:
            data = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"config file {os.fspath(p)!r} is not valid TOML: {e}.") from None
    if smoke:
        data.setdefault("train", {}).update(epochs=1, warmup_epochs=0, teacher_views=2)
        data.setdefault("teacher", {}).update(epochs=1)
        data.setdefault("data", {})
        data["data"]["limit"] = min(data["data"].get("limit") or 256, 256)
        data["data"]["batch_size"] = min(data["data"].get("batch_size", 64), 32)
        data.setdefault("report", {}).update(latency_runs=20, throughput_batch=8, rounds=1)
        for entry in data.get("distill", []):  # per-student schedules shrink with train.epochs
            if isinstance(entry, dict):
                entry.update(epochs=0, warmup_epochs=0)
    for assignment in overrides:  # after the smoke switch: an explicit `--set` wins
        apply_override(data, assignment)
    return from_dict(Config, data)
