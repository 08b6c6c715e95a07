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
  take as logits: softmax(log p / T) is the teacher's own distribution.

Every choice is returned as a sentence for the report.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from kd_keras.config import AdapterConfig, from_dict, to_dict
from kd_keras.models.files import final_softmax, image_input, load_model_file, own_preprocessing
from kd_keras.teachers.files import TINY, adapt_images, check_adapter, looks_like_probabilities

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
VALUE_RANGES = {  # the preprocessing modes of keras.applications and torchvision, as adapter fields
    "raw 0-255": {},
    "[0, 1]": {"scale": 1 / 255},
    "[-1, 1]": {"scale": 1 / 127.5, "mean": [1.0]},
    "ImageNet mean/std on [0, 1] (torch)": {"scale": 1 / 255, "mean": IMAGENET_MEAN, "std": IMAGENET_STD},
    "BGR minus ImageNet means (caffe)": {"channels": "bgr", "mean": [103.939, 116.779, 123.68]},
}
RANGE_KEYS = ("scale", "mean", "std", "channels")
PROBE_IMAGES = 256


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


def load_keras_teacher(path, input_shape, adapter=None, sample=None, log=None, classes=None):
    """A `.keras` teacher of any architecture that takes the data's raw images and gives logits.

    Args:
        path: the `.keras` file.
        input_shape: one image of the data, `(height, width, channels)`.
        adapter: `AdapterConfig` or a dict of its fields (all optional).
        sample: `(images, int labels)` from the training data: the value
            range is inferred on them when the teacher has no preprocessing
            layer and none is declared, and the output is checked.
        log: where the sentences go (None: nowhere).
        classes: the data's classes, if known: a teacher with another
            number of outputs is not probed (the caller refuses it).

    Returns:
        `(model, notes)`: the teacher (the file's model itself when nothing
        needs adapting) and a list of sentences on what was adapted and why.

    Raises:
        ValueError: not a model file, an unregistered custom layer, images
            the teacher cannot take, or an adapter value no teacher takes.
    """
    a = to_dict(adapter) if dataclasses.is_dataclass(adapter) else dict(adapter or {})
    config = from_dict(AdapterConfig, a, "teacher.adapter.")
    check_adapter(config)
    if config.layout != "nhwc":
        raise ValueError(f"teacher.adapter.layout = {config.layout!r} is for ONNX files; a Keras teacher takes NHWC "
                         f"images: drop teacher.adapter.layout.")
    user = load_model_file(path, "teacher")
    if classes and user.outputs[0].shape[-1] != classes:
        sample = None  # refused by the caller for its width: no value-range probe first
    th, tw, tc = image_input(user, "teacher", path)
    dh, dw, dc = tuple(input_shape)
    if tc is not None and tc != dc and not (dc == 1 and tc == 3):
        fix = "convert the images to greyscale" if tc == 1 else f"give it images of {tc} channels"
        raise ValueError(f"teacher {path!r} takes {tc}-channel images, but the data's images have {dc} "
                         f"channel{'s' if dc != 1 else ''}; {fix}, or use a teacher trained on such images.")
    fields, notes = {"output": config.output}, []
    size = list(config.size) or ([th, tw] if th and tw and (th, tw) != (dh, dw) else [])
    if size:
        fields["size"] = size
        how = "teacher.adapter.size" if config.size else "the teacher's input size"
        notes.append(f"images resized {dh}x{dw} -> {size[0]}x{size[1]} inside the graph ({how})")
    channels = 3 if tc == 3 and dc == 1 else None
    if channels:
        notes.append("grey images repeated to RGB (the teacher takes 3 channels)")
    declared = {k: getattr(config, k) for k in RANGE_KEYS if getattr(config, k) != getattr(AdapterConfig(), k)}
    own = own_preprocessing(user)
    if declared:
        fields.update(declared)
        notes.append(f"value range declared: {_describe(declared)}")
    elif own:
        notes.append(f"raw 0-255 pixels: the teacher normalises them itself ({own})")
    elif sample is not None and len(sample[0]):
        name, scores = _probe_range(user, fields, channels, sample, tc or dc)
        fields.update(VALUE_RANGES[name])
        tried = ", ".join(f"{k} {100 * v:.1f}%" for k, v in scores.items())
        notes.append(f"value range {name} inferred: the teacher has no preprocessing layer, and it is most accurate "
                     f"under it on {len(sample[0])} training images ({tried}); declare teacher.adapter.scale/mean/std "
                     f"to override")
    else:
        notes.append("raw 0-255 pixels assumed (no preprocessing layer found and no labelled images to test "
                     "other ranges on); declare teacher.adapter.scale/mean/std to override")
    if config.output == "auto":
        if final_softmax(user):
            fields["output"], why = "probabilities", "it ends in a softmax"
        elif sample is not None and len(sample[0]):
            rows = _predict(_wrap(user, fields, channels, input_shape, "logits"), sample[0][:64])
            fields["output"] = "probabilities" if looks_like_probabilities(rows) else "logits"
            why = "its rows lie in [0, 1] and sum to 1"
        else:
            fields["output"], why = "logits", ""
    else:
        why = "teacher.adapter.output"
    if fields["output"] == "probabilities":
        notes.append(f"outputs probabilities ({why}): their log is read as logits by the KD losses")
    model = _wrap(user, fields, channels, input_shape, fields["output"])
    for note in notes:
        if log is not None:
            log(f"   teacher: {note}")
    return model, notes


def _wrap(user, fields: dict, channels, input_shape, output: str):
    adapt = {k: v for k, v in fields.items() if k != "output"}
    if not adapt and not channels and output != "probabilities":
        return user
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = TeacherInputAdapter(adapt, channels, name="teacher_input_adapter")(inputs) if adapt or channels else inputs
    y = user(x)
    if output == "probabilities":
        y = LogProbabilities(name="log_probabilities")(y)
    model = keras.Model(inputs, y, name=f"{user.name}_adapted")
    model.trainable = False
    return model


def _predict(model, images) -> np.ndarray:
    out = []
    for i in range(0, len(images), 64):
        out.append(np.asarray(keras.ops.convert_to_numpy(model(np.asarray(images[i:i + 64], np.float32),
                                                               training=False)), np.float64))
    return np.concatenate(out)


def _probe_range(user, fields, channels, sample, teacher_channels: int):
    """The value range under which the teacher is most accurate on the sample; ties go to the first listed."""
    images, labels = sample[0][:PROBE_IMAGES], np.asarray(sample[1][:PROBE_IMAGES])
    scores = {}
    for name, extra in VALUE_RANGES.items():
        if teacher_channels != 3 and len(extra.get("mean", [])) == 3:
            continue  # three-channel statistics on a one-channel teacher
        model = _wrap(user, {**fields, **extra, "output": "logits"}, channels, images.shape[1:], "logits")
        scores[name] = float(np.mean(_predict(model, images).argmax(-1) == labels))
    best = max(scores, key=lambda k: (scores[k], -list(VALUE_RANGES).index(k)))
    return best, scores


def _describe(fields: dict) -> str:
    return ", ".join(f"{k} = {v:.6g}" if isinstance(v, float) else f"{k} = {v}" for k, v in fields.items())
