"""What every task gives the one recipe runner, with the shared dense-task pieces."""

from __future__ import annotations

import abc

import keras
import numpy as np
import tensorflow as tf

from kd_keras.losses import create_loss
from kd_keras.models import create_model
from kd_keras.teachers.targets import TeacherTargets


class Task(abc.ABC):
    """A task: its data, models, supervised loss, metrics and report columns.

    Subclasses set `name`, `metric` (higher is better; the KD gain and the
    recovered gap are computed on it), `sources`, `accepts` (the kinds of
    `TeacherTargets` their training pipeline takes), and implement `load`,
    `pipelines`, `metrics` and `evaluate`, with these signatures: the runner
    and the teacher source call every task alike.
    """

    name = ""
    accepts: tuple = ()  # TeacherTargets kinds: "outputs", "views", "maps"
    metric = ""
    metric_label = ""
    default_hard_loss: dict = {}
    sources: tuple = ()
    default_timing_size = 0

    @abc.abstractmethod
    def load(self, cfg, seed: int):
        """The splits of the `DataConfig` `cfg`."""

    @abc.abstractmethod
    def pipelines(self, splits, cfg, seed: int, targets: TeacherTargets | None = None):
        """Returns the (train, val, test) datasets of `splits` for the `DataConfig` `cfg`.

        Args:
            targets: the teacher's stored outputs (`kd_keras.teachers.targets`), of a kind in `accepts`; the
                training batches then carry them as a third element. None: no stored teacher (live or none).
        """

    @abc.abstractmethod
    def metrics(self) -> list:
        """The Keras metrics compiled into every model of the task."""

    @abc.abstractmethod
    def evaluate(self, model, dataset, report_cfg=None) -> dict:
        """The task's scores of `model` on the test data that `pipelines` returned."""

    def check_targets(self, targets: TeacherTargets | None) -> None:
        """Refuses stored teacher outputs of a kind this task's pipeline does not take."""
        if targets is not None and targets.kind not in self.accepts:
            takes = ", ".join(self.accepts) or "none"
            raise ValueError(f"{self.name} training takes no stored teacher {targets.kind} (it takes: {takes}).")

    def missing_extra(self) -> str:
        """A one-line install hint when an optional package this task needs is absent, else ""."""
        return ""

    def check_source(self, source: str) -> None:
        if source not in self.sources:
            raise ValueError(f"unknown dataset source {source!r}; valid sources: {', '.join(self.sources)} "
                             f"(for {self.name}).")

    def smoke_overrides(self) -> list[str]:
        """`--set` overrides that shrink a run further in `--smoke` mode."""
        return []

    def create_model(self, m, splits, weights=None):
        """Builds the model of a `ModelConfig` for this task's data."""
        return create_model(m.model, input_shape=splits.input_shape,
                            weights=weights if weights is not None else (m.weights or None), **m.options)

    def random_inputs(self, data_cfg) -> str:
        """Why the training inputs change from epoch to epoch, or "" if they are fixed per example.

        With fixed inputs the runner caches the teacher's outputs
        (`kd_keras.teachers.cache`). Dense tasks train on random crops: their
        teacher runs once per whole image where `maps_blocker` allows it,
        else live.
        """
        return "random crops"

    def replay_blocker(self, data_cfg) -> str:
        """Why the random training inputs cannot be stored as replayable views ("" if they can).

        Where they can, the runner's "views" teacher cache
        (`kd_keras.teachers.views`) stores K augmented views per image with
        the teacher's outputs; otherwise the teacher runs live.
        """
        return "random crops of dense tasks are not stored as views"

    def maps_blocker(self, data_cfg) -> str:
        """Why the teacher cannot run once per whole training image instead ("" if it can).

        Where it can (a dense teacher whose output is a map aligned with its
        input), `kd_keras.teachers.maps` stores each whole image's map, and
        `pipelines(..., targets=TeacherTargets("maps", ...))` crops it with the image.
        """
        return f"{self.name} has no whole-image teacher maps"

    def transfer_blocker(self) -> str:
        """Why this task cannot train KD students on unlabelled transfer images ("" if it can)."""
        return f"{self.name} has no unlabelled transfer images (edge detection has)"

    def with_transfer(self, splits, images: list, data_cfg):
        """`splits` with unlabelled `(name, image)` transfer images added to its training examples.

        Only the teacher labels them: the student's label loss ignores them.
        """
        raise ValueError(f"distill.transfer: {self.transfer_blocker()}; remove it.")

    def map_images(self, splits) -> list:
        """The whole training images the teacher maps are computed on, aligned with `pipelines`' examples."""
        raise NotImplementedError(f"{self.name} has no whole-image teacher maps.")

    def train_examples(self, splits, data_cfg):
        """The unbatched training examples in a fixed order, as `pipelines` reads them (fixed inputs only)."""
        raise NotImplementedError(f"{self.name} trains on random inputs; its teacher runs live.")

    def output_kind(self, model) -> str:
        """What a dense model makes of a 32x32 image: "edge map", "image xN" or the output shape, for `--predict`."""
        channels = model.inputs[0].shape[-1] if getattr(model, "inputs", None) else 3
        try:
            out = np.asarray(model(np.zeros((1, 32, 32, channels or 3), np.float32), training=False))
        except Exception:  # a model with a fixed input size (a classifier), or another non-dense model
            return "output for fixed-size inputs"
        if out.ndim == 4 and out.shape[1:] == (32, 32, 1):
            return "edge map"
        if out.ndim == 4 and out.shape[-1] == 3 and out.shape[1] == out.shape[2] and out.shape[1] % 32 == 0 \
                and out.shape[1] > 32:
            return f"image x{out.shape[1] // 32}"
        return f"output of shape {tuple(out.shape[1:])}"

    def chance_check(self, model, val_ds, splits) -> str:
        """Why a loaded teacher does not fit the data ("" if it does, or if the task cannot tell)."""
        return ""

    def samples_per_epoch(self, splits, data_cfg) -> int:
        return splits.num_train

    def hard_loss(self, spec: dict | None = None):
        """The supervised loss: `spec` = `{method, <options>}` or the task default."""
        spec = dict(spec or self.default_hard_loss)
        if "method" not in spec:
            raise ValueError(f"train.hard_loss needs a method, e.g. {self.default_hard_loss}, got {spec}.")
        return create_loss(spec.pop("method"), kind="supervised", **spec)

    def timing_shape(self, splits, report_cfg) -> tuple:
        """Shape of one input image for the latency measurement."""
        if splits.input_shape[0] is not None:
            return tuple(splits.input_shape)
        side = report_cfg.image_size or self.default_timing_size
        return (side, side, splits.input_shape[-1])

    def reference_models(self, splits, data_cfg) -> dict:
        """Untrained reference models reported beside the others (e.g. bicubic)."""
        return {}

    def columns(self) -> list[tuple[str, str, str]]:
        """Metric columns of the results table: (header, row key, format)."""
        return [(self.metric_label or self.metric, self.metric, "pct")]

    def format_delta(self, delta: float) -> str:
        return f"{100 * delta:+.2f} pt"

    def report_notes(self, rows: list[dict]) -> list[str]:
        """Extra lines for results.md (how the metric was measured)."""
        return []

    def samples(self, splits, cfg, split: str, n: int, seed: int = 0) -> list:
        """Up to `n` real model inputs (float32 HxWxC, 0-255) from `split` ("train" or "test").

        Training inputs calibrate int8 quantisation; test inputs check that
        an exported model matches its Keras original.
        """
        raise NotImplementedError


