"""Losses on the logits: Hinton KD and decoupled KD."""

from __future__ import annotations

import keras
from keras import ops

from kd_keras.losses.base import DistillLoss, check_non_negative, check_temperature
from kd_keras.losses.registry import register_loss


def _check_logits(teacher_outputs, student_outputs):
    t_shape, s_shape = tuple(teacher_outputs.shape), tuple(student_outputs.shape)
    if t_shape[-1] is not None and s_shape[-1] is not None and t_shape[-1] != s_shape[-1]:
        raise ValueError(
            f"teacher and student outputs differ: teacher has {t_shape[-1]} classes, "
            f"student has {s_shape[-1]}; build both with the same num_classes."
        )


@keras.saving.register_keras_serializable(package="kd_keras")
@register_loss("kd")
class KDLoss(DistillLoss):
    """Hinton knowledge distillation on softened logits.

    `T^2 * KL(softmax(t / T) || softmax(s / T))`, averaged over the batch,
    computed from log-softmax of both sides so that it is exact, >= 0, and
    stable for large logits. The T^2 factor keeps the gradient magnitude of
    the soft term comparable to the hard-label term as T changes: the
    gradient w.r.t. the student logits is `T * (softmax(s/T) - softmax(t/T))`.

    Unlike `keras.distillation.LogitsDistillation()` with its default
    `loss="kl_divergence"` (Keras 3.15), which skips the softmax and takes KL
    on raw logits, this loss always works on probabilities.

    Args:
        temperature: softmax temperature T > 0.

    Reference:
        Hinton, Vinyals, Dean. Distilling the Knowledge in a Neural Network.
        NIPS Deep Learning Workshop 2015. https://arxiv.org/abs/1503.02531
    """

    def __init__(self, temperature: float = 4.0):
        self.temperature = check_temperature(temperature)

    def validate_outputs(self, teacher_outputs, student_outputs):
        _check_logits(teacher_outputs, student_outputs)

    def compute_loss(self, teacher_outputs, student_outputs, labels=None, **kwargs):
        t = self.temperature
        log_p_t = ops.log_softmax(ops.cast(teacher_outputs, "float32") / t, axis=-1)
        log_p_s = ops.log_softmax(ops.cast(student_outputs, "float32") / t, axis=-1)
        kl = ops.sum(ops.exp(log_p_t) * (log_p_t - log_p_s), axis=-1)
        return ops.mean(kl) * (t * t)

    def get_config(self):
        return {"temperature": self.temperature}


@keras.saving.register_keras_serializable(package="kd_keras")
@register_loss("dkd")
class DKDLoss(DistillLoss):
    """Decoupled knowledge distillation: `alpha * TCKD + beta * NCKD`.

    TCKD is the KL between teacher and student binary distributions
    (target class vs. all others); NCKD is the KL between their distributions
    over the non-target classes only. Both at temperature T, scaled by T^2,
    averaged over the batch, and computed in log space. The target class is
    the arg-max of the labels, so soft (MixUp/CutMix) labels work too.

    Args:
        alpha: weight of TCKD.
        beta: weight of NCKD (the paper uses 8 on CIFAR-100, 0.5 on ImageNet).
        temperature: softmax temperature T > 0.

    Reference:
        Zhao, Cui, Song, Qiu, Liang. Decoupled Knowledge Distillation.
        CVPR 2022. https://arxiv.org/abs/2203.08679
    """

    def __init__(self, alpha: float = 1.0, beta: float = 8.0, temperature: float = 4.0):
        self.alpha = check_non_negative("alpha", alpha)
        self.beta = check_non_negative("beta", beta)
        self.temperature = check_temperature(temperature)

    def validate_outputs(self, teacher_outputs, student_outputs):
        _check_logits(teacher_outputs, student_outputs)

    def compute_loss(self, teacher_outputs, student_outputs, labels=None, **kwargs):
        if labels is None:
            raise ValueError("the 'dkd' loss needs labels; pass (x, y) batches to fit().")
        t = self.temperature
        zt = ops.cast(teacher_outputs, "float32") / t
        zs = ops.cast(student_outputs, "float32") / t
        num_classes = ops.shape(zs)[-1]
        if len(labels.shape) == len(zs.shape):  # one-hot or soft labels
            target = ops.argmax(labels, axis=-1)
        else:
            target = ops.reshape(ops.cast(labels, "int32"), (-1,))
        gt = ops.one_hot(target, num_classes, dtype="float32")

        def binary_log_probs(z):
            log_p = ops.log_softmax(z, axis=-1)
            log_gt = ops.sum(log_p * gt, axis=-1)
            log_other = ops.logsumexp(log_p + gt * -1e9, axis=-1)
            return ops.stack([log_gt, log_other], axis=-1)

        def kl(log_p, log_q):
            return ops.mean(ops.sum(ops.exp(log_p) * (log_p - log_q), axis=-1))

        tckd = kl(binary_log_probs(zt), binary_log_probs(zs))
        # Masking the target logit with a large negative offset leaves the
        # softmax over the non-target classes only.
        log_nt_t = ops.log_softmax(zt - 1e9 * gt, axis=-1)
        log_nt_s = ops.log_softmax(zs - 1e9 * gt, axis=-1)
        nckd = ops.mean(ops.sum((1.0 - gt) * ops.exp(log_nt_t) * (log_nt_t - log_nt_s), axis=-1))
        return (self.alpha * tckd + self.beta * nckd) * (t * t)

    def get_config(self):
        return {"alpha": self.alpha, "beta": self.beta, "temperature": self.temperature}
