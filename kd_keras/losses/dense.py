"""Per-pixel losses for the dense tasks: edge detection and super-resolution.

Supervised (labels vs student, given to `compile()`): `balanced_bce`
(HED/RCF), `l1`. Distillation (teacher vs student): `edge_kd`, `side_kd`,
`cwd`, `output_l1`, `fakd`.
"""

from __future__ import annotations

import keras
from keras import ops

from kd_keras.losses.base import DistillLoss, check_bool, check_non_negative, check_temperature
from kd_keras.losses.edge_nms import edge_nms
from kd_keras.losses.features import check_layer_name, check_rank4, resize_like
from kd_keras.losses.registry import register_loss


def _bce_with_logits(target, logits):
    """Elementwise binary cross-entropy of `sigmoid(logits)` against a target in [0, 1].

    `softplus(z) - q z`: exact for large |z| (softplus is computed stably),
    with the smooth gradient `sigmoid(z) - q` everywhere, also at z = 0.
    """
    return ops.softplus(logits) - target * logits


def _soft_edge_bce(q, z, balanced: bool):
    """Mean BCE of logits `z` against a soft edge map `q`, class-balanced by `q`'s mean edge share if asked."""
    if not balanced:
        return ops.mean(_bce_with_logits(q, z))
    b = ops.stop_gradient(ops.mean(q))
    # -log p = softplus(-z), -log(1 - p) = softplus(z)
    return ops.mean((1.0 - b) * q * ops.softplus(-z) + b * (1.0 - q) * ops.softplus(z))


@keras.saving.register_keras_serializable(package="kd_keras")
@register_loss("balanced_bce", kind="supervised")
class BalancedBCELoss(keras.losses.Loss):
    """Class-balanced binary cross-entropy on edge logits (HED weighting, RCF labels).

    The label of a pixel is the share of annotators who marked it a
    boundary (0-1). Pixels with a share >= `threshold` are edges, pixels
    with share 0 are non-edges, and pixels in between (marked by a
    minority) are ignored, as in RCF. Edges are rare (about 10 % of BSDS
    pixels), so with `P` edges and `N` non-edges counted over the batch,
    edges are weighted `N / (P + N)` and non-edges `negative_weight *
    P / (P + N)`. Each image's loss is the weighted sum over its pixels
    divided by its pixel count, so the value does not grow with the crop.

    Args:
        threshold: annotator share from which a pixel is an edge, in (0, 1].
        negative_weight: extra weight of non-edges (RCF's lambda, 1.1).

    Reference:
        Xie, Tu. Holistically-Nested Edge Detection. ICCV 2015, eq. 2.
        Liu et al. Richer Convolutional Features for Edge Detection. CVPR
        2017, eq. 1.
    """

    def __init__(self, threshold: float = 0.5, negative_weight: float = 1.1, name: str = "balanced_bce", **kwargs):
        super().__init__(name=name, **kwargs)
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be a number in (0, 1], got {threshold!r}.")
        self.threshold = float(threshold)
        self.negative_weight = check_non_negative("negative_weight", negative_weight)

    def call(self, y_true, y_pred):
        y = ops.cast(y_true, "float32")
        logits = ops.cast(y_pred, "float32")
        positive = ops.cast(y >= self.threshold, "float32")
        negative = ops.cast(y <= 0.0, "float32")
        n_pos, n_neg = ops.sum(positive), ops.sum(negative)
        total = ops.maximum(n_pos + n_neg, 1.0)
        weight = positive * (n_neg / total) + negative * (self.negative_weight * n_pos / total)
        per_pixel = weight * _bce_with_logits(positive, logits)
        return ops.mean(ops.reshape(per_pixel, (ops.shape(per_pixel)[0], -1)), axis=-1)

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold, "negative_weight": self.negative_weight}


def charbonnier(diff, epsilon: float):
    """`sqrt(d^2 + eps^2) - eps`: |d| for eps = 0, quadratic for |d| << eps."""
    if epsilon == 0:
        return ops.abs(diff)
    return ops.sqrt(ops.square(diff) + epsilon * epsilon) - epsilon


def _check_epsilon(epsilon) -> float:
    return check_non_negative("epsilon", epsilon)


