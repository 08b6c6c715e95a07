"""Base class for kd_keras distillation losses."""

from __future__ import annotations

import keras


class DistillLoss(keras.distillation.DistillationLoss):
    """A distillation term between teacher and student outputs.

    Builds on `keras.distillation.DistillationLoss`, and adds what the
    kd_keras `Distiller` needs beyond it: the labels (DKD uses them), the
    layer names a feature loss reads (same attribute names as Keras'
    `FeatureDistillation`, so Keras' feature extractor serves both), and
    trainable layers owned by the loss (the FitNets adapter), which train
    with the student and are not part of it.

    Subclasses implement `compute_loss` and `get_config`, and may implement
    `build` to create layers once the feature shapes are known.
    """

    teacher_layer_name: str | None = None
    student_layer_name: str | None = None

    def build(self, teacher_shape, student_shape) -> None:
        """Creates any trainable layers. Called once by the `Distiller`.

        Args:
            teacher_shape: Shape of the teacher output this loss reads.
            student_shape: Shape of the student output this loss reads.
        """
        del teacher_shape, student_shape

    @property
    def layers(self) -> list:
        """Trainable Keras layers owned by this loss (e.g. an adapter)."""
        return []

    def compute_loss(self, teacher_outputs, student_outputs, labels=None, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must implement compute_loss.")

    def validate_outputs(self, teacher_outputs, student_outputs):
        keras.tree.assert_same_structure(teacher_outputs, student_outputs)

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def check_temperature(temperature) -> float:
    """Validates a softmax temperature and returns it as float."""
    if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or not temperature > 0:
        raise ValueError(f"temperature must be a number > 0, got {temperature!r}.")
    return float(temperature)


def check_non_negative(name: str, value) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}.")
    return float(value)


def check_bool(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}.")
    return value
