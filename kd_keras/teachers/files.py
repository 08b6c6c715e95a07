"""A teacher that is only a file: ONNX, TFLite or SavedModel, run by its own runtime, never trained through.

Most strong image classifiers are PyTorch models; a Keras student can still
learn from one exported with `torch.onnx.export`. `open_file_teacher` wraps
the file in a Keras model whose one layer, `FileTeacher`, applies the
adapter (`kd_keras.config.AdapterConfig`: size, channel order, scale, mean,
std, layout, class order; what is not declared is inferred by
`kd_keras.teachers.infer`) in TensorFlow and calls the file through
`kd_keras.models.runtimes` (ONNX Runtime, LiteRT, TensorFlow). That model is what
the teacher-output caches call, in their one pass outside the training
step: the fixed-input cache (`kd_keras.TeacherOutputCache`) and the stored
augmented views (`kd_keras.TeacherViewsCache`). `kd_keras.Distiller`
refuses to call it inside a training step, and feature losses, which read a
teacher's inner layers, need a Keras teacher.

Example:
    >>> teacher = load_file_teacher("resnet18.onnx", input_shape=(32, 32, 3), sample=(x_train, y_train))
    >>> distiller = kd_keras.Distiller(teacher, student, "kd")
    >>> outputs = kd_keras.TeacherOutputCache(distiller.teacher_outputs, "").outputs(train_examples)
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kd_keras.config import AdapterConfig, find_file, from_dict, to_dict
from kd_keras.models.runtimes import file_size, open_runtime
from kd_keras.teachers.infer import (RANGE_KEYS, declared, declared_range, infer_layout,
                                     range_and_order, reorder)

FORMAT_NAMES = {"onnx": "ONNX", "tflite": "TFLite", "saved_model": "SavedModel", "keras": "Keras"}
TINY = 1e-30  # the floor of a probability before its log: read as logits, a zero stays finite


def teacher_file_format(weights: str) -> str:
    """"onnx", "tflite" or "saved_model" when `teacher.weights` names such a teacher, else ""."""
    if not weights:
        return ""
    path = find_file(weights)
    if path.is_dir():
        return "saved_model" if (path / "saved_model.pb").exists() else ""
    return {".onnx": "onnx", ".tflite": "tflite"}.get(path.suffix.lower(), "")


def check_adapter(adapter: AdapterConfig) -> None:
    """Refuses adapter values no file takes, naming the key (`teacher.adapter.*`)."""
    a, where = adapter, "teacher.adapter"
    choices = {"layout": ("auto", "nhwc", "nchw"), "channels": ("auto", "rgb", "bgr"),
               "output": ("auto", "logits", "probabilities", "sigmoid")}
    for key, allowed in choices.items():
        if getattr(a, key) not in allowed:
            raise ValueError(f"{where}.{key} must be one of {', '.join(map(repr, allowed))}, got {getattr(a, key)!r}.")
    for key in ("size", "mean", "std", "class_order"):
        if not isinstance(getattr(a, key), (list, tuple)):
            raise ValueError(f"{where}.{key} must be a list, e.g. [0.5], got {getattr(a, key)!r}.")
    if a.size and (len(a.size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                               for v in a.size)):
        raise ValueError(f"{where}.size must be [height, width] in pixels (or empty: keep the data's), got {a.size!r}.")
    if a.scale != "auto" and (isinstance(a.scale, bool) or not isinstance(a.scale, (int, float)) or not a.scale > 0):
        raise ValueError(f"{where}.scale must be \"auto\" or a number > 0 (1/255 maps 0-255 pixels to [0, 1]), got "
                         f"{a.scale!r}.")
    for key in ("mean", "std"):
        values = getattr(a, key)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise ValueError(f"{where}.{key} must be numbers, one per channel (or one for all), got {values!r}.")
    if any(v <= 0 for v in a.std):
        raise ValueError(f"{where}.std must be > 0, got {a.std!r}.")
    order = list(a.class_order)
    if order and not (all(isinstance(v, str) for v in order)
                      or all(isinstance(v, int) and not isinstance(v, bool) for v in order)):
        raise ValueError(f"{where}.class_order must list the teacher's classes in its output order, as the data's "
                         f"class names or as indices, got {order!r}.")


def file_digest(path: str) -> str:
    """sha256 of a file's bytes, or of every file of a SavedModel folder (relative names and bytes, sorted).

    A file's own name is not part of it: a renamed copy is the same teacher.
    """
    h = hashlib.sha256()
    folder = os.path.isdir(path)
    files = sorted(Path(path).rglob("*")) if folder else [Path(path)]
    for f in files:
        if f.is_file():
            if folder:
                h.update(str(f.relative_to(path)).encode())
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()


def file_params(path: str, fmt: str) -> int | None:
    """Parameters stored in a teacher file: ONNX initializers, SavedModel variables; None for TFLite."""
    if fmt == "onnx":
        import onnx

        graph = onnx.load(path, load_external_data=False).graph
        return int(sum(np.prod(t.dims, dtype=np.int64) for t in graph.initializer))
    if fmt == "saved_model":
        return int(sum(np.prod(v.shape) for v in tf.saved_model.load(path).variables))
    return None


@keras.saving.register_keras_serializable("kd_keras")
class FileTeacher(keras.layers.Layer):
    """Calls a teacher file on a batch of raw 0-255 NHWC images, through the declared adapter.

    Args:
        path: the `.onnx` or `.tflite` file or SavedModel folder.
        adapter: `AdapterConfig` fields as a dict.
        classes: the width of the file's output (its number of classes).
        sha256: the file's digest when the model was saved; a reloaded
            model refuses a file that has changed since.
        threads: CPU threads of the runtime.
    """

    def __init__(self, path: str, adapter: dict | None = None, classes: int = 0, sha256: str = "",
                 threads: int = 2, **kwargs):
        kwargs.pop("trainable", None)
        super().__init__(trainable=False, **kwargs)
        self.file_path, self.adapter, self.classes, self.threads = os.fspath(path), dict(adapter or {}), classes, threads
        self.adapter_config = from_dict(AdapterConfig, self.adapter, "teacher.adapter.")
        check_adapter(self.adapter_config)
        if not os.path.exists(self.file_path):
            raise FileNotFoundError(f"teacher file {self.file_path!r} does not exist; check teacher.weights.")
        digest = file_digest(self.file_path)
        if sha256 and sha256 != digest:
            raise ValueError(f"teacher file {self.file_path!r} has changed since this model was saved (sha256 "
                             f"{digest[:12]}, was {sha256[:12]}); load the teacher from the file again.")
        self.sha256 = digest
        self.runtime = open_runtime(self.file_path, threads)
        self.format = self.runtime.format

    def set_adapter(self, adapter: dict) -> None:
        """The adapter this layer applies from now on (`AdapterConfig` fields), checked."""
        self.adapter = dict(adapter)
        self.adapter_config = from_dict(AdapterConfig, self.adapter, "teacher.adapter.")
        check_adapter(self.adapter_config)

    def prepare(self, x, config: AdapterConfig | None = None):
        """The adapter in TensorFlow: raw NHWC RGB 0-255 images to the file's input."""
        a = config or self.adapter_config
        shape = tuple(self.runtime.input_shape)
        channels = (shape[0] if a.layout == "nchw" else shape[-1]) if len(shape) == 3 else None
        x = adapt_images(x, a, channels)
        return tf.transpose(x, [0, 3, 1, 2]) if a.layout == "nchw" else x

    def run(self, x: np.ndarray, config: AdapterConfig | None = None) -> np.ndarray:
        """The file on an adapted batch, in chunks of its fixed batch size if it has one; logits out, in the
        data's class order."""
        a = config or self.adapter_config
        x = np.asarray(x, np.float32)
        step = self.runtime.batch
        if not step or len(x) == step:
            y = self.runtime(x)
        else:
            parts = []
            for i in range(0, len(x), step):
                chunk = x[i:i + step]
                pad = step - len(chunk)
                if pad:
                    chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), np.float32)])
                parts.append(self.runtime(chunk)[:step - pad])
            y = np.concatenate(parts) if parts else np.zeros((0, self.classes), np.float32)
        y = np.asarray(y, np.float32).reshape(len(x), -1)
        if a.output == "probabilities":
            y = np.log(np.maximum(y, TINY))
        elif a.output == "sigmoid":
            y = sigmoid_logits(y)
        if a.class_order:
            y = reorder(y, a.class_order)
        return y.astype(np.float32)

    def predict(self, images, config: AdapterConfig | None = None, batch: int = 64) -> np.ndarray:
        """Logits of raw images through an adapter (this layer's, or `config`), in batches, outside any graph."""
        images = np.asarray(images, np.float32)
        parts = [self.run(self.prepare(images[i:i + batch], config).numpy(), config)
                 for i in range(0, len(images), batch)]
        return np.concatenate(parts) if parts else np.zeros((0, self.classes), np.float32)

    def call(self, x):
        y = tf.numpy_function(self.run, [self.prepare(x)], tf.float32, stateful=False)
        return tf.ensure_shape(y, (None, self.classes))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.classes)

    def get_config(self):
        return {**super().get_config(), "path": self.file_path, "adapter": self.adapter, "classes": self.classes,
                "sha256": self.sha256, "threads": self.threads}


