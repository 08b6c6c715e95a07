"""The one training loop of kd_keras: `Distiller.fit` trains every student."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf
from keras import ops
from keras.src.losses.loss import scale_loss_for_distribution, unscale_loss_for_distribution
from keras.src.trainers.data_adapters.data_adapter_utils import unpack_x_y_sample_weight

from kd_keras.distiller_args import check_same_outputs, checked_arguments, symbolic
from kd_keras.losses import DistillLoss
from kd_keras.teachers.files import file_teacher_layer

FINAL = "final_output"


@keras.saving.register_keras_serializable(package="kd_keras")
class Distiller(keras.distillation.Distiller):
    """Trains a student from a frozen teacher, or alone as a baseline.

    The loss of one step is

        student_loss_weight * CE(y, student(x))
        + (1 - student_loss_weight) * sum_i w_i * distill_i(teacher, student)

    where CE is the loss given to `compile()` and `distill_i` are kd_keras
    losses (`"kd"`, `"dkd"`, `"fitnets"`, `"at"`, ...). With `teacher=None`
    and no losses, the same loop trains the no-teacher baseline: only the
    loss differs.

    It is a drop-in for `keras.distillation.Distiller`: the same
    arguments (`teacher`, `student`, `distillation_losses` as one loss or a
    list, `distillation_loss_weights`, `student_loss_weight`), the same
    logged metrics (`total_loss`, `student_loss`, `distillation_loss`, and
    Keras' `loss`), the same `get_config` keys; Keras' own losses
    (`LogitsDistillation`, `FeatureDistillation`) work in it, and its
    losses work in Keras' class. Teachers and students may be Functional,
    Sequential or subclassed models; losses that read layers by name need
    Functional or Sequential ones. kd_keras changes what it needs:

    - the student runs once per step, also when feature losses need its
      intermediate maps (Keras' `compute_loss` runs it twice then);
    - teacher outputs may come from the batch, `(x, y, teacher_outputs)`,
      so a cache can replace the teacher forward pass; `teacher_outputs` is
      the teacher's logits, or a dict with `"final_output"` and one entry per
      teacher layer a feature loss reads;
    - losses receive the labels (DKD needs the target class), and may be
      given by registered name (`"kd"`);
    - the hard-label loss is the compiled loss, so `sample_weight`-free
      `compile(loss=...)`, loss scaling and tf.distribute work as usual;
    - `evaluate()` measures the student alone (`total_loss` is its loss);
    - a teacher is optional (`teacher=None`: the baseline) and losses may
      own trainable layers (the FitNets adapter), which train with the
      student but are not part of it: `distiller.student` saves and exports
      alone.

    The teacher is frozen and always runs in inference mode (BatchNorm on
    its moving statistics, dropout off). Augmentation belongs in the input
    pipeline, so teacher and student see the same augmented batch.

    Args:
        teacher: a trained `keras.Model` with the student's input and output
            shapes, or `None` for the baseline. It comes first, as in Keras.
        student: the `keras.Model` to train. It outputs logits.
        distillation_losses: one distillation loss or a list of them:
            `DistillLoss` instances, Keras' `DistillationLoss` instances, or
            registered names (`"kd"`). None for the baseline. (`losses=` is
            its older spelling, still accepted.)
        distillation_loss_weights: one weight >= 0 per loss; default 1.0
            each. (`loss_weights=` is its older spelling.)
        student_loss_weight: weight of the hard-label loss, in [0, 1].
            Default 0.5 with a teacher, and 1.0 (required) without; 0
            trains on the teacher's outputs alone (function matching).
        distill_warmup_steps: ramp the distillation term up linearly over
            this many optimizer steps (`warmup_factor`), as DKD does over
            its first epochs; 0 is off. It serves every loss.
        name: model name.

    Example:
        >>> distiller = Distiller(teacher=teacher, student=student, distillation_losses=KDLoss(4.0))
        >>> distiller.compile("adam", keras.losses.CategoricalCrossentropy(from_logits=True),
        ...                   metrics=["categorical_accuracy"])
        >>> distiller.fit(train_ds, epochs=5)
        >>> distiller.student.save("student.keras")
        >>> baseline = Distiller(teacher=None, student=other_student)  # the same loop, no teacher

    Reference:
        Hinton, Vinyals, Dean. Distilling the Knowledge in a Neural Network.
        2015. https://arxiv.org/abs/1503.02531
    """

    def __init__(
        self,
        teacher: keras.Model | None = None,
        student: keras.Model | None = None,
        distillation_losses: DistillLoss | str | Sequence[DistillLoss | str] | None = None,
        distillation_loss_weights: Sequence[float] | None = None,
        student_loss_weight: float | None = None,
        distill_warmup_steps: int = 0,
        name: str = "distiller",
        *,
        losses: Sequence[DistillLoss | str] | None = None,
        loss_weights: Sequence[float] | None = None,
        **kwargs,
    ):
        # keras.distillation.Distiller.__init__ requires a teacher and at
        # least one loss; the baseline has neither, so initialise the Model
        # directly and reuse the parent's helpers below.
        keras.Model.__init__(self, name=name, **kwargs)
        losses, loss_weights, student_loss_weight = checked_arguments(
            teacher, student, distillation_losses, distillation_loss_weights, student_loss_weight,
            distill_warmup_steps, losses, loss_weights)
        self.student = student
        self.teacher = teacher
        self.student_loss_weight = float(student_loss_weight)
        self.distillation_losses = losses
        self.distillation_loss_weights = loss_weights
        self.distill_warmup_steps = distill_warmup_steps

        if teacher is not None:
            check_same_outputs(teacher, student)
            if symbolic(teacher, "inputs") is not None and symbolic(student, "inputs") is not None:
                self._validate_input_compatibility(teacher, student)
            self._check_layer_names()
            for loss in losses:
                loss.validate_model_compatibility(teacher, student)
            teacher.trainable = False
        self._create_multi_feature_extractors()
        for loss in losses:
            if isinstance(loss, DistillLoss):
                loss.build(self._output_shape(teacher, loss.teacher_layer_name),
                           self._output_shape(student, loss.student_layer_name))
        # Tracked here so their weights train with the student.
        self.loss_layers = [layer for loss in losses if isinstance(loss, DistillLoss) for layer in loss.layers]

        self._teacher_fn = None
        # Student, teacher and loss layers are built above, so the distiller
        # is too (BackupAndRestore restores only into a built model).
        self.built = True
        self.student_loss_tracker = keras.metrics.Mean(name="student_loss")
        self.distillation_loss_tracker = keras.metrics.Mean(name="distillation_loss")
        self.total_loss_tracker = keras.metrics.Mean(name="total_loss")

    # ------------------------------------------------------------------ setup
    def _check_layer_names(self):
        teacher_file = file_teacher_layer(self.teacher)
        for loss in self.distillation_losses:
            for role, model, layer in (("teacher", self.teacher, getattr(loss, "teacher_layer_name", None)),
                                       ("student", self.student, getattr(loss, "student_layer_name", None))):
                if layer is None:
                    continue
                if role == "teacher" and teacher_file is not None:
                    raise ValueError(
                        f"{type(loss).__name__} reads the teacher's layer {layer!r}, but the teacher is the file "
                        f"{teacher_file.file_path!r}, which gives its final output only; feature losses need a Keras "
                        f"teacher (.keras), or use a logit loss such as \"kd\"."
                    )
                if symbolic(model, "outputs") is None:
                    raise ValueError(
                        f"{type(loss).__name__} reads layer {layer!r} of the {role} {model.name!r}, a model whose "
                        f"layers have no symbolic outputs (a subclassed model); build the {role} as a Functional or "
                        f"Sequential model, or use a logit loss such as \"kd\"."
                    )
                names = [l.name for l in model.layers]
                if layer not in names:
                    hint = [n for n in names if "conv" in n or "block" in n or "stage" in n][-6:]
                    raise ValueError(
                        f"{role} model {model.name!r} has no layer {layer!r}; pick one of its layer names "
                        f"(model.summary() lists them), e.g. {', '.join(hint) or ', '.join(names[-6:])}."
                    )

    @staticmethod
    def _output_shape(model, layer_name):
        if model is None:
            return None
        if layer_name is None:
            outputs = symbolic(model, "outputs")
            return tuple(outputs[0].shape) if outputs else None  # None: a subclassed or unbuilt model
        return tuple(model.get_layer(layer_name).output.shape)

    @property
    def needs_teacher(self) -> bool:
        """Whether a training step computes any distillation term."""
        return self.teacher is not None and self.student_loss_weight < 1.0

    @property
    def teacher_layers(self) -> list[str]:
        """The teacher outputs the losses read: `"final_output"` and any feature layers."""
        names = [getattr(loss, "teacher_layer_name", None) or FINAL for loss in self.distillation_losses]
        return sorted(set(names)) if self.teacher is not None else []

    def teacher_outputs(self, x) -> dict:
        """The teacher's outputs for a batch, as the losses read them (`teacher_layers`).

        This is the teacher's inference-mode forward pass, traced once; a
        `kd_keras.TeacherOutputCache` calls it to compute outputs that
        `(x, y, teacher_outputs)` batches then carry.
        """
        if self.teacher is None:
            raise ValueError("this distiller has no teacher (a baseline), so it has no teacher outputs.")
        if self._teacher_fn is None:
            self._teacher_fn = tf.function(self._extract_all_teacher_features, reduce_retracing=True)
        features = self._teacher_fn(x)
        return {k: features[k] for k in self.teacher_layers}

    def _one_hot_if_needed(self, y, what: str):
        """Integer class ids as one-hot rows when the compiled loss takes one-hot rows (a categorical
        cross-entropy), as `fit(..., augment=...)` does; anything else as it is."""
        from kd_keras.losses import LabelledCrossentropy

        loss = getattr(self, "loss", None)
        categorical = isinstance(loss, (keras.losses.CategoricalCrossentropy, LabelledCrossentropy)) or \
            loss == "categorical_crossentropy"
        if not categorical or not isinstance(y, np.ndarray) or y.ndim != 1:
            return y
        from kd_keras.teachers.fit_data import int_labels

        k = int(self.student.outputs[0].shape[-1])
        return np.eye(k, dtype="float32")[int_labels(y, k, what)]

    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        """Compiles like `keras.Model.compile`; `loss` is the hard-label loss."""
        if loss is None:
            raise ValueError("compile() needs loss=..., the student's hard-label loss (e.g. CategoricalCrossentropy).")
        keras.Model.compile(self, optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def fit(self, x=None, y=None, batch_size=None, epochs=1, *, augment=None, teacher_cache=None,
            teacher_views="epochs", teacher_cache_dir: str | None = None, seed: int = 0, validation_data=None,
            **kwargs):
        """Keras' `fit`; with `augment` or `teacher_cache`, from arrays of raw images with the teacher cached.

        Given neither, this is `keras.Model.fit` unchanged (datasets of
        `(x, y)` or `(x, y, teacher_outputs)` batches, as the recipes use).
        Given either, `x` is raw 0-255 images `(n, H, W, C)` and `y` integer
        labels (or one-hot rows), and the batches are built here: shuffled
        with `seed`, augmented, and labelled by the teacher outside the
        training step (see `kd_keras.teachers.fit_data`).

        Args:
            augment: `AugmentConfig` or a dict of its fields, e.g.
                `{"flip": True, "crop_padding": 4}`; None: no augmentation.
            teacher_cache: "views" (K stored augmented views per image, the
                teacher run once on each), "outputs" (once per image, fixed
                inputs), "auto" (the one that fits `augment`, else a live
                teacher) or "off" (the teacher runs in every step).
            teacher_views: K, the views stored per image: "epochs" (one per
                epoch, each epoch a new view) or an integer (cycled).
            teacher_cache_dir: keep the teacher's outputs on disk here and
                reuse them in later calls (None: memory only).
            seed: the seed of shuffling, augmentation and the views.
            validation_data: `(x_val, y_val)` arrays (labels as for `y`), or
                anything Keras' `fit` takes.

        After the call, `distiller.teacher_cache_info["mode"]` says where the
        teacher's outputs came from ("views", "outputs" or "live").

        Example:
            >>> distiller.fit(x_train, y_train, epochs=30, batch_size=64, augment={"flip": True, "translate": 0.1},
            ...               teacher_cache="views", validation_data=(x_val, y_val))
        """
        if augment is None and teacher_cache is None:
            y = self._one_hot_if_needed(y, "y")
            if isinstance(validation_data, tuple) and len(validation_data) >= 2:
                validation_data = (validation_data[0], self._one_hot_if_needed(validation_data[1], "validation y"),
                                   *validation_data[2:])
            return super().fit(x, y, batch_size=batch_size, epochs=epochs, validation_data=validation_data, **kwargs)
        from kd_keras.teachers.fit_data import training_batches, validation_batches

        if not getattr(self, "compiled", False):
            raise ValueError("compile() the distiller before fit(), e.g. distiller.compile(\"adam\", "
                             "keras.losses.CategoricalCrossentropy(from_logits=True), metrics=[\"accuracy\"]).")
        batch_size = batch_size or 32
        kwargs["callbacks"] = list(kwargs.get("callbacks") or [])
        ds, self.teacher_cache_info = training_batches(self, x, y, batch_size, augment, teacher_cache or "auto",
                                                       teacher_views, seed, teacher_cache_dir, epochs=epochs,
                                                       callbacks=kwargs["callbacks"])
        val = validation_batches(validation_data, int(self.student.outputs[0].shape[-1]), batch_size)
        kwargs["shuffle"] = False  # the batches are shuffled with `seed`
        return super().fit(ds, epochs=epochs, validation_data=val, **kwargs)

    # ------------------------------------------------------------------- loop
    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras 3.15 builds metrics before `fit` from the first batch, which it
        # gets under a tf.distribute strategy with `strategy.reduce("MEAN",
        # batch)`; under MultiWorkerMirroredStrategy that reduce fails eagerly
        # on the PerReplica batch ("Attempt to convert a value (PerReplica...)",
        # keras-team/keras#20585, for any model). Only shapes matter here, so
        # the first replica's local batch builds the same way.
        if iterator is None or not self._multi_worker:  # every other strategy (and none) builds the Keras way
            return super()._maybe_symbolic_build(iterator, data_batch)
        for _, _, it in iterator:
            data_batch = keras.tree.map_structure(
                lambda v: (self.distribute_strategy.experimental_local_results(v)[0]
                           if isinstance(v, tf.distribute.DistributedValues) else v), next(it))
            break
        return super()._maybe_symbolic_build(None, data_batch)

    def _symbolic_build(self, iterator=None, data_batch=None):
        # A batch's third element is the teacher's outputs here (a cache or stored views), not sample weights;
        # Keras' symbolic build under a tf.distribute strategy would pass it to the hard-label loss as such.
        if isinstance(data_batch, tuple) and len(data_batch) == 3:
            data_batch = data_batch[:2]
        return super()._symbolic_build(iterator, data_batch)

    def _student_forward(self, x, training):
        if self._student_feature_extractor is not None:
            features = self._student_feature_extractor(x, training=training)
            return features[FINAL], features
        y_pred = self.student(x, training=training)
        return y_pred, {FINAL: y_pred}

    def _teacher_features(self, x, teacher_outputs):
        if teacher_outputs is None and file_teacher_layer(self.teacher) is not None:
            raise ValueError(
                f"the teacher is the file {file_teacher_layer(self.teacher).file_path!r}, which runs outside the training "
                f"step: train on (x, y, teacher_outputs) batches from kd_keras.TeacherOutputCache or "
                f"kd_keras.TeacherViewsCache (distiller.teacher_outputs fills them)."
            )
        if teacher_outputs is None:
            return self._extract_all_teacher_features(x)
        if isinstance(teacher_outputs, dict):
            return teacher_outputs
        return {FINAL: teacher_outputs}

    def _student_loss(self, y, y_pred, sample_weight=None):
        loss = self._compile_loss(y, y_pred, sample_weight)
        for extra in self.student.losses:
            loss = loss + scale_loss_for_distribution(self._aggregate_additional_loss(extra))
        return loss

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True,
                     teacher_outputs=None, student_features=None):
        """Returns the weighted sum of the hard-label and distillation terms.

        Args:
            x: the input batch (the teacher runs on it unless
                `teacher_outputs` is given).
            y: labels.
            y_pred: student logits.
            sample_weight: weights for the hard-label loss.
            training: unused, kept for Keras' signature.
            teacher_outputs: teacher logits or feature dict from the batch.
            student_features: the student's feature dict from this step's
                forward pass (`"final_output"` plus any layers read).
        """
        del training
        if y_pred is None:
            y_pred, student_features = self._student_forward(x, training=True)
        student_features = student_features or {FINAL: y_pred}
        student_loss = self._student_loss(y, y_pred, sample_weight)
        distill = ops.zeros((), dtype="float32")
        if self.needs_teacher:
            teacher_features = self._teacher_features(x, teacher_outputs)
            for loss, weight in zip(self.distillation_losses, self.distillation_loss_weights):
                t_key = getattr(loss, "teacher_layer_name", None) or FINAL
                s_key = getattr(loss, "student_layer_name", None) or FINAL
                if t_key not in teacher_features:
                    raise ValueError(
                        f"teacher outputs from the batch have no {t_key!r} entry, which "
                        f"{type(loss).__name__} reads; include it or let the teacher run live."
                    )
                t_out, s_out = teacher_features[t_key], student_features[s_key]
                loss.validate_outputs(t_out, s_out)
                if isinstance(loss, DistillLoss):
                    value = loss.compute_loss(t_out, s_out, labels=y)
                else:  # a plain keras.distillation loss
                    value = loss.compute_loss(t_out, s_out)
                distill = distill + weight * ops.cast(value, "float32")
            if self.distill_warmup_steps and self.optimizer is not None:
                distill = distill * warmup_factor(self.optimizer.iterations, self.distill_warmup_steps)
            distill = scale_loss_for_distribution(distill)
        alpha = self.student_loss_weight
        total = alpha * ops.cast(student_loss, "float32") + (1.0 - alpha) * distill
        self.student_loss_tracker.update_state(unscale_loss_for_distribution(student_loss))
        self.distillation_loss_tracker.update_state(unscale_loss_for_distribution(distill))
        self.total_loss_tracker.update_state(unscale_loss_for_distribution(total))
        return total

    def train_step(self, data):
        x, y, teacher_outputs = unpack_x_y_sample_weight(data)
        if y is None:
            keys = f" with keys {', '.join(map(str, x))}" if isinstance(x, dict) else ""
            raise ValueError(f"training batches must be (x, y) or (x, y, teacher_outputs) tuples, got one element"
                             f"{keys} and no labels; map the dataset to tuples, e.g. "
                             f"ds.map(lambda d: (d['image'], d['label'])).")
        with tf.GradientTape() as tape:
            y_pred, student_features = self._student_forward(x, training=True)
            loss = self.compute_loss(x, y, y_pred, teacher_outputs=teacher_outputs,
                                     student_features=student_features)
            self._loss_tracker.update_state(unscale_loss_for_distribution(loss), sample_weight=_batch_size(x))
            loss = self.optimizer.scale_loss(loss)
        weights = self.trainable_weights
        gradients = tape.gradient(loss, weights)
        self.optimizer.apply_gradients(zip(gradients, weights))
        return self._multi_worker_logs(self.compute_metrics(x, y, y_pred))

    def test_step(self, data):
        x, y, sample_weight = unpack_x_y_sample_weight(data)
        y_pred = self.student(x, training=False)
        loss = self._student_loss(y, y_pred, sample_weight)
        self._loss_tracker.update_state(unscale_loss_for_distribution(loss), sample_weight=_batch_size(x))
        self.student_loss_tracker.update_state(unscale_loss_for_distribution(loss))
        self.total_loss_tracker.update_state(unscale_loss_for_distribution(loss))  # the student alone, as `loss`
        logs = self.compute_metrics(x, y, y_pred)
        logs.pop("distillation_loss", None)  # evaluate() measures the student alone
        return self._multi_worker_logs(logs)

    def _multi_worker_logs(self, logs):
        # Keras 3.15 reduces each step's logs across workers with
        # strategy.reduce("MEAN", value, axis=0), which needs an axis: scalar
        # logs fail under MultiWorkerMirroredStrategy (keras-team/keras#20585).
        # A length-1 axis reduces to the same mean.
        if self._multi_worker:
            return {k: ops.reshape(v, (1,)) for k, v in logs.items()}
        return logs

    @property
    def _multi_worker(self) -> bool:
        """Training under MultiWorkerMirroredStrategy across processes (what keras-team/keras#20585 breaks)."""
        strategy = self.distribute_strategy
        return (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
                and strategy.extended._in_multi_worker_mode())

    def reset_metrics(self):
        keras.Model.reset_metrics(self)  # every tracked metric, the three loss trackers included

    # ----------------------------------------------------------- serialising
    def get_config(self):
        return {
            "name": self.name,
            "student": keras.saving.serialize_keras_object(self.student),
            "teacher": None if self.teacher is None else keras.saving.serialize_keras_object(self.teacher),
            "distillation_losses": [keras.saving.serialize_keras_object(l) for l in self.distillation_losses],
            "distillation_loss_weights": list(self.distillation_loss_weights),
            "student_loss_weight": self.student_loss_weight,
            "distill_warmup_steps": self.distill_warmup_steps,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["student"] = keras.saving.deserialize_keras_object(config["student"])
        if config.get("teacher") is not None:
            config["teacher"] = keras.saving.deserialize_keras_object(config["teacher"])
        for old, new in (("losses", "distillation_losses"), ("loss_weights", "distillation_loss_weights")):
            if old in config:  # configs saved before the parent's names were adopted
                config[new] = config.pop(old)
        config["distillation_losses"] = [keras.saving.deserialize_keras_object(l)
                                         for l in config.get("distillation_losses") or []]
        return cls(**config)


def warmup_factor(step, warmup_steps: int):
    """The distillation weight at optimizer step `step` (0-based): `min(1, (step + 1) / warmup_steps)`.

    The step analogue of DKD's `min(epoch / warmup, 1)` with epochs counted
    from 1: the first step already distils a little (1 / warmup_steps), the
    last warm-up step and every later one fully.
    """
    step = ops.cast(step, "float32")
    return ops.minimum(1.0, (step + 1.0) / float(warmup_steps))


def _batch_size(x):
    return tf.shape(next(t for t in keras.tree.flatten(x) if t is not None))[0]