@keras.saving.register_keras_serializable(package="kd_keras")
@register_loss("l1", kind="supervised")
class L1Loss(keras.losses.Loss):
    """Mean absolute error to the high-resolution image (EDSR's training loss).

    With `epsilon > 0` it is the Charbonnier loss `sqrt(d^2 + eps^2) - eps`
    (LapSRN): L1 for errors well above `eps`, quadratic below. Pure L1's
    gradient is the sign of the error, so a network that starts at the
    bicubic image (a residual SR net) sits at zero residual for a long time;
    a smoothing of one grey level lets it learn within a CPU budget.

    Args:
        epsilon: smoothing in output units (0-255 scale); 0 is plain L1.

    Reference:
        Lim et al. Enhanced Deep Residual Networks for Single Image
        Super-Resolution. CVPR Workshops 2017 (section 4.1); Lai et al. Deep
        Laplacian Pyramid Networks (LapSRN). CVPR 2017 (Charbonnier loss).
    """

    def __init__(self, epsilon: float = 0.0, name: str = "l1", **kwargs):
        super().__init__(name=name, **kwargs)
        self.epsilon = _check_epsilon(epsilon)

    def call(self, y_true, y_pred):
        diff = ops.cast(y_pred, "float32") - ops.cast(y_true, "float32")
        return ops.mean(ops.reshape(charbonnier(diff, self.epsilon), (ops.shape(diff)[0], -1)), axis=-1)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


def _check_same_shape(teacher_outputs, student_outputs, what):
    t, s = tuple(teacher_outputs.shape), tuple(student_outputs.shape)
    if len(t) != len(s) or any(a is not None and b is not None and a != b for a, b in zip(t[1:], s[1:])):
        raise ValueError(f"{what} needs teacher and student outputs of the same shape, got teacher {t} and "
                         f"student {s}; build both for the same task and scale.")


@keras.saving.register_keras_serializable(package="kd_keras")
@register_loss("edge_kd")
class EdgeKDLoss(DistillLoss):
    """Per-pixel binary KD: BCE of the student's edge map to the teacher's, at a temperature.

    `T^2 * mean_pixels BCE(sigmoid(t / T), sigmoid(s / T))`: Hinton's soft
    targets for a per-pixel two-class output. Unbalanced, it is minimal
    where the student's map equals the teacher's, and its gradient w.r.t.
    the student logit is `T * (sigmoid(s/T) - sigmoid(t/T)) / pixels`, so
    T^2 keeps its scale as T changes. (The minimum is the teacher's
    entropy, not 0.)

    With `thin`, the teacher's probability map is first thinned by the
    BSDS benchmark's non-maximum suppression (`edge_nms`): the target keeps
    the teacher's confidence on its ridges and is 0 beside them. A map like
    HED's is several pixels wide (its mean probability is 0.2-0.3 on BSDS
    training images), and copying it teaches the student the blur, which
    the benchmark's own NMS then has to undo. The thinning runs on each
    training crop (about 13% more KD training time on BSDS500).

    With `balanced` (the default), the edge part `-q log p` is weighted
    `1 - b` and the non-edge part `-(1 - q) log(1 - p)` is weighted `b`,
    where `b` is the teacher's mean edge probability over the batch: HED's
    class balancing with the teacher's soft map in place of the labels, so
    that the rare edge pixels are not drowned by the background, as in the
    supervised `balanced_bce` loss the student also trains with.

    Args:
        temperature: T > 0 applied to both logit maps.
        balanced: weight edge and non-edge parts by the teacher's edge share.
        thin: thin the teacher's map to its ridges first (edge NMS).

    Reference:
        Hinton, Vinyals, Dean. Distilling the Knowledge in a Neural Network.
        2015. Per-pixel distillation for dense prediction: Liu et al.
        Structured Knowledge Distillation for Semantic Segmentation. CVPR
        2019 (pixel-wise term). Thinning: Dollar, Zitnick. Fast Edge
        Detection Using Structured Forests. TPAMI 2015 (edgesNms).
    """

    def __init__(self, temperature: float = 1.0, balanced: bool = True, thin: bool = False):
        self.temperature = check_temperature(temperature)
        self.balanced = check_bool("balanced", balanced)
        self.thin = check_bool("thin", thin)

    def validate_outputs(self, teacher_outputs, student_outputs):
        _check_same_shape(teacher_outputs, student_outputs, "edge_kd")

    def compute_loss(self, teacher_outputs, student_outputs, labels=None, **kwargs):
        t = self.temperature
        q = ops.sigmoid(ops.cast(teacher_outputs, "float32") / t)
        if self.thin:
            q = ops.stop_gradient(edge_nms(q))
        return _soft_edge_bce(q, ops.cast(student_outputs, "float32") / t, self.balanced) * (t * t)

    def get_config(self):
        return {"temperature": self.temperature, "balanced": self.balanced, "thin": self.thin}


