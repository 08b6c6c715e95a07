"""Losses on the logits: Hinton KD, decoupled KD (both with optional logit standardization), DIST and MLKD."""

from __future__ import annotations

import keras
from keras import ops

from kd_keras.losses.base import DistillLoss, check_bool, check_non_negative, check_temperature
from kd_keras.losses.registry import register_loss

STANDARDIZE_EPS = 1e-7


def standardize_logits(z):
    """Z-scores each logit vector: `(z - mean) / (std + 1e-7)` over the class axis.

    The standard deviation is the unbiased one (divided by C - 1, C the
    number of classes), as `torch.std` in the reference code of Sun et al.
    (CVPR 2024); the population one only rescales every vector by
    sqrt(C / (C - 1)), which the temperature absorbs.
    """
    z = ops.cast(z, "float32")
    c = ops.cast(ops.shape(z)[-1], "float32")
    centred = z - ops.mean(z, axis=-1, keepdims=True)
    std = ops.sqrt(ops.sum(ops.square(centred), axis=-1, keepdims=True) / (c - 1.0))
    return centred / (std + STANDARDIZE_EPS)


def _prepare(z, temperature, standardize):
    z = standardize_logits(z) if standardize else ops.cast(z, "float32")
    return z / temperature


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

    With `standardize=True` both sides' logits are z-scored first
    (`standardize_logits`, logit standardization), so the student matches
    the teacher's logit relations rather than their range; T is then the
    "base temperature" of that paper (2 on CIFAR-100 in its code, with the
    KD term weighted 9 against 0.1 for cross-entropy).

    Args:
        temperature: softmax temperature T > 0.
        standardize: z-score each logit vector before the temperature.

    References:
        Hinton, Vinyals, Dean. Distilling the Knowledge in a Neural Network.
        NIPS Deep Learning Workshop 2015. https://arxiv.org/abs/1503.02531
        Sun, Ren, Li, Wang, Cao. Logit Standardization in Knowledge
        Distillation. CVPR 2024. https://arxiv.org/abs/2403.01427
    """

    def __init__(self, temperature: float = 4.0, standardize: bool = False):
        self.temperature = check_temperature(temperature)
        self.standardize = check_bool("standardize", standardize)

    def validate_outputs(self, teacher_outputs, student_outputs):
        _check_logits(teacher_outputs, student_outputs)

    def compute_loss(self, teacher_outputs, student_outputs, labels=None, **kwargs):
        t = self.temperature
        log_p_t = ops.log_softmax(_prepare(teacher_outputs, t, self.standardize), axis=-1)
        log_p_s = ops.log_softmax(_prepare(student_outputs, t, self.standardize), axis=-1)
        kl = ops.sum(ops.exp(log_p_t) * (log_p_t - log_p_s), axis=-1)
        return ops.mean(kl) * (t * t)

    def get_config(self):
        return {"temperature": self.temperature, "standardize": self.standardize}


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
        standardize: z-score each logit vector before the temperature
            (logit standardization, as in `KDLoss`).

    The paper ramps the distillation term up linearly over its first 20 of
    240 epochs; set `warmup_epochs` on the `[[distill]]` entry (or
    `distill_warmup_steps` on the `Distiller`), which serves every loss.

    References:
        Zhao, Cui, Song, Qiu, Liang. Decoupled Knowledge Distillation.
        CVPR 2022. https://arxiv.org/abs/2203.08679
        Sun, Ren, Li, Wang, Cao. Logit Standardization in Knowledge
        Distillation. CVPR 2024. https://arxiv.org/abs/2403.01427
    """

    def __init__(self, alpha: float = 1.0, beta: float = 8.0, temperature: float = 4.0, standardize: bool = False):
        self.alpha = check_non_negative("alpha", alpha)
        self.beta = check_non_negative("beta", beta)
        self.temperature = check_temperature(temperature)
        self.standardize = check_bool("standardize", standardize)

    def validate_outputs(self, teacher_outputs, student_outputs):
        _check_logits(teacher_outputs, student_outputs)

    def compute_loss(self, teacher_outputs, student_outputs, labels=None, **kwargs):
        if labels is None:
            raise ValueError("the 'dkd' loss needs labels; pass (x, y) batches to fit().")
        t = self.temperature
        zt = _prepare(teacher_outputs, t, self.standardize)
        zs = _prepare(student_outputs, t, self.standardize)
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
        return {"alpha": self.alpha, "beta": self.beta, "temperature": self.temperature,
                "standardize": self.standardize}


