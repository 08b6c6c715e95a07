"""Losses on intermediate feature maps: FitNets hints and attention transfer."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from kd_keras.losses.base import DistillLoss, check_non_negative
from kd_keras.losses.registry import register_loss


def check_layer_name(arg: str, value) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{arg} must be a layer name (a non-empty string), got {value!r}.")
    return value


def resize_like(x, reference):
    """Bilinearly resizes NHWC `x` to the spatial size of `reference`."""
    if None not in (*x.shape[1:3], *reference.shape[1:3]) and x.shape[1:3] == reference.shape[1:3]:
        return x
    # The size as a tensor: dense models take any image size, so in a traced step both sizes may be (None, None)
    # and still differ (keras.ops.image.resize checks its size in Python and cannot take it).
    return tf.image.resize(x, tf.shape(reference)[1:3], method="bilinear")


def check_rank4(which: str, layer: str, shape):
    if len(shape) != 4:
        raise ValueError(
            f"{which} layer {layer!r} has output shape {tuple(shape)}; feature losses need "
            f"an NHWC feature map (rank 4). Pick a convolutional layer."
        )


@keras.saving.register_keras_serializable(package="kd_keras")
@register_loss("fitnets")
class FitNetsLoss(DistillLoss):
    """FitNets hint loss: MSE between a teacher feature map and an adapted student map.

    The student map passes through a learned 1x1 convolution (the
    "regressor") to the teacher's channel count, and is resized to the
    teacher's spatial size if they differ. The adapter trains with the
    student but is not part of it, so the exported student is unchanged.

    Args:
        teacher_layer: name of the teacher layer whose output is the hint.
        student_layer: name of the student layer whose output is guided.

    Reference:
        Romero, Ballas, Kahou, Chassang, Gatta, Bengio. FitNets: Hints for
        Thin Deep Nets. ICLR 2015. https://arxiv.org/abs/1412.6550
    """

    def __init__(self, teacher_layer: str, student_layer: str):
        self.teacher_layer_name = check_layer_name("teacher_layer", teacher_layer)
        self.student_layer_name = check_layer_name("student_layer", student_layer)
        self.adapter = None

    def build(self, teacher_shape, student_shape):
        check_rank4("teacher", self.teacher_layer_name, teacher_shape)
        check_rank4("student", self.student_layer_name, student_shape)
        self.adapter = keras.layers.Conv2D(
            teacher_shape[-1], 1, use_bias=False, name=f"fitnets_adapter_{self.student_layer_name}"
        )
        self.adapter.build(tuple(student_shape))

    @property
    def layers(self):
        return [self.adapter] if self.adapter is not None else []

    def compute_loss(self, teacher_outputs, student_outputs, labels=None, **kwargs):
        if self.adapter is None:
            raise ValueError("FitNetsLoss is not built; pass it to kd_keras.Distiller, which builds it.")
        hint = ops.cast(teacher_outputs, "float32")
        guided = resize_like(ops.cast(self.adapter(student_outputs), "float32"), hint)
        return ops.mean(ops.square(guided - hint))

    def validate_outputs(self, teacher_outputs, student_outputs):
        pass

    def get_config(self):
        return {"teacher_layer": self.teacher_layer_name, "student_layer": self.student_layer_name}


def attention_map(features, p: float = 2.0):
    """Spatial attention map of an NHWC tensor: `mean_c |f_c|^p`, shape (N, H, W, 1)."""
    return ops.mean(ops.power(ops.abs(ops.cast(features, "float32")), p), axis=-1, keepdims=True)


@keras.saving.register_keras_serializable(package="kd_keras")
@register_loss("at")
class ATLoss(DistillLoss):
    """Attention transfer between one teacher and one student feature map.

    The attention map of an NHWC tensor is `mean_c |f_c|^p`; both maps are
    flattened and L2-normalised, and the loss is the mean squared difference
    (as in the authors' code: `(at(x) - at(y)).pow(2).mean()`). The paper's
    `beta / 2` factor (beta = 1000) belongs in this loss's weight. If the
    spatial sizes differ, the student map is resized to the teacher's.

    Args:
        teacher_layer: name of the teacher layer.
        student_layer: name of the student layer.
        p: exponent of the attention map (the paper uses 2).

    Reference:
        Zagoruyko, Komodakis. Paying More Attention to Attention: Improving
        the Performance of Convolutional Neural Networks via Attention
        Transfer. ICLR 2017. https://arxiv.org/abs/1612.03928
    """

    def __init__(self, teacher_layer: str, student_layer: str, p: float = 2.0):
        self.teacher_layer_name = check_layer_name("teacher_layer", teacher_layer)
        self.student_layer_name = check_layer_name("student_layer", student_layer)
        self.p = check_non_negative("p", p)
        if self.p == 0:
            raise ValueError(f"p must be > 0, got {p!r}.")

    def build(self, teacher_shape, student_shape):
        check_rank4("teacher", self.teacher_layer_name, teacher_shape)
        check_rank4("student", self.student_layer_name, student_shape)

    def compute_loss(self, teacher_outputs, student_outputs, labels=None, **kwargs):
        a_t = attention_map(teacher_outputs, self.p)
        a_s = resize_like(attention_map(student_outputs, self.p), a_t)
        batch = ops.shape(a_t)[0]

        def flat_normalized(a):
            a = ops.reshape(a, (batch, -1))
            return a / (ops.norm(a, axis=-1, keepdims=True) + 1e-12)

        return ops.mean(ops.square(flat_normalized(a_s) - flat_normalized(a_t)))

    def validate_outputs(self, teacher_outputs, student_outputs):
        pass

    def get_config(self):
        return {"teacher_layer": self.teacher_layer_name, "student_layer": self.student_layer_name, "p": self.p}