SIGMOID_NOTE = "outputs sigmoid scores ({why}): their logits, log(p / (1 - p)), are read by the KD losses"


def adapt_images(x, a: AdapterConfig, channels: int | None = None):
    """Raw NHWC 0-255 images to what a teacher takes: resize, grey to RGB, channel order, scale, mean, std.

    Args:
        x: a batch of raw images.
        a: the adapter (`AdapterConfig`).
        channels: the channels the teacher takes; a grey batch is repeated to 3 when it takes 3.
    """
    x = tf.cast(x, tf.float32)
    if a.size:
        x = tf.image.resize(x, a.size, method="bilinear")
    if channels == 3 and x.shape[-1] == 1:
        x = tf.repeat(x, 3, axis=-1)
    if a.channels == "bgr":
        x = x[..., ::-1]
    x = x * (1.0 if a.scale == "auto" else a.scale)
    if a.mean:
        x = x - tf.constant(a.mean, tf.float32)
    if a.std:
        x = x / tf.constant(a.std, tf.float32)
    return x


def looks_like_sigmoid(rows) -> bool:
    """Rows of scores in [0, 1] that do not sum to 1, whose largest is mostly above 0.5: a sigmoid per class."""
    rows = np.asarray(rows, np.float64)
    return (rows.ndim == 2 and rows.shape[1] > 1 and len(rows) > 0 and rows.min() >= 0 and rows.max() <= 1 + 1e-6
            and not looks_like_probabilities(rows) and float(rows.max(-1).mean()) >= 0.5)


