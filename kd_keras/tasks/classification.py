"""What is specific to image classification: data, hard loss, metric."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from kd_keras import data as kd_data
from kd_keras.config import find_file
from kd_keras.losses import LabelledAccuracy, LabelledCrossentropy
from kd_keras.models import create_model
from kd_keras.models.files import check_student_file, is_model_file, load_model_file
from kd_keras.tasks.base import Task
from kd_keras.teachers.infer import another_order, chance_bar, infer_layout, order_names


class ClassificationTask(Task):
    """Image classification: logits out, cross-entropy in, top-1 accuracy reported.

    Labels are one-hot in the pipeline (so MixUp/CutMix can soften them), the
    hard-label loss is categorical cross-entropy on logits, and `"kd"` is the
    default distillation method.
    """

    name = "classification"
    accepts = ("outputs", "views")
    metric = "accuracy"
    sources = kd_data.SOURCES

    def __init__(self):
        self.binary = False

    def load(self, cfg, seed: int) -> kd_data.DataSplits:
        """Loads the splits described by a `DataConfig`."""
        self.check_source(cfg.source)
        splits = kd_data.load(cfg.source, path=cfg.resolved_path() or None, name=cfg.name or None,
                            data_dir=cfg.data_dir or None, manual_dir=cfg.manual_dir or None,
                            image_size=cfg.image_size or None,
                            val_fraction=cfg.val_fraction, seed=seed, limit=cfg.limit or None,
                            skip_bad_images=cfg.skip_bad_images, max_image_pixels=cfg.max_image_pixels)
        self.binary = splits.num_classes == 2
        return splits

    def sample_labelled(self, splits, n: int = 0):
        """Up to `n` training `(images, int labels)`, in the split's order: a teacher file's value range is
        inferred on the first 256, and a tie between ranges is tried again on all (default `n`: 1,024, or as
        many as fit in 100 MB, at least 256)."""
        if not n:
            n = int(min(1024, max(256, 100e6 // (4 * int(np.prod(splits.input_shape))))))
        images, labels = [], []
        for x, y in splits.train.take(n).batch(64).as_numpy_iterator():
            images.append(np.asarray(x, np.float32))
            labels.append(np.asarray(y))
        return (np.concatenate(images), np.concatenate(labels)) if images else None

    def inferred_image_size(self, cfg) -> tuple[int, str]:
        """`(side, why)` for a folder of images when `data.image_size` is not set, else `(0, "")`.

        A student file with a fixed input decides; else a teacher file with a
        fixed square input (a `.keras` file's, `teacher.adapter.size`, or an
        `.onnx`/`.tflite` file's) caps the images' own size (the first
        image's longer side) at its own: a student never sees more than its
        teacher.
        """
        from kd_keras.data.class_folders import first_image_side
        from kd_keras.models.files import saved_input_shape
        from kd_keras.teachers.load import teacher_file

        d = cfg.data
        if d.source != "folder" or d.image_size or not d.resolved_path():
            return 0, ""
        student = saved_input_shape(find_file(cfg.student.model)) if is_model_file(cfg.student.model) else None
        if student and student[0] and student[0] == student[1]:
            return int(student[0]), f"the student file's input, {student[0]}x{student[1]}"
        path, fmt = teacher_file(cfg.teacher)
        teacher = saved_input_shape(path) if fmt == "keras" else _file_input_size(path, fmt, cfg.teacher.adapter)
        if not (teacher and teacher[0] and teacher[0] == teacher[1]):
            return 0, ""
        side = first_image_side(d.resolved_path())
        if side is None or side <= teacher[0]:
            return 0, ""
        return int(teacher[0]), f"the images are {side} px, larger than the teacher's {teacher[0]}x{teacher[1]} input"

    def random_inputs(self, cfg) -> str:
        ops = cfg.augment.random_ops
        return f"random augmentation: {', '.join(ops)}" if ops else ""

    def replay_blocker(self, cfg) -> str:
        return cfg.augment.replay_blocker

    def train_examples(self, splits, cfg):
        return splits.train

    def pipelines(self, splits, cfg, seed: int, targets=None):
        """Returns the (train, val, test) batched datasets.

        Args:
            splits: the loaded splits.
            cfg: the `DataConfig`.
            seed: shuffling and augmentation seed.
            targets: `TeacherTargets` of kind "outputs" (per-example teacher
                outputs aligned with `train_examples`; the training batches
                then carry them as a third element) or "views" (stored
                augmented views of `train_examples`, replayed with the
                teacher's outputs for each view).
        """
        self.check_targets(targets)
        teacher_outputs = targets.data if targets is not None and targets.kind == "outputs" else None
        teacher_views = targets.data if targets is not None and targets.kind == "views" else None

        def make(ds, batch, training):
            return kd_data.classification_pipeline(ds, splits.num_classes, splits.input_shape, batch, training,
                                                   cfg.augment if training else None, seed, cache=cfg.cache,
                                                   teacher_outputs=teacher_outputs if training else None,
                                                   teacher_views=teacher_views if training else None)

        eval_batch = max(cfg.batch_size, 128)
        train = make(splits.train, cfg.batch_size, True)
        val = make(splits.val, eval_batch, False) if splits.num_val else None
        test = make(splits.test, eval_batch, False)
        return train, val, test

    def create_model(self, m, splits, weights=None):
        if is_model_file(m.model):  # the user's own student (a teacher file is opened by recipes.validate)
            path = str(find_file(m.model))
            model = load_model_file(path, "student")
            check_student_file(model, path, splits.num_classes, splits.input_shape)
            return model
        return create_model(m.model, splits.num_classes, splits.input_shape,
                            weights=weights if weights is not None else (m.weights or None), **m.options)

    def hard_loss(self, spec: dict | None = None):
        if spec:
            return super().hard_loss(spec)
        return LabelledCrossentropy()  # categorical cross-entropy over the labelled rows (transfer sets have others)

    def samples(self, splits, cfg, split: str, n: int, seed: int = 0) -> list:
        ds = splits.train if split == "train" else splits.test
        size = splits.num_train if split == "train" else splits.num_test
        ds = ds.shuffle(min(size, 10_000), seed=seed).take(n)
        return [np.asarray(x, np.float32) for x, _ in ds.as_numpy_iterator()]

    def metrics(self):
        return [LabelledAccuracy(name=self.metric)]

    def columns(self):
        cols = [("accuracy", "accuracy", "pct")]
        if self.binary:  # imbalanced two-class sets (e.g. MHIST): F1 of class 1 and ROC AUC too
            cols += [("F1", "f1", "f3"), ("AUC", "auc", "f3")]
        return cols

    def chance_check(self, model, val_ds, splits) -> str:
        """Why a loaded teacher does not fit the data, else "": no better than chance on the validation images.

        No better: within two standard errors above chance, when the validation
        split is large enough to tell (that bar at most 50%); below chance by
        two standard errors, whatever its size. A teacher whose outputs map one
        to one onto the classes in another order is named with that order.
        """
        if val_ds is None or not splits.num_val:
            return ""
        k, n = splits.num_classes, splits.num_val
        chance = 1.0 / k
        bar = chance_bar(n, k)
        below = chance - (bar - chance)
        labels, logits = self._predict(model, val_ds)
        pred = logits.argmax(-1)
        accuracy = float(np.mean(pred == labels))
        if accuracy > bar or (bar > 0.5 and accuracy >= below):  # too few images to tell a weak teacher from a wrong one
            return ""
        other = another_order(pred, labels, k)
        order = ""
        if other is not None:
            names = order_names(other[0], getattr(splits, "class_names", None) or (), k)
            order = (f"; its outputs map one to one onto the data's classes in another order: read as "
                     f"({', '.join(names)}) it scores {100 * other[1]:.1f}% (teacher.adapter.class_order declares a "
                     f"teacher file's order)")
        where = "below" if accuracy < below else "no better than"
        return (f"scores {100 * accuracy:.1f}% on the {n} validation images, {where} chance "
                f"({100 * chance:.1f}% for {k} classes){order}, so it was not trained for this data as given "
                f"(images {tuple(splits.input_shape)})")

    @staticmethod
    def chance_unjudged(splits) -> str:
        """Why the validation split cannot tell a weak teacher from chance ("" when it can)."""
        if not splits.num_val:
            return "there are no validation images"
        if chance_bar(splits.num_val, splits.num_classes) > 0.5:
            return (f"{splits.num_val} validation images cannot tell a weak teacher from chance "
                    f"({splits.num_classes} classes); only a teacher below chance is refused")
        return ""

    @staticmethod
    def _predict(model, dataset) -> tuple[np.ndarray, np.ndarray]:
        """`(int labels, logits)` of `model` (a Keras model in inference mode, or a runtime) on a batched dataset."""
        if isinstance(model, keras.Model):
            forward = tf.function(lambda x: model(x, training=False))
        else:  # an exported model: kd_keras.models.runtimes.Runtime
            forward = lambda x: model(x.numpy())  # noqa: E731
        labels, logits = [], []
        for x, y in dataset:
            labels.append(np.argmax(np.asarray(y), -1))
            logits.append(np.asarray(forward(x), np.float64))
        return np.concatenate(labels), np.concatenate(logits)

    def evaluate(self, model: keras.Model, dataset, report_cfg=None) -> dict:
        """Top-1 accuracy of `model` (a Keras model in inference mode, or a runtime) on a batched dataset.

        For two classes, also the F1 score of class 1 and the ROC AUC of its
        softmax probability (scikit-learn).
        """
        y, z = self._predict(model, dataset)
        out = {self.metric: float(np.mean(z.argmax(-1) == y))}
        if z.shape[-1] == 2:
            from sklearn.metrics import f1_score, roc_auc_score

            p1 = np.exp(z[:, 1] - np.logaddexp(z[:, 0], z[:, 1]))
            out["f1"] = float(f1_score(y, z.argmax(-1), zero_division=0))
            out["auc"] = float(roc_auc_score(y, p1)) if len(set(y)) == 2 else None
        return out


def _file_input_size(path: str, fmt: str, adapter) -> tuple | None:
    """`(height, width)` an `.onnx`, `.tflite` or SavedModel teacher takes (its adapter's size if declared), else
    None."""
    if adapter.size:
        return tuple(adapter.size)
    if fmt not in ("onnx", "tflite", "saved_model"):
        return None
    from kd_keras.models.runtimes import open_runtime

    try:
        shape = tuple(open_runtime(path, 1).input_shape)
    except Exception:  # an unreadable file: the teacher check names it
        return None
    if len(shape) != 3:
        return None
    layout = adapter.layout if adapter.layout != "auto" else infer_layout(shape)[0]
    return shape[1:3] if layout == "nchw" else shape[:2]
