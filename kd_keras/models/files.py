"""A model given as a `.keras` file: the user's own teacher or student, of any architecture.

`teacher.model` and `student.model` take a registered name or the path of
a `.keras` file (`--teacher my_teacher.keras`, `--student my_student.keras`).
The file is loaded with `keras.saving.load_model` in safe mode, so a
custom layer must be registered by a module named in `custom_objects`
(`--custom-objects MODULE`) before it loads.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
import zipfile

import keras

MODEL_SUFFIX = ".keras"


def is_model_file(name) -> bool:
    """Whether a `model` value names a `.keras` file rather than a registered model."""
    return isinstance(name, (str, os.PathLike)) and os.fspath(name).lower().endswith(MODEL_SUFFIX)


def import_custom_objects(modules) -> None:
    """Imports each module (a dotted name or a `.py` path), whose decorators register custom Keras objects.

    Raises:
        ValueError: a module that cannot be imported, named with its error.
    """
    if isinstance(modules, str):
        modules = [modules]
    for module in modules or ():
        try:
            if str(module).endswith(".py"):
                if not os.path.isfile(module):
                    raise FileNotFoundError(f"no such file {module!r}")
                name = "kd_keras_custom_" + re.sub(r"\W", "_", os.path.splitext(os.path.basename(module))[0])
                if name in sys.modules:
                    continue
                spec = importlib.util.spec_from_file_location(name, module)
                mod = importlib.util.module_from_spec(spec)
                sys.modules[name] = mod
                spec.loader.exec_module(mod)
            else:
                importlib.import_module(module)
        except Exception as e:  # any error of the user's module: name it in one line
            raise ValueError(f"--custom-objects / custom_objects {module!r} cannot be imported "
                             f"({type(e).__name__}: {str(e).strip().splitlines()[0][:160] if str(e).strip() else ''});"
                             f" pass a module name on sys.path or a .py file.") from None


def load_model_file(path, role: str = "teacher") -> keras.Model:
    """The Keras model saved in `path`, loaded in safe mode, with one-line errors that name the fix.

    Args:
        path: a `.keras` file.
        role: "teacher" or "student", for the messages (`--teacher`, `--student`).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a Keras model file, a custom object that is not
            registered, a Lambda layer (Python code safe mode does not
            load), or a model with more than one input or output.
    """
    path = os.fspath(path)
    flag = f"--{role} / {role}.model"
    if not os.path.exists(path):
        raise FileNotFoundError(f"{role} model file {path!r} does not exist; check {flag}.")
    if os.path.isdir(path) or not zipfile.is_zipfile(path):
        other = ", or pass an .onnx or .tflite teacher" if role == "teacher" else ""
        raise ValueError(f"{role} file {path!r} is corrupt or not a Keras model (a .keras file saved by model.save "
                         f"is a zip archive; this is not one); save "
                         f"the model with model.save(\"{role}.keras\"){other}.")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (OSError, zipfile.BadZipFile):
        names = set()
    if "config.json" not in names:
        raise ValueError(f"{role} file {path!r} is a zip archive but not a Keras model (no config.json); save the "
                         f"model with model.save(\"{role}.keras\").")
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as e:  # Keras raises TypeError, ValueError and others for a file it cannot rebuild
        text = " ".join(str(e).split())
        missing = missing_object(text)
        if missing:
            raise ValueError(f"{role} file {path!r} {missing}") from None
        if "Lambda" in text and "safe_mode" in text:
            raise ValueError(f"{role} file {path!r} has a Lambda layer, whose Python code Keras does not load in "
                             f"safe mode; replace it with a registered layer and pass --custom-objects "
                             f"MODULE.") from None
        raise ValueError(f"{role} file {path!r} cannot be loaded as a Keras model ({type(e).__name__}: "
                         f"{text[:200]}); check that it was saved by model.save with this Keras "
                         f"({keras.__version__}).") from None
    if not isinstance(model, keras.Model):
        raise ValueError(f"{role} file {path!r} holds a {type(model).__name__}, not a Keras model.")
    model = as_functional(model, path, role)
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError(f"{role} file {path!r} has {len(model.inputs)} inputs and {len(model.outputs)} outputs; a "
                         f"{role} takes one batch of images and gives one row of class scores per image.")
    return model


def as_functional(model: keras.Model, path: str, role: str) -> keras.Model:
    """A subclassed model (no symbolic inputs) wrapped in a functional one over its built input shape.

    Raises:
        ValueError: a subclassed model saved before it was built (no input shape recorded).
    """
    try:
        model.inputs  # noqa: B018  (a subclassed model raises AttributeError here)
        if model.inputs is not None:
            return model
    except AttributeError:
        pass
    shape = (model.get_build_config() or {}).get("input_shape") if model.built else None
    if not shape or not isinstance(shape, (list, tuple)) or isinstance(shape[0], (list, tuple, dict)):
        raise ValueError(f"{role} file {path!r} holds a subclassed model ({type(model).__name__}) saved before it "
                         f"was built, so its input shape is unknown; call it on a batch of images before "
                         f"model.save, or save a functional model.")
    inputs = keras.Input(tuple(shape[1:]), name="image")
    wrapped = keras.Model(inputs, model(inputs), name=model.name)
    wrapped.trainable = model.trainable
    return wrapped


PACKAGES = {"keras_hub": "keras-hub", "keras_nlp": "keras-nlp", "keras_cv": "keras-cv"}


def missing_object(text: str) -> str:
    """What a model file needs that is not here, from Keras' deserialization error, as the end of a sentence
    naming the package (keras-hub, keras-cv) or the class and `--custom-objects`; "" for other errors."""
    parent = re.search(r"Could not deserialize (?:class|function) '([^']+)' because its parent module ([\w.]+) "
                       r"cannot be imported", text)
    if parent:
        name, module = parent.groups()
        package = module.split(".")[0]
        pip = PACKAGES.get(package, package.replace("_", "-"))
        return (f"needs the package {pip} (its class {name!r} lives in {module}), which is not installed; pip install "
                f"{pip} and run the command again.")
    located = re.search(r"Could not locate (?:class|function) '([^']+)'", text)
    if located:
        module = re.search(r"'module': '([^']+)'", text[located.end():])
        where = (f" (saved from module {module.group(1)!r})"
                 if module and not module.group(1).startswith(("keras", "builtins")) else "")
        return (f"needs the custom object {located.group(1)!r}{where}, which is not registered; pass "
                f"--custom-objects MODULE (a module or .py file that defines it with "
                f"@keras.saving.register_keras_serializable()).")
    return ""


def final_activation(model: keras.Model) -> str:
    """"softmax" or "sigmoid" when a model ends in one (a `Softmax` layer, or a last layer with that
    activation), else ""."""
    last = model.layers[-1] if model.layers else None
    while isinstance(last, keras.Model) and last.layers:  # a nested model (Sequential inside Functional)
        last = last.layers[-1]
    if last is None:
        return ""
    if isinstance(last, keras.layers.Softmax):
        return "softmax"
    activation = getattr(getattr(last, "activation", None), "__name__", "")
    return activation if activation in ("softmax", "sigmoid") else ""


def final_softmax(model: keras.Model) -> bool:
    """Whether a model ends in a softmax: a `Softmax` layer or a layer whose activation is softmax."""
    return final_activation(model) == "softmax"


def own_preprocessing(model: keras.Model) -> str:
    """The in-graph preprocessing layer (Rescaling, Normalization) near a model's input, else "".

    Such a model takes raw 0-255 pixels (`keras.applications` EfficientNet,
    MobileNetV3, and a model built with `keras.layers.Rescaling(1 / 255)`).
    """
    kinds = (keras.layers.Rescaling, keras.layers.Normalization)
    for layer in _leading_layers(model, 6):
        if isinstance(layer, kinds):
            return f"{type(layer).__name__} layer {layer.name!r}"
    return ""


def _leading_layers(model, n: int) -> list:
    out = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            out += _leading_layers(layer, n - len(out))
        elif not isinstance(layer, keras.layers.InputLayer):
            out.append(layer)
        if len(out) >= n:
            break
    return out[:n]


def image_input(model: keras.Model, role: str, path: str) -> tuple:
    """`(height, width, channels)` of a model's one image input (None where free); refuses other inputs."""
    shape = tuple(model.inputs[0].shape[1:])
    if len(shape) != 3:
        raise ValueError(f"{role} file {path!r} takes inputs of shape {shape} per example, not images "
                         f"(height, width, channels).")
    return shape