def sigmoid_logits(p):
    """log(p / (1 - p)): the scores before a sigmoid, which the KD losses read as logits."""
    p = np.clip(np.asarray(p, np.float64), 1e-7, 1 - 1e-7)
    return (np.log(p) - np.log1p(-p)).astype(np.float32)


def looks_like_probabilities(rows) -> bool:
    """Rows of scores that lie in [0, 1] and sum to 1: a softmax ending."""
    rows = np.asarray(rows, np.float64)
    return (rows.ndim == 2 and rows.shape[1] > 1 and rows.min() >= 0 and rows.max() <= 1 + 1e-6
            and bool(np.all(np.abs(rows.sum(-1) - 1) < 1e-3)))


def file_teacher_layer(model) -> FileTeacher | None:
    """The `FileTeacher` layer of a model built by `load_file_teacher`, else None."""
    for layer in getattr(model, "layers", ()):
        if isinstance(layer, FileTeacher):
            return layer
    return None


def load_file_teacher(path: str, input_shape, adapter=None, threads: int = 2, sample=None) -> keras.Model:
    """A Keras model over a teacher file, its adapter declared or inferred (see `open_file_teacher`)."""
    return open_file_teacher(path, input_shape, adapter, sample, threads=threads)[0]


def open_file_teacher(path: str, input_shape, adapter=None, sample=None, class_names=(), threads: int = 2,
                      check_fit: bool = True, classes: int | None = None):
    """A teacher file as a frozen Keras model over the data's raw images, and what its adapter was made of.

    What `adapter` leaves unset is inferred (`kd_keras.teachers.infer`):
    the layout from the file's input shape, the size from its fixed input,
    the value range and a class order on `sample`, the output from its rows.

    Args:
        path: `.onnx`, `.tflite` or SavedModel folder.
        input_shape: one image of the data, `(height, width, channels)`.
        adapter: `AdapterConfig` or a dict of its fields (all optional).
        sample: `(images, int labels)` of training data: the value range is
            inferred on them and the class order checked; None: raw 0-255.
        class_names: the data's class names, for `class_order` and messages.
        threads: CPU threads of the runtime.
        check_fit: refuse a teacher no better than chance on `sample`.
        classes: the data's number of classes, if known: a teacher with
            another number of outputs is not probed (the caller refuses it).

    Returns:
        `(model, notes, record)`: the model, one sentence per adapter value,
        and `{"declared": {...}, "inferred": {...}}` for the report.

    Raises:
        ValueError: an adapter value no file takes, a file whose input does
            not fit the adapted images (with the adapter setting that would),
            an output that is not one row of class scores per image, a teacher
            whose classes come in another order, or one no better than chance.
    """
    adapter = to_dict(adapter) if dataclasses.is_dataclass(adapter) else dict(adapter or {})
    given = to_dict(from_dict(AdapterConfig, adapter, "teacher.adapter."))
    layer = FileTeacher(path, given, threads=threads, name="file_teacher")
    name = f"{os.path.basename(os.path.normpath(path))} ({FORMAT_NAMES[layer.format]})"
    shape, (dh, dw, dc) = tuple(layer.runtime.input_shape), tuple(input_shape)
    notes, inferred = [], {}
    if given["layout"] != "auto":
        layout = given["layout"]
        notes.append(f"layout {layout} declared (teacher.adapter.layout)")
    elif len(shape) == 3:
        layout, sentence = infer_layout(shape)
        notes.append(sentence)
        inferred["layout"] = layout
    else:
        layout = "nhwc"  # not an image batch: refused by _check_input
    size = list(given["size"])
    spatial = (shape[1:3] if layout == "nchw" else shape[:2]) if len(shape) == 3 else ()
    if size:
        notes.append(f"images resized {dh}x{dw} -> {size[0]}x{size[1]} in the adapter (teacher.adapter.size, declared)")
    elif spatial and all(spatial) and tuple(spatial) != (dh, dw):
        size = inferred["size"] = [int(spatial[0]), int(spatial[1])]
        notes.append(f"images resized {dh}x{dw} -> {size[0]}x{size[1]} in the adapter (the file's fixed input size, "
                     f"inferred)")
    if len(shape) == 3 and dc == 1 and (shape[0] if layout == "nchw" else shape[-1]) == 3:
        notes.append("grey images repeated to RGB (the file takes 3 channels)")
    quantised = getattr(layer.runtime, "input_quantization", None)
    if quantised:
        notes.append(quantised)
    layer.set_adapter({**given, "layout": layout, "size": size, "scale": 1.0, "channels": "rgb", "output": "logits",
                       "class_order": []})
    _check_input(layer, tuple(input_shape), name)
    probe = np.full((1, *input_shape), 128.0, np.float32)
    try:
        out = layer.runtime(np.repeat(layer.prepare(probe).numpy(), layer.runtime.batch or 1, axis=0))
    except Exception as e:  # each runtime raises its own types for a wrong input
        raise ValueError(f"teacher {name} fails on the data's images after teacher.adapter "
                         f"({str(e).strip().splitlines()[0][:160]}); check teacher.adapter.") from None
    if out.ndim != 2:
        raise ValueError(f"teacher {name} outputs shape {tuple(out.shape)} per batch, not (batch, classes); a teacher "
                         f"file serves logit losses (classification); use a Keras teacher for other tasks.")
    layer.classes = width = int(out.shape[1])
    classes = classes or len(class_names) or width
    if width != classes:
        sample = None  # refused by the caller for its width: no probe first
    base = dict(layer.adapter)
    channels = (shape[0] if layout == "nchw" else shape[-1]) if len(shape) == 3 else dc
    fields, range_notes = range_and_order(
        given, lambda f, x: layer.predict(x, from_dict(AdapterConfig, {**base, **f}, "")),
        sample, class_names, classes, channels or dc, name, check_fit=check_fit)
    notes += range_notes
    if not declared_range(given):
        inferred.update({k: fields[k] for k in RANGE_KEYS})
    final = {**base, **fields}
    rows = (layer.predict(sample[0][:64], from_dict(AdapterConfig, final, "")) if sample is not None
            else layer.run(layer.prepare(probe).numpy(), from_dict(AdapterConfig, final, "")))
    output = given["output"]
    if output == "auto":  # rows in [0, 1] that sum to 1: a softmax ending; that do not: a sigmoid
        output = inferred["output"] = ("probabilities" if looks_like_probabilities(rows) else
                                       "sigmoid" if looks_like_sigmoid(rows) else "logits")
        if output == "probabilities":
            notes.append("outputs probabilities (its rows lie in [0, 1] and sum to 1, inferred): their log is read as "
                         "logits by the KD losses")
        elif output == "sigmoid":
            notes.append(SIGMOID_NOTE.format(why="its scores lie in [0, 1] and do not sum to 1, inferred"))
    elif output == "logits" and (looks_like_probabilities(rows) or looks_like_sigmoid(rows)):
        kind = "probabilities" if looks_like_probabilities(rows) else "sigmoid"
        raise ValueError(f"teacher {name} outputs {'probabilities (each row sums to 1)' if kind == 'probabilities' else 'sigmoid scores (in [0, 1], rows not summing to 1)'}, "
                         f"not logits; set teacher.adapter.output = \"{kind}\" (or \"auto\").")
    else:
        notes.append(f"outputs {output} (teacher.adapter.output, declared)")
    layer.set_adapter({**final, "output": output})
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    model = keras.Model(inputs, layer(inputs), name=f"{layer.format}_file_teacher")
    model.trainable = False
    return model, notes, {"declared": declared(given), "inferred": inferred}