@keras.saving.register_keras_serializable(package="kd_keras")
@register_loss("side_kd")
class SideOutputKDLoss(DistillLoss):
    """Side-output hints: a side head on a student layer learns one of the teacher's side edge maps.

    HED (Xie & Tu 2015) supervises a 1x1 "side" convolution on each VGG
    stage with the edge labels; its side maps run from fine texture edges
    (stage 1) to coarse object boundaries (stage 5), knowledge the labels of
    one image do not hold. Here a 1x1 convolution on the student's layer
    (the adapter: it trains with the student and is not part of it, as in
    FitNets) predicts the teacher layer's logit map; it is resized to the
    teacher map and trained with `edge_kd`'s per-pixel BCE at temperature T
    (class-balanced by the teacher's edge share if `balanced`). The hint
    thus shapes the student's inner features, not its output.

    The teacher layer must be a map the size of the input (HED's `side1` ..
    `side5`), so whole-image teacher maps can serve it with no live teacher.

    Args:
        teacher_layer: the teacher's side-output layer (e.g. "side4").
        student_layer: the student layer that gets the side head (e.g.
            "enc4_out" of `edge_unet`).
        temperature: T > 0 applied to both logit maps.
        balanced: weight edge and non-edge pixels by the teacher's edge share.

    Reference:
        Xie, Tu. Holistically-Nested Edge Detection. ICCV 2015 (side
        outputs, deep supervision). https://arxiv.org/abs/1504.06375 ;
        Romero et al. FitNets: Hints for Thin Deep Nets. ICLR 2015 (hints
        through an adapter).
    """

    def __init__(self, teacher_layer: str, student_layer: str, temperature: float = 1.0, balanced: bool = True):
        self.teacher_layer_name = check_layer_name("teacher_layer", teacher_layer)
        self.student_layer_name = check_layer_name("student_layer", student_layer)
        self.temperature = check_temperature(temperature)
        self.balanced = check_bool("balanced", balanced)
        self.adapter = None

    def build(self, teacher_shape, student_shape):
        check_rank4("teacher", self.teacher_layer_name, teacher_shape)
        check_rank4("student", self.student_layer_name, student_shape)
        self.adapter = keras.layers.Conv2D(teacher_shape[-1] or 1, 1, name=f"side_kd_head_{self.student_layer_name}")
        self.adapter.build(tuple(student_shape))

    @property
    def layers(self):
        return [self.adapter] if self.adapter is not None else []

    def validate_outputs(self, teacher_outputs, student_outputs):
        pass

    def compute_loss(self, teacher_outputs, student_outputs, labels=None, **kwargs):
        if self.adapter is None:
            raise ValueError("SideOutputKDLoss is not built; pass it to kd_keras.Distiller, which builds it.")
        t = self.temperature
        target = ops.cast(teacher_outputs, "float32")
        z = resize_like(ops.cast(self.adapter(student_outputs), "float32"), target)
        return _soft_edge_bce(ops.sigmoid(target / t), z / t, self.balanced) * (t * t)

    def get_config(self):
        return {"teacher_layer": self.teacher_layer_name, "student_layer": self.student_layer_name,
                "temperature": self.temperature, "balanced": self.balanced}


@keras.saving.register_keras_serializable(package="kd_keras")
@register_loss("cwd")
class ChannelWiseLoss(DistillLoss):
    """Channel-wise distillation: each output channel as a distribution over the image's pixels.

    For every image and channel, the teacher's and the student's logit maps
    go through a softmax over all pixels at temperature T, and the loss is
    `T^2 * KL(teacher || student)` of those two distributions, averaged over
    images and channels. Where a per-pixel loss asks each pixel to match on
    its own, this asks the student to put its mass where the teacher does:
    the ranking of locations within a map (for edges: which edges are the
    strong ones), which is what a threshold-swept F-measure scores. Adding
    a constant to a student map leaves it unchanged. It reads the final
    output only, so cached whole-image teacher maps serve it.

    Args:
        temperature: T > 0 applied to both logit maps (the paper uses 4 on
            segmentation logits).

    Reference:
        Shu, Liu, Gao, Yan, Shen. Channel-wise Knowledge Distillation for
        Dense Prediction. ICCV 2021.
    """

    def __init__(self, temperature: float = 4.0):
        self.temperature = check_temperature(temperature)

    def validate_outputs(self, teacher_outputs, student_outputs):
        _check_same_shape(teacher_outputs, student_outputs, "cwd")

    def compute_loss(self, teacher_outputs, student_outputs, labels=None, **kwargs):
        t = self.temperature

        def per_channel(x):  # (N, H, W, C) -> (N, H*W, C): a distribution over pixels per image and channel
            x = ops.cast(x, "float32") / t
            return ops.reshape(x, (ops.shape(x)[0], -1, ops.shape(x)[-1]))

        teacher, student = per_channel(teacher_outputs), per_channel(student_outputs)
        log_q = ops.log_softmax(teacher, axis=1)
        kl = ops.sum(ops.exp(log_q) * (log_q - ops.log_softmax(student, axis=1)), axis=1)
        return ops.mean(kl) * (t * t)

    def get_config(self):
        return {"temperature": self.temperature}


