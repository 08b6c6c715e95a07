"""The whole recipe config checked before anything trains: one line per mistake, naming the key and the fix."""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

from kd_keras.config import PATH_SOURCES, REPO_ROOT, AdapterConfig, Config, ModelConfig, find_file, to_dict
from kd_keras.config.fields import check_choices
from kd_keras.data.images import list_images
from kd_keras.data.tfds_source import missing_tfds
from kd_keras.data.unlabeled import check_unlabeled
from kd_keras.export.converters import QUANTIZE
from kd_keras.losses import create_loss
from kd_keras.models import list_models
from kd_keras.models.registry import check_pretrained, pretrained_weights, shipped_weights, shipped_weights_path
from kd_keras.models.files import import_custom_objects, is_model_file, load_model_file
from kd_keras.teachers.files import FORMAT_NAMES, check_adapter
from kd_keras.teachers.load import open_teacher, teacher_file, teacher_format
from kd_keras.teachers.source import check_teacher_cache

RESERVED = ("teacher", "baseline")


class LoadedTeacher(NamedTuple):
    """A teacher file, opened: the Keras model that runs it, its path and format, what was adapted, and which
    adapter values were declared and which inferred."""

    model: object
    path: str
    format: str
    notes: list
    adapter: dict
SHIPPED_TEACHERS_MB = 56  # saved_models/*.keras, 2026-11-30