def describe(model) -> dict:
    """What the report shows of a file teacher: its file name and format, size, parameters, runtime."""
    layer = file_teacher_layer(model)
    return {"arch": f"{os.path.basename(os.path.normpath(layer.file_path))} ({FORMAT_NAMES[layer.format]})",
            "size_bytes": file_size(layer.file_path), "params": file_params(layer.file_path, layer.format),
            "runtime": layer.runtime.engine, "file": layer.file_path, "format": layer.format}


def _check_input(layer: FileTeacher, image_shape: tuple, name: str) -> None:
    """The file's input against the adapted image shape, with the setting that would make them fit."""
    a, want = layer.adapter_config, tuple(layer.runtime.input_shape)
    h, w = a.size or image_shape[:2]
    c = image_shape[2]
    if len(want) == 3 and c == 1 and (want[0] if a.layout == "nchw" else want[-1]) == 3:
        c = 3  # grey images are repeated to RGB for a 3-channel file (adapt_images)
    if a.mean and len(a.mean) not in (1, c) or a.std and len(a.std) not in (1, c):
        raise ValueError(f"teacher.adapter.mean and std need 1 or {c} values (the data's channels), got "
                         f"{a.mean!r} and {a.std!r}.")
    given = (c, h, w) if a.layout == "nchw" else (h, w, c)
    if len(want) != 3:
        raise ValueError(f"teacher {name} takes inputs of rank {len(want) + 1} (per example {want}), not a batch "
                         f"of images (rank 4); a teacher file needs one image input.")
    if all(d is None or d == g for d, g in zip(want, given)):
        return
    fh, fw, fc = want if a.layout == "nhwc" else (want[1], want[2], want[0])
    hints = []
    if a.layout == "nhwc" and want[0] in (1, 3) and want[2] not in (1, 3):
        hints.append("teacher.adapter.layout = \"nchw\"")
        fc, fh, fw = want
    elif a.layout == "nchw" and want[2] in (1, 3) and want[0] not in (1, 3):
        hints.append("teacher.adapter.layout = \"nhwc\"")
        fh, fw, fc = want
    if fh and fw and (fh, fw) != (h, w):
        hints.append(f"teacher.adapter.size = [{fh}, {fw}]")
    fix = "set " + " and ".join(hints) if hints else ""
    if fc and fc != c:
        fix += ("; " if fix else "") + f"the file takes {fc} channels and the data has {c}"
    raise ValueError(f"teacher {name} takes images of shape {want} per example, but the data's images after "
                     f"teacher.adapter are {given}; {fix or 'check teacher.adapter'}.")
