"""One entry for a teacher that is a file: `.keras` (any architecture), `.onnx`, `.tflite` or a SavedModel folder.

Example:
    >>> teacher = kd_keras.load_teacher("my_teacher.keras", input_shape=(32, 32, 3), sample=(x_train, y_train))
       teacher: images resized 32x32 -> 96x96 inside the graph (the teacher's input size, inferred)
       teacher: outputs probabilities (it ends in a softmax, inferred): their log is read as logits by the KD losses
"""

from __future__ import annotations

import os

from kd_keras.config import find_file
from kd_keras.models.files import is_model_file
from kd_keras.teachers.files import FORMAT_NAMES, describe, file_teacher_layer, open_file_teacher, teacher_file_format
from kd_keras.teachers.keras_file import load_keras_teacher


def teacher_format(value) -> str:
    """"keras", "onnx", "tflite" or "saved_model" when `value` names a teacher file, else ""."""
    if not value:
        return ""
    if is_model_file(value):
        return "keras"
    return teacher_file_format(os.fspath(value))


def teacher_file(tc) -> tuple[str, str]:
    """`(path, format)` of a recipe's teacher file (`teacher.model`, or the 0.1 `teacher.weights` of a
    non-Keras file), else `("", "")`. A `.keras` path in `teacher.weights` stays weights for `teacher.model`."""
    fmt = teacher_format(tc.model)
    if fmt:
        return str(find_file(tc.model)), fmt
    fmt = teacher_file_format(tc.weights)
    return (str(find_file(tc.weights)), fmt) if fmt else ("", "")


def open_teacher(path, input_shape, adapter=None, sample=None, threads: int = 2, log=None, class_names=(),
                 classes=None, check_fit: bool = True):
    """`(model, notes, record)`: the teacher file as a Keras model over the data's raw images, a sentence per
    adapter value, and `{"declared": {...}, "inferred": {...}}` (see `kd_keras.teachers.infer`)."""
    fmt = teacher_format(path)
    if fmt == "keras":
        return load_keras_teacher(path, input_shape, adapter, sample, log, classes, class_names, check_fit)
    if not fmt:
        raise ValueError(f"teacher {os.fspath(path)!r} is not a teacher file: pass a .keras, .onnx or .tflite file "
                         f"or a SavedModel folder.")
    model, notes, record = open_file_teacher(path, input_shape, adapter, sample, class_names, threads, check_fit,
                                              classes)
    layer = file_teacher_layer(model)
    notes = [f"run by {describe(model)['runtime']} ({FORMAT_NAMES[layer.format]} file)", *notes]
    for note in notes:
        if log is not None:
            log(f"   teacher: {note}")
    return model, notes, record


def load_teacher(path, input_shape, adapter=None, sample=None, log=print, class_names=()):
    """A teacher file as a frozen Keras model that takes the data's raw 0-255 images and gives logits.

    Args:
        path: a `.keras` model of any architecture, an `.onnx` or `.tflite`
            file, or a SavedModel folder.
        input_shape: one image of the data, `(height, width, channels)`.
        adapter: `AdapterConfig` fields (dict), all optional: layout, size,
            scale, mean, std, channels, output, class_order; what is not
            declared is inferred (`kd_keras.teachers.infer`).
        sample: `(images, int labels)` of training data, on which the value
            range is inferred (a teacher with no preprocessing layer of its
            own) and the class order checked.
        log: where the sentences on what was adapted go (None: nowhere).
        class_names: the data's class names (for `class_order`).

    A `.keras` teacher is adapted in-graph (see `kd_keras.teachers.keras_file`)
    and can run live; the other formats run in their runtime, in the cache
    pass only (`Distiller.fit(..., teacher_cache="auto")`).
    """
    return open_teacher(path, input_shape, adapter, sample, log=log, class_names=class_names)[0]