@keras.saving.register_keras_serializable(package="kd_keras")
@register_loss("output_l1")
class OutputL1Loss(DistillLoss):
    """Mean absolute difference between the student's and the teacher's outputs.

    For super-resolution, the teacher's SR image is a second, smoother
    target beside the HR image. `epsilon > 0` smooths it as the Charbonnier
    loss (see `L1Loss`).

    Args:
        epsilon: smoothing in output units; 0 is plain L1.

    Reference:
        Gao, Zhuang, Lin, Wang. Image Super-Resolution Using Knowledge
        Distillation. ACCV 2018; He et al. FAKD, ICIP 2020 (its output term).
    """

    def __init__(self, epsilon: float = 0.0):
        self.epsilon = _check_epsilon(epsilon)

    def validate_outputs(self, teacher_outputs, student_outputs):
        _check_same_shape(teacher_outputs, student_outputs, "output_l1")

    def compute_loss(self, teacher_outputs, student_outputs, labels=None, **kwargs):
        diff = ops.cast(student_outputs, "float32") - ops.cast(teacher_outputs, "float32")
        return ops.mean(charbonnier(diff, self.epsilon))

    def get_config(self):
        return {"epsilon": self.epsilon}


def spatial_affinity(features):
    """Cosine similarity between every pair of spatial positions: (N, HW, HW).

    Each position's channel vector is L2-normalised, so teacher and student
    maps of different widths give comparable matrices.
    """
    f = ops.cast(features, "float32")
    shape = ops.shape(f)
    f = ops.reshape(f, (shape[0], -1, shape[-1]))
    f = f / (ops.sqrt(ops.sum(ops.square(f), axis=-1, keepdims=True)) + 1e-7)
    return ops.matmul(f, ops.transpose(f, (0, 2, 1)))


@keras.saving.register_keras_serializable(package="kd_keras")
@register_loss("fakd")
class FAKDLoss(DistillLoss):
    """Feature-affinity KD: L1 between teacher and student spatial affinity matrices.

    The maps must have the same height and width (both at low resolution in
    an SR network); channel counts may differ. Memory grows with
    `(H * W)^2` per image, so use it on training patches, not whole images.

    Args:
        teacher_layer: name of the teacher layer (e.g. "block16_out").
        student_layer: name of the student layer (e.g. "map4_out").

    Reference:
        He, Dai, Cai, Chen. FAKD: Feature-Affinity Based Knowledge
        Distillation for Efficient Image Super-Resolution. ICIP 2020.
        https://arxiv.org/abs/2005.14193 (spatial similarity, eq. 3-4).
    """

    def __init__(self, teacher_layer: str, student_layer: str):
        self.teacher_layer_name = check_layer_name("teacher_layer", teacher_layer)
        self.student_layer_name = check_layer_name("student_layer", student_layer)

    def build(self, teacher_shape, student_shape):
        check_rank4("teacher", self.teacher_layer_name, teacher_shape)
        check_rank4("student", self.student_layer_name, student_shape)
        t, s = tuple(teacher_shape[1:3]), tuple(student_shape[1:3])
        if any(a is not None and b is not None and a != b for a, b in zip(t, s)):
            raise ValueError(f"fakd needs maps of the same height and width, got teacher {self.teacher_layer_name!r} "
                             f"{t} and student {self.student_layer_name!r} {s}; pick layers at the same resolution.")

    def validate_outputs(self, teacher_outputs, student_outputs):
        pass

    def compute_loss(self, teacher_outputs, student_outputs, labels=None, **kwargs):
        return ops.mean(ops.abs(spatial_affinity(teacher_outputs) - spatial_affinity(student_outputs)))

    def get_config(self):
        return {"teacher_layer": self.teacher_layer_name, "student_layer": self.student_layer_name}