def _pearson_distance(a, b, axis):
    """`1 - mean Pearson correlation` of `a` and `b` along `axis`, averaged over the other axis."""
    a = a - ops.mean(a, axis=axis, keepdims=True)
    b = b - ops.mean(b, axis=axis, keepdims=True)
    num = ops.sum(a * b, axis=axis)
    den = ops.sqrt(ops.sum(a * a, axis=axis)) * ops.sqrt(ops.sum(b * b, axis=axis)) + 1e-8
    return 1.0 - ops.mean(num / den)


@keras.saving.register_keras_serializable(package="kd_keras")
@register_loss("dist")
class DISTLoss(DistillLoss):
    """DIST: match the teacher's class relations by correlation, not by value.

    With `p = softmax(z / T)` on both sides, the loss is
    `T^2 * (beta * inter + gamma * intra)`, where `inter` is 1 minus the
    Pearson correlation between the student's and the teacher's probability
    vectors of each image (over classes, averaged over the batch) and
    `intra` is the same over the batch for each class (averaged over
    classes). Pearson correlation ignores a positive scale and a shift, so a
    student whose probabilities are an affine map of the teacher's pays
    nothing: it only needs the teacher's ranking and relative confidences,
    which helps when the teacher is much stronger than the student.

    Args:
        beta: weight of the inter-class term (the paper: 1; mdistiller: 2).
        gamma: weight of the intra-class term (the paper: 1; mdistiller: 2).
        temperature: softmax temperature T > 0 (the paper: 4 on CIFAR-100,
            1 on ImageNet).

    Reference:
        Huang, You, Wang, Qian, Xu. Knowledge Distillation from A Stronger
        Teacher. NeurIPS 2022. https://arxiv.org/abs/2205.10536
    """

    def __init__(self, beta: float = 1.0, gamma: float = 1.0, temperature: float = 4.0):
        self.beta = check_non_negative("beta", beta)
        self.gamma = check_non_negative("gamma", gamma)
        self.temperature = check_temperature(temperature)

    def validate_outputs(self, teacher_outputs, student_outputs):
        _check_logits(teacher_outputs, student_outputs)

    def compute_loss(self, teacher_outputs, student_outputs, labels=None, **kwargs):
        t = self.temperature
        p_t = ops.softmax(ops.cast(teacher_outputs, "float32") / t, axis=-1)
        p_s = ops.softmax(ops.cast(student_outputs, "float32") / t, axis=-1)
        inter = _pearson_distance(p_s, p_t, axis=-1)
        intra = _pearson_distance(p_s, p_t, axis=0)
        return (self.beta * inter + self.gamma * intra) * (t * t)

    def get_config(self):
        return {"beta": self.beta, "gamma": self.gamma, "temperature": self.temperature}


