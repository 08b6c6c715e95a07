"""The recipe schema: one frozen dataclass per TOML table, every key with its default.

`kd_keras.config` reads TOML files and `--set` overrides into these (through
`kd_keras.config.fields`); import them from there.
"""

from __future__ import annotations

import dataclasses
import os

from kd_keras.config.fields import from_dict, to_dict
from kd_keras.data.augment import AugmentConfig

# Data sources that read data.path (--data); the others (digits, tfds, shapes, skimage) take none.
PATH_SOURCES = ("npz", "folder", "bsds", "tiny_imagenet", "mhist")

@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the images come from and how they are batched.

    Attributes:
        source: classification: "digits" or "fashion_mnist_small" (both
            embedded), "npz", "folder", "tfds",
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
        limit: keep at most this many train/test examples, a class-balanced share (0: all).
        labels_per_class: the students (the baseline and every KD
            student) train on this many labelled images per class of the
            training split, drawn with `train.seed` (0: all of them). A
            teacher the recipe trains uses the whole split: the common case
            of a teacher trained on more labelled data than the student gets
            (Hinton et al. 2015 distilled with 3% of the labels).
        unlabeled: classification: the transfer set, images without labels
            that the KD students also train on, labelled by the teacher alone
            (Hinton et al. 2015): a list of image folders (flat or nested;
            sub-folder names are ignored) and `.npz` files (their
            `x_unlabeled` array), or "rest": the training images that
            `labels_per_class` leaves out, whose labels no student sees.
            Empty: none. The baseline never sees them; every student of a
            pair takes the same optimizer steps (`train.epochs` counts passes
            over the labelled images). A `[[distill]]` entry with
            `unlabeled = false` trains without them, one with `labeled_share`
            mixes them otherwise. Edge detection takes its transfer images per
            entry (`[[distill]] transfer`).
        cache: keep decoded images in memory (turn off for data larger
            than RAM).
        skip_bad_images: image folders: leave corrupt or too large files
            out, counted in the report (`--skip-bad-images`), instead of
            refusing the folder; see `kd_keras.data.scan`.
        max_image_pixels: image folders: the largest image, width x height,
            that is decoded (default: Pillow's decompression-bomb threshold).
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
    labels_per_class: int = 0
    unlabeled: object = dataclasses.field(default_factory=list)  # a list of paths, or "rest"
    cache: bool = True
    skip_bad_images: bool = False
    max_image_pixels: int = 89_478_485
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
    """A registered model, or a model file of any architecture.

    Attributes:
        model: a name from `kd_keras.list_models()`, or the path of a
            `.keras` model file (the user's own architecture, with its
            weights: `options` and `weights` are then not used). A teacher
            may also be an `.onnx` or `.tflite` file or a SavedModel folder.
        options: factory options, e.g. `{ image_size = 32, alpha = 0.5 }`.
        weights: `"imagenet"` or a `.keras`/`.weights.h5` path to start from.
    """

    model: str = "small_cnn"
    options: dict = dataclasses.field(default_factory=dict)
    weights: str = ""


@dataclasses.dataclass(frozen=True)
class AdapterConfig:
    """What a teacher file (`.keras`, `.onnx`, `.tflite`, SavedModel) expects; every key is optional.

    kd_keras feeds raw 0-255 NHWC RGB batches; the adapter turns them into
    the file's input: resize to `size`, reorder to `channels`, multiply by
    `scale`, subtract `mean`, divide by `std`, transpose to `layout`; and it
    reads the file's outputs in `class_order`. What is not declared is
    inferred (`kd_keras.teachers.infer`): the layout from the file's input
    shape, the size from its fixed input, the value range by the teacher's
    accuracy on labelled training images under each of raw 0-255, [0, 1],
    [-1, 1], ImageNet mean/std and Caffe BGR, the output from its rows. A
    declared value is never overridden, and the report says which values
    were declared and which inferred. A torchvision ImageNet model exported
    to ONNX is inferred as `layout = "nchw"`, `scale = 0.00392156862745098`
    (1/255), `mean = [0.485, 0.456, 0.406]`, `std = [0.229, 0.224, 0.225]`.

    Attributes:
        layout: "auto" (inferred from the file's input shape), "nhwc"
            (TensorFlow, TFLite) or "nchw" (PyTorch exports).
        size: `[height, width]` to resize to (bilinear); empty: the file's
            fixed input size, or the data's when it takes any.
        scale: "auto" (the value range is inferred, unless `mean`, `std` or
            `channels` is declared) or the factor on the 0-255 pixels, before
            `mean` and `std` (1.0: raw pixels).
        mean, std: per-channel (or one) values, after `scale`; empty: 0 and 1.
        channels: "auto", "rgb" or "bgr" (Caffe and OpenCV models).
        output: "auto" (detected: a final softmax or sigmoid, or rows in
            [0, 1]), "logits", "probabilities" (a softmax ending; their logs
            are used as logits, the same distribution) or "sigmoid" (a sigmoid
            per class; log(p / (1 - p)), the scores before it, are used).
        class_order: the teacher's classes in its output order, as the
            data's class names (`["ship", "truck", "frog"]`) or indices;
            empty: the data's order. A teacher whose outputs map one to one
            onto the data's classes in another order is refused with the
            order it implies.

    A Keras teacher file (`teacher.model = "my_teacher.keras"`) takes NHWC
    images: `layout` is "auto" or "nhwc".
    """

    layout: str = "auto"
    size: object = dataclasses.field(default_factory=list)  # lists of numbers: checked by teachers.files.check_adapter
    scale: object = "auto"
    mean: object = dataclasses.field(default_factory=list)
    std: object = dataclasses.field(default_factory=list)
    channels: str = "auto"
    output: str = "auto"
    class_order: object = dataclasses.field(default_factory=list)


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
        adapter: for a teacher file (`model` a `.keras`, `.onnx` or
            `.tflite` file or a SavedModel folder; the 0.1 spelling,
            `weights` naming an `.onnx`/`.tflite`/SavedModel, still works),
            how it wants its input and gives its output (`AdapterConfig`).
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
        epochs: training epochs: passes over the labelled training images,
            the budget of every student of a pair (a KD student with a
            transfer set takes the same optimizer steps).
        optimizer: "adam", "adamw" or "sgd" (momentum 0.9, Nesterov).
        learning_rate: peak learning rate.
        weight_decay: decoupled weight decay (0: off).
        schedule: "cosine" or "constant".
        warmup_epochs: linear warm-up epochs of the cosine schedule.
        seed: seed of weights, shuffling and augmentation.
        pairs: how many times the baseline and each KD student are
            trained, pair k from seed `seed + k - 1` (within a pair: the
            same initial weights and the same batches). With more than one,
            the results give the mean, spread and wins of each KD student
            over its paired baseline.
        hard_loss: the supervised loss, `{ method = NAME, <options> }` with a
            name from `kd_keras.list_losses("supervised")`; empty: the task's
            default.
        precise_bn_batches: after each training run, recompute the model's
            BatchNorm statistics as the average over this many training
            batches (`kd_keras.training.precise_bn`); 0: off, keep the moving
            averages of training.
        teacher_cache: KD students: "auto" caches the teacher's outputs
            when the training inputs are fixed (no random augmentation or
            crops), in memory or, above `teacher_cache_memory_mb`, on disk,
            and uses "views" when the augmentation can be replayed (they
            may not lose to a live teacher at p < 0.05 over the seeds of
            `benchmarks/kd_views.py`: -0.42 pt, p = 0.19 on cifar10_small);
            "memory" or "disk" force the storage of fixed inputs; "views"
            stores `teacher_views` augmented views per image with the
            teacher's outputs (`kd_keras.teachers.views`); "off" always runs
            the teacher live. Otherwise (RandAugment, dense random crops)
            the teacher runs live.
        teacher_cache_dir: folder of disk caches, shared between runs
            (empty: `<output dir>/teacher_cache`).
        teacher_cache_memory_mb: "auto" keeps outputs up to this size in
            memory; views caches larger than this are served from disk, and
            views with feature maps larger than this run the teacher live.
        teacher_views: K, the augmented views stored per training image:
            "epochs" (one per epoch of the student's schedule, so that every
            epoch shows each image a view it has not shown before, as a live
            teacher would) or an integer (views cycled when fewer than the
            epochs).
        teacher_views_runtime: where the views pass runs the teacher: "keras",
            or "tflite_int8" (a full-integer TFLite copy in LiteRT, faster on
            CPU but with other logits; `benchmarks/kd_views.py` with the
            "KD views int8" variant measures its time and accuracy cost: on
            cifar10_small a 0.25x pass, teacher 77.70% vs 78.10%, students
            +0.53 pt over 3 seeds). "auto" never picks it.
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
            see docs/performance.md).
        resume: back up each training run every epoch and, when the same
            command runs again after a crash or kill, continue where it
            stopped (`keras.callbacks.BackupAndRestore`); finished models
            are loaded, not retrained.
    """

    epochs: int = 20
    optimizer: str = dataclasses.field(default="adam", metadata={"choices": ("adam", "adamw", "sgd")})
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = dataclasses.field(default="cosine", metadata={"choices": ("cosine", "constant")})
    warmup_epochs: int = 0
    seed: int = 0
    pairs: int = 1
    hard_loss: dict = dataclasses.field(default_factory=dict)
    precise_bn_batches: int = 0
    teacher_cache: str = "auto"
    teacher_cache_dir: str = ""
    teacher_cache_memory_mb: float = 2048.0
    teacher_views: object = "epochs"
    teacher_views_runtime: str = dataclasses.field(default="keras", metadata={"choices": ("keras", "tflite_int8")})
    teacher_views_seed: int = 0
    teacher_views_topk: int = 0
    precision: str = dataclasses.field(default="float32",
                                       metadata={"choices": ("float32", "mixed_float16", "mixed_bfloat16")})
    jit_compile: object = "auto"
    strategy: str = dataclasses.field(default="default", metadata={"choices": ("default", "mirrored", "multi_worker")})
    resume: bool = True


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """One distillation term: a registered method, its weight and options.

    Any other key in the TOML table is an option of the method, e.g.
    `{ method = "kd", weight = 1.0, temperature = 4.0 }`.

    Attributes:
        method: a registered KD method (`kd`, `dkd`, `dist`, `mlkd`,
            `fitnets`, `at`, `edge_kd`, `side_kd`, `cwd`, `output_l1`, `fakd`;
            `kd_keras.list_losses()`).
        weight: this term's weight in the distillation loss (>= 0).
        options: the method's options, e.g. `temperature`; keys beside
            `method` and `weight` land here too.
    """

    method: str = "kd"
    weight: float = 1.0
    options: dict = dataclasses.field(default_factory=dict)

    @staticmethod
    def normalize_table(data: dict) -> dict:
        """The TOML table with the method's options that sit beside `method` and `weight` moved into `options`."""
        data = dict(data)
        options = {k: data.pop(k) for k in list(data) if k not in ("method", "weight", "options")}
        data["options"] = {**data.get("options", {}), **options}
        return data


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
        unlabeled: train this student on the transfer set of
            `data.unlabeled` too (classification; false: the labelled
            images only, as a plain KD student).
        labeled_share: how this student's batches mix labelled and
            unlabelled images: 0 shows each image once per pass over the
            transfer set (uniform: labelled images make their own share of
            the set); a share in (0, 1) repeats the labelled images in each
            pass so that they make about that share of every batch.
        transfer: folders of unlabelled images (edge detection) that this
            student also trains on, labelled by the teacher alone: the
            transfer set of Hinton et al. (2015). The baseline, which has
            no teacher, trains without them.
        teacher_scales: whole-image teacher maps (edge detection) averaged
            over the teacher's map of the image at these scales, e.g.
            `[0.5, 1.0, 1.5]`: HED's multi-scale test (empty: one pass).
        teacher_flip: also average each map with the teacher's map of the
            mirrored image.
    """

    name: str = "kd"
    student_loss_weight: float = 0.5
    losses: tuple = dataclasses.field(default=(LossConfig(),), metadata={"items": LossConfig})
    student: dict = dataclasses.field(default_factory=dict)
    warmup_epochs: int = 0
    epochs: int = 0
    augment: dict = dataclasses.field(default_factory=dict)
    unlabeled: bool = True
    labeled_share: float = 0.0
    transfer: list = dataclasses.field(default_factory=list)
    teacher_scales: list[float] = dataclasses.field(default_factory=list)
    teacher_flip: bool = False

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
        export: after training, export the teacher (fp32) and the KD
            students to TFLite, check parity and measure them (as
            `--export`).
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
    export: bool = False
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
        custom_objects: Python modules (names or `.py` paths) imported
            before any model file loads, so that the custom layers a
            `.keras` teacher or student needs are registered
            (`@keras.saving.register_keras_serializable()`).
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
    distill: tuple = dataclasses.field(default=(DistillConfig(),), metadata={"items": DistillConfig})
    report: ReportConfig = dataclasses.field(default_factory=ReportConfig)
    custom_objects: list = dataclasses.field(default_factory=list)