def check_student_file(model: keras.Model, path: str, num_classes: int, input_shape) -> None:
    """A user's student against the data: one output per class, logits (no softmax), the data's images."""
    width = model.outputs[0].shape[-1]
    if len(model.outputs[0].shape) != 2 or width != num_classes:
        raise ValueError(f"student file {path!r} gives outputs of shape {tuple(model.outputs[0].shape[1:])} per "
                         f"image, but the data has {num_classes} classes; give it a final Dense({num_classes}).")
    ending = final_activation(model)
    if ending:
        raise ValueError(f"student file {path!r} ends in a {ending}; kd_keras trains logits: build its last layer "
                         f"without the activation (keras.applications: classifier_activation=None).")
    h, w, c = image_input(model, "student", path)
    want = tuple(input_shape)
    if c is not None and c != want[2]:
        raise ValueError(f"student file {path!r} takes {c}-channel images, but the data's have {want[2]}; build "
                         f"it for {want[2]} channels.")
    if (h is not None and h != want[0]) or (w is not None and w != want[1]):
        raise ValueError(f"student file {path!r} takes {h}x{w} images, but the data's are {want[0]}x{want[1]}; "
                         f"set data.image_size={h}.")


def saved_input_shape(path) -> tuple | None:
    """A `.keras` file's input shape per example, read from its config without building it (None: unknown)."""
    import json

    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json")).get("config", {})
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    shape = config.get("build_input_shape")
    for layer in config.get("layers", []):
        if layer.get("class_name") == "InputLayer":
            shape = layer.get("config", {}).get("batch_shape") or layer.get("config", {}).get("batch_input_shape")
            break
    return tuple(shape[1:]) if isinstance(shape, list) and len(shape) == 4 else None
