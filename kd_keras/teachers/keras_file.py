"""A teacher given as a `.keras` file of any architecture, adapted to the data's images.

A user's teacher is often a `keras.applications` or keras-hub network
fine-tuned on their classes: another input size than their images, its own
value range, and a softmax ending. `load_keras_teacher` loads the file
(safe mode) and, only where needed, wraps it in a model that takes the
data's raw 0-255 images:

- **size**: the images are resized inside the graph to the teacher's fixed
  input (or `teacher.adapter.size`);
- **channels**: grey images are repeated to RGB for a 3-channel teacher;
- **value range**: declared (`teacher.adapter.scale`, `mean`, `std`,
  `channels`), or inferred: raw 0-255 when the teacher has its own
  Rescaling/Normalization layer, else the range among `VALUE_RANGES` under
  which the teacher is most accurate on labelled training images;
- **output**: a teacher that gives probabilities (a final softmax, or rows
  in [0, 1] that sum to 1) is read through their log, which the KD losses
  take as logits: softmax(log p / T) is the teacher's own distribution;
- **class order**: declared (`teacher.adapter.class_order`), or checked: a
  teacher whose predictions map one to one onto the labels in another order
  is refused with that order (`kd_keras.teachers.infer`).

Every choice is returned as a sentence for the report, saying whether it
was declared or inferred.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from kd_keras.config import AdapterConfig, from_dict, to_dict
from kd_keras.models.files import final_activation, image_input, load_model_file, own_preprocessing
from kd_keras.teachers.files import (SIGMOID_NOTE, TINY, adapt_images, check_adapter, looks_like_probabilities,
                                     looks_like_sigmoid)
from kd_keras.teachers.infer import NEUTRAL, declared, declared_range, range_and_order

@keras.saving.register_keras_serializable("kd_keras")
class TeacherInputAdapter(keras.layers.Layer):
    """Raw 0-255 images to what a Keras teacher takes: resize, grey to RGB, channel order, scale, mean, std."""

    def __init__(self, adapter: dict | None = None, channels: int | None = None, **kwargs):
        kwargs.pop("trainable", None)
        super().__init__(trainable=False, **kwargs)
        self.adapter, self.channels = dict(adapter or {}), channels
        self.adapter_config = from_dict(AdapterConfig, self.adapter, "teacher.adapter.")

    def call(self, x):
        return adapt_images(x, self.adapter_config, self.channels)

    def compute_output_shape(self, input_shape):
        h, w = self.adapter_config.size or input_shape[1:3]
        return (input_shape[0], h, w, self.channels or input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "adapter": self.adapter, "channels": self.channels}


@keras.saving.register_keras_serializable("kd_keras")
class LogProbabilities(keras.layers.Layer):
    """log(p) of a teacher's probabilities: logits of the same distribution for the KD losses."""

    def call(self, p):
        return keras.ops.log(keras.ops.maximum(keras.ops.cast(p, "float32"), TINY))


@keras.saving.register_keras_serializable("kd_keras")
class SigmoidLogits(keras.layers.Layer):
    """log(p / (1 - p)) of a teacher's sigmoid scores: the scores before its sigmoid, for the KD losses."""

    def call(self, p):
        p = keras.ops.clip(keras.ops.cast(p, "float32"), 1e-7, 1 - 1e-7)
        return keras.ops.log(p) - keras.ops.log1p(-p)


@keras.saving.register_keras_serializable("kd_keras")
class ClassOrder(keras.layers.Layer):
    """A teacher's outputs in the data's class order: output `j` is data class `order[j]`."""

    def __init__(self, order=(), **kwargs):
        kwargs.pop("trainable", None)
        super().__init__(trainable=False, **kwargs)
        self.order = [int(v) for v in order]
        self.source = [self.order.index(c) for c in range(len(self.order))]

    def call(self, y):
        return keras.ops.take(y, self.source, axis=-1)

    def get_config(self):
        return {**super().get_config(), "order": self.order}