def validate(cfg: Config, task=None, out_dir: str = "runs") -> list:
    """Checks the whole config before anything trains; returns the loss plans.

    Args:
        cfg: the recipe.
        task: the task it runs; its models and supervised loss are checked.
        out_dir: the output folder (the default teacher cache is in it).

    Returns:
        One `(DistillConfig, [loss objects])` pair per KD student.
    """
    if task is not None and task.missing_extra():
        raise ValueError(task.missing_extra())
    d = cfg.data
    if d.source == "tfds" and missing_tfds():
        raise ValueError(missing_tfds())
    if d.path and d.source not in PATH_SOURCES:
        readers = [s for s in (task.sources if task is not None else PATH_SOURCES) if s in PATH_SOURCES]
        raise ValueError(f"--data / data.path {d.path!r} would be ignored: this recipe's data.source {d.source!r} "
                         f"reads no path; add --set data.source=\"{readers[0]}\" (sources that read it: "
                         f"{', '.join(readers)}) or drop --data.")
    check_unlabeled(d, task.name if task is not None else cfg.task)
    known = list_models(task=task.name if task is not None else None)
    if cfg.custom_objects:
        import_custom_objects(cfg.custom_objects)
    for role, m in (("teacher", cfg.teacher), ("student", cfg.student)):
        if check_model_file(role, m, task):
            continue
        if m.model not in known:
            what = f"{task.name} models" if task is not None else "models"
            if str(m.model).lower().endswith((".h5", ".hdf5")):
                weights = str(m.model).lower().endswith(".weights.h5")
                how = (f"build the model, model.load_weights({m.model!r}), model.save(\"{role}.keras\")" if weights
                       else f"keras.models.load_model({m.model!r}).save(\"{role}.keras\")")
                raise ValueError(f"{role} {m.model!r} is {'a weights-only file' if weights else 'a legacy HDF5 model'}; "
                                 f"kd_keras reads whole models saved as .keras: {how}, and pass that file.")
            files = " or a .keras, .onnx or .tflite teacher file" if role == "teacher" else " or a .keras model file"
            raise ValueError(f"unknown {role} model {m.model!r}; pass a registered {what[:-1]} ({', '.join(known)})"
                             f"{files}.")
        check_pretrained(m.model, m.weights)
    if task is not None:
        try:
            task.hard_loss(cfg.train.hard_loss)
        except ValueError as e:
            raise ValueError(f"train.hard_loss: {e}") from None
    t = cfg.train
    check_choices(cfg)  # train.optimizer, schedule, precision, strategy: their values are declared in the schema
    if t.epochs < 1 or cfg.teacher.epochs < 0:
        raise ValueError(f"train.epochs must be >= 1 and teacher.epochs >= 0, got {t.epochs} and {cfg.teacher.epochs}.")
    if isinstance(t.pairs, bool) or not isinstance(t.pairs, int) or t.pairs < 1:
        raise ValueError(f"train.pairs (--pairs) must be an integer >= 1 (baseline and KD students trained that many "
                         f"times, paired), got {t.pairs!r}; --pairs 1 trains one of each.")
    if cfg.data.labels_per_class < 0:
        raise ValueError(f"data.labels_per_class must be >= 0 (0: every training image), got "
                         f"{cfg.data.labels_per_class}.")
    check_data_numbers(cfg.data)
    if not 0 <= t.warmup_epochs < t.epochs:
        raise ValueError(f"train.warmup_epochs = {t.warmup_epochs} is not shorter than the {t.epochs} training "
                         f"epochs; lower it (a few epochs of a long schedule).")
    if cfg.data.labels_per_class and task is not None and task.name != "classification":
        raise ValueError(f"data.labels_per_class applies to classification; a {task.name} recipe trains on every "
                         f"training image: remove it.")
    if t.precise_bn_batches < 0:
        raise ValueError(f"train.precise_bn_batches must be >= 0 (0: off), got {t.precise_bn_batches}.")
    check_teacher_cache(cfg, task, out_dir)
    if t.jit_compile not in (True, False, "auto"):
        raise ValueError(f"train.jit_compile must be true, false or \"auto\", got {t.jit_compile!r}.")
    if not t.learning_rate > 0 or cfg.teacher.learning_rate < 0:
        raise ValueError(f"train.learning_rate must be > 0, got {t.learning_rate}.")
    if cfg.data.repeats < 1 or cfg.data.patch_size < 0:
        raise ValueError(f"data.repeats must be >= 1 and data.patch_size >= 0, "
                         f"got {cfg.data.repeats} and {cfg.data.patch_size}.")
    if (cfg.report.edge_thresholds < 1 or not 0 < cfg.report.edge_max_dist < 1 or cfg.report.workers < 0
            or cfg.report.edge_max_images < 0):
        raise ValueError(f"report.edge_thresholds must be >= 1, report.edge_max_dist in (0, 1), report.workers and "
                         f"report.edge_max_images >= 0, got {cfg.report.edge_thresholds}, {cfg.report.edge_max_dist}, "
                         f"{cfg.report.workers}, {cfg.report.edge_max_images}.")
    bad = [q for q in cfg.report.export_quantize if q not in QUANTIZE]
    if bad or cfg.report.export_threads < 1 or cfg.report.export_runs < 50:
        raise ValueError(f"report.export_quantize must list modes from {', '.join(QUANTIZE)}, report.export_threads "
                         f"be >= 1 and report.export_runs >= 50, got {cfg.report.export_quantize}, "
                         f"{cfg.report.export_threads}, {cfg.report.export_runs}.")
    if cfg.report.latency_runs < 20 or cfg.report.rounds < 1:
        raise ValueError(f"report.latency_runs must be >= 20 and report.rounds >= 1, "
                         f"got {cfg.report.latency_runs} and {cfg.report.rounds}.")
    plans, names = [], set()
    for i, d in enumerate(cfg.distill):
        where = f"distill.{i}"
        if d.name in RESERVED or d.name in names or not d.name or re.search(r"_pair\d+$", d.name):
            raise ValueError(f"{where}.name must be unique, not {' or '.join(RESERVED)}, and not end in _pair<N> "
                             f"(the names of paired runs), got {d.name!r}.")
        names.add(d.name)
        if d.student:
            unknown = sorted(set(d.student) - {"model", "options"})
            if not unknown and check_model_file(f"{where}.student", ModelConfig(**d.student), task):
                pass
            elif unknown or d.student.get("model") not in known:
                raise ValueError(f"{where}.student must be {{ model = NAME, options = {{...}} }} with a registered "
                                 f"model, got {d.student!r}; registered models: {', '.join(known)}.")
        if not 0.0 <= d.student_loss_weight <= 1.0:
            raise ValueError(f"{where}.student_loss_weight must be between 0.0 and 1.0, got {d.student_loss_weight}.")
        if not d.losses:
            raise ValueError(f"{where}.losses is empty; give at least one, e.g. {{ method = \"kd\" }}.")
        epochs = d.epochs or t.epochs
        if d.epochs < 0 or d.warmup_epochs < 0:
            raise ValueError(f"{where}.epochs and {where}.warmup_epochs must be >= 0, got {d.epochs} and "
                             f"{d.warmup_epochs}.")
        if d.warmup_epochs >= epochs:
            raise ValueError(f"{where}.warmup_epochs = {d.warmup_epochs} is not shorter than the student's "
                             f"{epochs} training epochs; lower it (DKD warms up over 20 of 240 epochs).")
        try:
            data = d.data_config(cfg.data)
        except ValueError as e:
            raise ValueError(f"{where}.augment: {str(e).split(': ', 1)[-1]}") from None
        if d.augment and task is not None and t.teacher_cache == "views" and task.replay_blocker(data):
            raise ValueError(f"{where}.augment cannot be replayed as stored views ({task.replay_blocker(data)}); "
                             f"set train.teacher_cache = \"auto\" or change the augmentation.")
        if d.augment and task is not None and t.teacher_cache in ("memory", "disk") and task.random_inputs(data):
            raise ValueError(f"{where}.augment makes this student's inputs random ({task.random_inputs(data)}), "
                             f"which train.teacher_cache = {t.teacher_cache!r} cannot serve; set it to \"auto\".")
        if d.transfer:
            check_transfer(d.transfer, where, task)
        if isinstance(d.labeled_share, bool) or not isinstance(d.labeled_share, (int, float)) \
                or not 0.0 <= d.labeled_share < 1.0:
            raise ValueError(f"{where}.labeled_share must be in [0, 1) (0: every image once per pass over the "
                             f"transfer set), got {d.labeled_share!r}.")
        losses = []
        for j, l in enumerate(d.losses):
            if l.weight < 0:
                raise ValueError(f"{where}.losses.{j}.weight must be >= 0, got {l.weight}.")
            try:
                losses.append(create_loss(l.method, kind="distill", **l.options))
            except (ValueError, TypeError) as e:
                raise ValueError(f"{where}.losses.{j}: {e}") from None
        if d.teacher_scales or d.teacher_flip:
            check_teacher_tta(d, where, task, data, t.teacher_cache, losses)
        plans.append((d, losses))
    check_file_teacher(cfg, task, plans)
    return plans