def padded_stack(arrays: list) -> tuple[np.ndarray, np.ndarray]:
    """Stacks HxWxC arrays of different sizes into one zero-padded array, with their sizes."""
    h = max(a.shape[0] for a in arrays)
    w = max(a.shape[1] for a in arrays)
    out = np.zeros((len(arrays), h, w, arrays[0].shape[-1]), arrays[0].dtype)
    for i, a in enumerate(arrays):
        out[i, : a.shape[0], : a.shape[1]] = a
    return out, np.array([a.shape[:2] for a in arrays], np.int32)


def random_crops(arrays: list, patch: int, repeats: int, flip: bool, seed: int = 0):
    """Unbatched dataset of random `patch`-sided crops, `repeats` per array and pass.

    Each pass visits the arrays in a new order; crops are flipped and
    rotated by multiples of 90 degrees when `flip` (the usual dense-task
    augmentation: HED, EDSR). Every crop draws from its own stateless seed:
    a new dataset built with the same `seed` gives the same crops, epoch
    by epoch, whatever the parallelism, and each epoch draws new ones (a
    stateful random op in a `map` repeats its numbers every epoch, in an
    order that depends on the threads).
    """
    padded, sizes = padded_stack(arrays)
    ds = tf.data.Dataset.from_tensor_slices((padded, sizes)).shuffle(len(arrays), seed=seed,
                                                                     reshuffle_each_iteration=True).repeat(repeats)
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)

    def crop(element, pair):
        (image, size), s = element, tf.random.experimental.stateless_split(pair, 4)
        y = tf.random.stateless_uniform((), s[0], 0, size[0] - patch + 1, dtype=tf.int32)
        x = tf.random.stateless_uniform((), s[1], 0, size[1] - patch + 1, dtype=tf.int32)
        out = image[y: y + patch, x: x + patch]
        if flip:
            out = tf.image.stateless_random_flip_left_right(out, s[2])
            out = tf.image.rot90(out, tf.random.stateless_uniform((), s[3], 0, 4, dtype=tf.int32))
        return out

    return tf.data.Dataset.zip((ds, seeds)).map(crop, num_parallel_calls=tf.data.AUTOTUNE)


def center_crops(arrays: list, patch: int) -> np.ndarray:
    """Centre crops of side `patch` (or the smallest side, if smaller), stacked."""
    side = min([patch] + [min(a.shape[:2]) for a in arrays])
    out = []
    for a in arrays:
        y, x = (a.shape[0] - side) // 2, (a.shape[1] - side) // 2
        out.append(a[y: y + side, x: x + side])
    return np.stack(out)


def single_image_forward(model):
    """A traced forward pass for one image of any size (no retracing per size).

    A `kd_keras.models.runtimes.Runtime` (an exported model) is returned as is.
    """
    if not isinstance(model, keras.Model):
        return lambda x: model(np.asarray(x, np.float32))
    spec = tf.TensorSpec((1, None, None, model.inputs[0].shape[-1]), tf.float32)
    return tf.function(lambda x: model(x, training=False), input_signature=[spec])