def load_keras_teacher(path, input_shape, adapter=None, sample=None, log=None, classes=None, class_names=(),
                       check_fit=True):
    """A `.keras` teacher of any architecture that takes the data's raw images and gives logits.

    Args:
        path: the `.keras` file.
        input_shape: one image of the data, `(height, width, channels)`.
        adapter: `AdapterConfig` or a dict of its fields (all optional).
        sample: `(images, int labels)` from the training data: the value
            range is inferred on them when the teacher has no preprocessing
            layer and none is declared, the class order and the output are checked.
        log: where the sentences go (None: nowhere).
        classes: the data's classes, if known: a teacher with another
            number of outputs is not probed (the caller refuses it).
        class_names: the data's class names, for `class_order` and messages.
        check_fit: refuse a teacher no better than chance on `sample`.

    Returns:
        `(model, notes, record)`: the teacher (the file's model itself when
        nothing needs adapting), a list of sentences on what was adapted and
        why, and `{"declared": {...}, "inferred": {...}}`.

    Raises:
        ValueError: not a model file, an unregistered custom layer, images
            the teacher cannot take, an adapter value no teacher takes, a
            teacher whose classes come in another order, or one no better
            than chance.
    """
    a = to_dict(adapter) if dataclasses.is_dataclass(adapter) else dict(adapter or {})
    given = to_dict(from_dict(AdapterConfig, a, "teacher.adapter."))
    config = from_dict(AdapterConfig, given, "teacher.adapter.")
    check_adapter(config)
    if config.layout not in ("auto", "nhwc"):
        raise ValueError(f"teacher.adapter.layout = {config.layout!r} is for ONNX files; a Keras teacher takes NHWC "
                         f"images: drop teacher.adapter.layout.")
    user = load_model_file(path, "teacher")
    width = user.outputs[0].shape[-1]
    classes = classes or len(class_names) or width
    if width != classes:
        sample = None  # refused by the caller for its width: no value-range probe first
    th, tw, tc = image_input(user, "teacher", path)
    dh, dw, dc = tuple(input_shape)
    if tc is not None and tc != dc and not (dc == 1 and tc == 3):
        fix = "convert the images to greyscale" if tc == 1 else f"give it images of {tc} channels"
        raise ValueError(f"teacher {path!r} takes {tc}-channel images, but the data's images have {dc} "
                         f"channel{'s' if dc != 1 else ''}; {fix}, or use a teacher trained on such images.")
    want = tc or dc
    for key in ("mean", "std"):
        values = getattr(config, key)
        if values and len(values) not in (1, want):
            raise ValueError(f"teacher.adapter.{key} has {len(values)} values, {list(values)!r}, but the teacher takes "
                             f"{want}-channel images; give 1 value or {want}.")
    fields, notes, inferred = {}, [], {}
    size = list(config.size) or ([th, tw] if th and tw and (th, tw) != (dh, dw) else [])
    if size:
        fields["size"] = size
        how = "teacher.adapter.size, declared" if config.size else "the teacher's input size, inferred"
        notes.append(f"images resized {dh}x{dw} -> {size[0]}x{size[1]} inside the graph ({how})")
        if not config.size:
            inferred["size"] = size
    channels = 3 if tc == 3 and dc == 1 else None
    if channels:
        notes.append("grey images repeated to RGB (the teacher takes 3 channels)")
    own = own_preprocessing(user)
    fixed = (dict(NEUTRAL), f"raw 0-255 pixels: the teacher normalises them itself ({own})") if own else None
    name = repr(str(path))
    forward = (lambda f, x: _predict(_wrap(user, {**fields, **f}, channels, input_shape, "logits"), x))
    settled, range_notes = range_and_order(given, forward, sample, class_names, classes, tc or dc, name, fixed,
                                           check_fit)
    notes += range_notes
    order = settled.pop("class_order", None)
    if not declared_range(given):
        inferred.update(settled)
    fields.update({k: v for k, v in settled.items() if v != NEUTRAL[k]})
    ending = final_activation(user)
    if config.output == "auto":
        if ending:
            output, why = ("probabilities" if ending == "softmax" else "sigmoid"), f"it ends in a {ending}, inferred"
        elif sample is not None and len(sample[0]):
            rows = _predict(_wrap(user, fields, channels, input_shape, "logits"), sample[0][:64])
            output = ("probabilities" if looks_like_probabilities(rows) else
                      "sigmoid" if looks_like_sigmoid(rows) else "logits")
            why = f"its rows lie in [0, 1] and {'sum' if output == 'probabilities' else 'do not sum'} to 1, inferred"
        else:
            output, why = "logits", ""
        inferred["output"] = output
    else:
        output, why = config.output, "teacher.adapter.output, declared"
    if output == "probabilities":
        notes.append(f"outputs probabilities ({why}): their log is read as logits by the KD losses")
    elif output == "sigmoid":
        notes.append(SIGMOID_NOTE.format(why=why))
    model = _wrap(user, fields, channels, input_shape, output, order)
    for note in notes:
        if log is not None:
            log(f"   teacher: {note}")
    return model, notes, {"declared": declared(given), "inferred": inferred}


def _wrap(user, fields: dict, channels, input_shape, output: str, order=None):
    adapt = {k: v for k, v in fields.items() if k != "output"}
    if not adapt and not channels and output not in ("probabilities", "sigmoid") and not order:
        return user
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = TeacherInputAdapter(adapt, channels, name="teacher_input_adapter")(inputs) if adapt or channels else inputs
    y = user(x)
    if output == "probabilities":
        y = LogProbabilities(name="log_probabilities")(y)
    elif output == "sigmoid":
        y = SigmoidLogits(name="sigmoid_logits")(y)
    if order:
        y = ClassOrder(order, name="class_order")(y)
    model = keras.Model(inputs, y, name=f"{user.name}_adapted")
    model.trainable = False
    return model


def _predict(model, images) -> np.ndarray:
    out = []
    for i in range(0, len(images), 64):
        out.append(np.asarray(keras.ops.convert_to_numpy(model(np.asarray(images[i:i + 64], np.float32),
                                                               training=False)), np.float64))
    return np.concatenate(out)