def check_data_numbers(d) -> None:
    """`data.limit`, `image_size`, `val_fraction`, `batch_size` and `max_image_pixels`: one line naming the key."""
    for key, value, low in (("limit", d.limit, 0), ("image_size", d.image_size, 0), ("batch_size", d.batch_size, 1),
                            ("max_image_pixels", d.max_image_pixels, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            zero = {"limit": " (0: every image)", "image_size": " (0: the images' own size)"}.get(key, "")
            raise ValueError(f"data.{key} must be an integer >= {low}{zero}, got {value!r}.")
    if not 0.0 < d.val_fraction < 1.0 and not (d.val_sets and 0.0 <= d.val_fraction < 1.0):
        raise ValueError(f"data.val_fraction must be in (0, 1): every run validates each epoch on the images it "
                         f"holds out, got {d.val_fraction!r}; e.g. --set data.val_fraction=0.1.")


def check_split_sizes(s, d) -> None:
    """Every split holds an image: too few images for the splits get one line, before anything trains."""
    sizes = (("training", s.num_train), ("validation", s.num_val), ("test", s.num_test))
    empty = [name for name, n in sizes if n < 1]
    if empty:
        splits = f"split{'s' if len(empty) > 1 else ''}"
        raise ValueError(f"the data ({s.description}) leaves the {' and '.join(empty)} {splits} "
                         f"empty ({s.num_train} training / {s.num_val} validation / {s.num_test} test images, "
                         f"data.val_fraction = {d.val_fraction}, data.limit = {d.limit}); give more images.")
    counts = getattr(s, "class_counts", None) or {}
    train = counts.get("train")
    if train and min(train) < 1:
        names = list(getattr(s, "class_names", None) or range(len(train)))
        missing = [str(names[i]) for i, n in enumerate(train) if n < 1]
        total = [train[i] + counts.get("val", [0] * len(train))[i] + counts.get("test", [0] * len(train))[i]
                 for i, n in enumerate(train) if n < 1]
        why = (f"data.limit = {d.limit} (or --smoke) keeps {d.limit} images" if d.limit and
               s.num_train + s.num_val >= d.limit else "the validation and test splits took its images")
        raise ValueError(f"class{'es' if len(missing) > 1 else ''} {', '.join(map(repr, missing[:5]))} of the data "
                         f"({s.description}) ha{'ve' if len(missing) > 1 else 's'} no training image "
                         f"({total[0]} in all; {why}); add images to {'them' if len(missing) > 1 else 'it'}, or "
                         f"remove the class.")


def per_class(s) -> str:
    """Images per class in each split, for the log: `T-shirt/top 23/3/26, ...` (train/val/test)."""
    counts = getattr(s, "class_counts", None) or {}
    if not counts.get("train"):
        return ""
    names = list(getattr(s, "class_names", None) or range(len(counts["train"])))
    rows = list(zip(names, *(counts.get(k, [0] * len(names)) for k in ("train", "val", "test"))))
    if len(rows) > 20:
        train = counts["train"]
        return f"images per class, train: {min(train)} to {max(train)} (mean {sum(train) / len(train):.1f})"
    return "images per class (train/val/test): " + ", ".join(f"{n} {a}/{b}/{c}" for n, a, b, c in rows)


def check_model_file(role: str, m, task) -> bool:
    """Whether `m.model` names a model file (`--teacher`, `--student`); if so, checked before any data loads.

    Raises:
        FileNotFoundError: the file is not there.
        ValueError: `options` or `weights` beside it, or a student file on a task other than classification.
    """
    teacher = role == "teacher"
    if not (teacher_format(m.model) if teacher else is_model_file(m.model)):
        return False
    flag = f"--{role}" if role in ("teacher", "student") else f"{role}.model"
    if not find_file(m.model).exists():
        raise FileNotFoundError(f"{role} model file {m.model!r} does not exist; check {flag}.")
    if m.options or m.weights:
        raise ValueError(f"{role}.model {m.model!r} is a model file, which carries its own architecture and weights; "
                         f"drop {role}.options and {role}.weights.")
    if not teacher and task is not None and task.name != "classification":
        raise ValueError(f"{role}.model {m.model!r}: a student file serves classification; a {task.name} student "
                         f"must be a registered model ({', '.join(list_models(task=task.name))}).")
    return True


def check_transfer(folders, where: str, task) -> None:
    """A `[[distill]]` entry's `transfer` folders: a list of existing folders with images, on a task that has them."""
    if not isinstance(folders, list) or not all(isinstance(f, str) and f for f in folders):
        raise ValueError(f"{where}.transfer must be a list of image folders, e.g. [\"photos/\"], got {folders!r}.")
    if task is not None and task.transfer_blocker():
        raise ValueError(f"{where}.transfer: {task.transfer_blocker()}; remove it.")
    for folder in folders:
        try:
            list_images(folder, f"{where}.transfer")
        except (FileNotFoundError, ValueError) as e:
            raise ValueError(str(e).replace("check data.path", f"check {where}.transfer")) from None


def check_teacher_tta(d, where: str, task, data, teacher_cache: str, losses: list) -> None:
    """`teacher_scales` / `teacher_flip`: numbers in (0, 4], on a student whose teacher runs once per whole image."""
    scales = d.teacher_scales
    if not isinstance(scales, list) or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                               and 0 < x <= 4 for x in scales):
        raise ValueError(f"{where}.teacher_scales must be a list of scales in (0, 4], e.g. [0.5, 1.0, 1.5], "
                         f"got {scales!r}.")
    blocker = task.maps_blocker(data) if task is not None else ""
    features = [loss.teacher_layer_name for loss in losses if loss.teacher_layer_name]
    if teacher_cache == "off" or features or blocker:
        why = ("train.teacher_cache = \"off\"" if teacher_cache == "off" else
               f"the losses read the teacher's feature {', '.join(features)}" if features else blocker)
        raise ValueError(f"{where}.teacher_scales and teacher_flip apply only to whole-image teacher maps (edge "
                         f"detection), and here {why}; remove them.")


def check_file_teacher(cfg: Config, task, plans: list) -> None:
    """A teacher file (`.onnx`, `.tflite`, SavedModel) runs only in the cache pass: what would need more is refused.

    Its output comes from its runtime, once per input or stored view
    (`kd_keras.teachers.files`); it cannot be trained, read inside, or called
    in a training step.
    """
    tc, t = cfg.teacher, cfg.train
    path, fmt = teacher_file(tc)
    if not fmt:
        if to_dict(tc.adapter) != to_dict(AdapterConfig()):
            raise ValueError(f"teacher.adapter is set, but the teacher {tc.model!r} is not a teacher file (.keras, "
                             f".onnx, .tflite or a SavedModel folder); a registered model owns its preprocessing, so "
                             f"drop teacher.adapter.")
        return
    check_adapter(tc.adapter)
    if fmt == "keras":
        if task is not None and task.name != "classification" and to_dict(tc.adapter) != to_dict(AdapterConfig()):
            raise ValueError(f"teacher.adapter adapts classifiers; a {task.name} teacher file takes the data's images "
                             f"as they are: drop teacher.adapter.")
        return  # a Keras teacher runs live, trains and shows its layers like a registered one
    key = "teacher.model" if teacher_format(tc.model) else "teacher.weights"
    what = f"{key} {getattr(tc, key.split('.')[1])!r} is a {FORMAT_NAMES[fmt]} file"
    if task is not None and not {"outputs", "views"} & set(task.accepts):  # a file teacher runs in a cache pass
        raise ValueError(f"{what}, which serves logit losses (classification); a {task.name} teacher must be a "
                         f"Keras model (.keras).")
    if tc.finetune:
        raise ValueError(f"{what}, which cannot be trained; set teacher.finetune = false.")
    if t.teacher_cache == "off":
        raise ValueError(f"{what}, which runs once in the teacher cache pass, never in the training step; set "
                         f"train.teacher_cache = \"auto\".")
    for d, losses in plans:
        for j, loss in enumerate(losses):
            layer = getattr(loss, "teacher_layer_name", None)
            if layer:
                raise ValueError(f"distill entry {d.name!r}: losses.{j} ({d.losses[j].method}) reads the teacher's "
                                 f"layer {layer!r}, but {what} and gives its final output only; feature losses "
                                 f"need a Keras teacher (.keras).")
        data = d.data_config(cfg.data)
        random = task.random_inputs(data) if task is not None else ""
        if random and task.replay_blocker(data):
            raise ValueError(f"{what}, which runs once in the teacher cache pass, but distill entry {d.name!r} "
                             f"trains on {random}, which the cache cannot replay ({task.replay_blocker(data)}); use "
                             f"replayable augmentation (flip, crop, translation, MixUp, CutMix) or a Keras teacher.")


def check_teacher_weights(cfg: Config) -> None:
    """Refuses a teacher file that is not on this machine (and will not be trained), before any data loads.

    Apart from `validate`: a recipe stays valid without the file, which the user supplies (e.g. BiT-M).
    """
    tc = cfg.teacher
    if teacher_format(tc.model):
        return  # a teacher file: checked by check_model_file
    named = pretrained_weights(tc.model)
    if tc.weights in shipped_weights(tc.model):
        shipped_weights_path(tc.model, tc.weights)  # there and unchanged, before any data loads
        return
    if (tc.weights and tc.weights != "imagenet" and tc.weights not in named and not tc.train_if_missing
            and not find_file(tc.weights).exists()):
        hint = f" or one of {tc.model}'s named weights ({', '.join(named)})" if named else ""
        if Path(tc.weights).parts[0] == "saved_models" and not (REPO_ROOT / "saved_models").is_dir():
            hint += (" (the shipped teachers are not inside the installed package, which they would make "
                     f"{SHIPPED_TEACHERS_MB} MB larger: copy {tc.weights} from a clone of the kd_keras repository, "
                     "with its model card, and pass its path)")
        raise FileNotFoundError(f"teacher weights {tc.weights!r} do not exist; fix teacher.weights{hint}, or set "
                                f"teacher.train_if_missing=true to train the teacher.")
    if tc.weights and tc.weights != "imagenet" and tc.weights not in named:
        from kd_keras.models.registry import corrupt_model_file

        corrupt = corrupt_model_file(str(find_file(tc.weights)))
        if corrupt:
            raise ValueError(f"teacher weights {tc.weights!r} {corrupt}; fix teacher.weights.")


def check_models(cfg: Config, plans: list, new_model, input_shape=None, task=None, sample=None, class_names=(),
                 classes=None):
    """Builds every model and KD loss once on the data's shapes, so a bad option fails before any training.

    Args:
        cfg: the recipe.
        plans: `validate`'s `(DistillConfig, [losses])` pairs.
        new_model: `fn(model_config, seed, weights=...) -> keras.Model` for the loaded data.
        input_shape: one image of the loaded data (a teacher file is checked against it).
        task: the task (a Keras teacher file of a dense task is loaded as it is).
        sample: `(images, int labels)` of training data, on which a teacher
            file's value range is inferred when it is not declared, and its
            class order checked.
        class_names: the data's class names, for the messages and `teacher.adapter.class_order`.
        classes: the data's number of classes.

    Returns:
        A `LoadedTeacher` when the teacher is a file (`.keras`, `.onnx`,
        `.tflite`, SavedModel), opened, adapted and checked; else None.
    """
    from kd_keras.config import ModelConfig
    from kd_keras.distiller import Distiller

    def build(where, m, **kw):
        if is_model_file(m.model):  # the user's own student: its errors name the file
            return new_model(m, cfg.train.seed, **kw)
        try:
            return new_model(m, cfg.train.seed, **kw)
        except ValueError as e:
            raise ValueError(f"{where}: {m.model!r} with options {m.options} cannot be built: "
                             f"{str(e).rstrip('.')}; fix {where}.options.") from None

    students = [(d, losses, build(f"[[distill]] {d.name!r} student" if d.student else "student",
                                  ModelConfig(**d.student) if d.student else cfg.student))
                for d, losses in plans]  # built first: a student's mistake is named before the teacher's probe
    loaded = None
    path, fmt = teacher_file(cfg.teacher)
    if fmt == "keras" and task is not None and task.name != "classification":
        teacher = load_model_file(path, "teacher")
        loaded = LoadedTeacher(teacher, path, fmt, [], {})
    elif fmt:
        teacher, notes, record = open_teacher(path, input_shape, cfg.teacher.adapter, sample,
                                              class_names=class_names, classes=classes or len(class_names) or None,
                                              check_fit=cfg.teacher.check_fit)
        loaded = LoadedTeacher(teacher, path, fmt, notes, record)
    else:
        teacher = build("teacher", cfg.teacher, weights="")
    for d, losses, student in students:
        classifier = loaded and (task is None or task.name == "classification")
        widths = (teacher.outputs[0].shape[-1], student.outputs[0].shape[-1]) if classifier else (0, 0)
        if widths[0] != widths[1]:
            names = f" ({', '.join(map(str, class_names[:10]))}{', ...' if len(class_names) > 10 else ''})" \
                if class_names else ""
            given = cfg.teacher.model if teacher_format(cfg.teacher.model) else cfg.teacher.weights
            raise ValueError(f"teacher {given!r} gives {widths[0]} scores per image, but the data has {widths[1]} "
                             f"classes{names}; use a teacher trained on these classes, in their order.")
        try:
            Distiller(teacher, student, [type(l).from_config(l.get_config()) for l in losses])
        except ValueError as e:
            raise ValueError(f"[[distill]] {d.name!r}: {e}") from None
    if not plans:
        build("student", cfg.student)
    return loaded