@keras.saving.register_keras_serializable(package="kd_keras")
@register_loss("mlkd")
class MLKDLoss(DistillLoss):
    """Multi-level logit distillation: instance, batch and class level, at several temperatures.

    For each temperature T, with `P = softmax(z / T)` of shape (B, C):

    - instance level: `T^2 * KL(P_t || P_s)` per image, averaged (Hinton KD);
    - batch level: the images' B x B prediction similarities,
      `mean((P_t P_t^T - P_s P_s^T)^2) * R`;
    - class level: the classes' C x C co-activation averaged over the batch,
      `sum(((P_t^T P_t - P_s^T P_s) / B)^2) / C * R^2`;

    R is `reference_batch` (64, the paper's CIFAR batch).

    The loss is the sum over the temperatures of the three weighted terms,
    as in the reference code (which also masks by the teacher's confidence;
    there the mask multiplies an already averaged loss, so it acts as a
    constant factor of about 0.5, which the weights here absorb). The
    paper's second, strongly augmented view is the recipe's augmentation
    here. With `standardize=True` the logits are z-scored first, as in Sun
    et al.'s "MLKD + logit standardization".

    The reference code sums the B x B differences and divides by B (and the
    class term's Gram matrices sum over the batch), so its terms grow with the
    batch: at batch 128 on cifar10_small, weights of 1 made the batch term
    about 200 and the student collapsed to chance
    (recipes/results/kd_methods_cifar10_small_mlkd.md). Here both are
    normalised by the batch, so a batch repeated twice gives the same value,
    and scaled to equal the reference code's at a batch of R: the paper's
    weights then mean what they meant at its batch size, whatever the recipe's.

    Args:
        temperatures: the temperatures (the paper: 2, 3, 4, 5, 6).
        instance_weight, batch_weight, class_weight: weights >= 0 of the levels.
        standardize: z-score each logit vector before the temperatures.
        reference_batch: R, the batch at which the terms equal the reference
            code's (> 0).

    References:
        Jin, Wang, Lin. Multi-Level Logit Distillation. CVPR 2023.
        https://openaccess.thecvf.com/content/CVPR2023/html/Jin_Multi-Level_Logit_Distillation_CVPR_2023_paper.html
        Sun, Ren, Li, Wang, Cao. Logit Standardization in Knowledge
        Distillation. CVPR 2024. https://arxiv.org/abs/2403.01427
    """

    def __init__(self, temperatures=(2.0, 3.0, 4.0, 5.0, 6.0), instance_weight: float = 1.0,
                 batch_weight: float = 1.0, class_weight: float = 1.0, standardize: bool = False,
                 reference_batch: int = 64):
        if isinstance(temperatures, (int, float)) or not temperatures:
            raise ValueError(f"temperatures must be a non-empty list of numbers > 0, got {temperatures!r}.")
        self.temperatures = [check_temperature(t) for t in temperatures]
        self.instance_weight = check_non_negative("instance_weight", instance_weight)
        self.batch_weight = check_non_negative("batch_weight", batch_weight)
        self.class_weight = check_non_negative("class_weight", class_weight)
        self.standardize = check_bool("standardize", standardize)
        if isinstance(reference_batch, bool) or not isinstance(reference_batch, int) or reference_batch < 1:
            raise ValueError(f"reference_batch must be an integer >= 1 (the batch at which the terms equal the "
                             f"reference code's), got {reference_batch!r}.")
        self.reference_batch = reference_batch

    def validate_outputs(self, teacher_outputs, student_outputs):
        _check_logits(teacher_outputs, student_outputs)

    def compute_loss(self, teacher_outputs, student_outputs, labels=None, **kwargs):
        zt = standardize_logits(teacher_outputs) if self.standardize else ops.cast(teacher_outputs, "float32")
        zs = standardize_logits(student_outputs) if self.standardize else ops.cast(student_outputs, "float32")
        b = ops.cast(ops.shape(zs)[0], "float32")
        c = ops.cast(ops.shape(zs)[-1], "float32")
        total = ops.zeros((), "float32")
        for t in self.temperatures:
            log_p_t, log_p_s = ops.log_softmax(zt / t, axis=-1), ops.log_softmax(zs / t, axis=-1)
            p_t, p_s = ops.exp(log_p_t), ops.exp(log_p_s)
            instance = ops.mean(ops.sum(p_t * (log_p_t - log_p_s), axis=-1)) * (t * t)
            r = float(self.reference_batch)
            batch = ops.mean(ops.square(ops.matmul(p_t, ops.transpose(p_t)) - ops.matmul(p_s, ops.transpose(p_s)))) * r
            gram = (ops.matmul(ops.transpose(p_t), p_t) - ops.matmul(ops.transpose(p_s), p_s)) / b
            cls = ops.sum(ops.square(gram)) / c * (r * r)
            total = total + self.instance_weight * instance + self.batch_weight * batch + self.class_weight * cls
        return total

    def get_config(self):
        return {"temperatures": list(self.temperatures), "instance_weight": self.instance_weight,
                "batch_weight": self.batch_weight, "class_weight": self.class_weight,
                "standardize": self.standardize, "reference_batch": self.reference_batch}
