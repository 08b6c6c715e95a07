"""Loss values against hand-computed numbers (numpy), at two temperatures."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kd_keras.losses import ATLoss, DKDLoss, FitNetsLoss, KDLoss, create_loss, list_losses

T_LOGITS = np.array([[2.0, 1.0, 0.1, -1.0], [0.5, 3.0, -0.5, 0.0]], "float32")
S_LOGITS = np.array([[1.0, 1.5, 0.0, 0.2], [0.0, 1.0, 1.0, -1.0]], "float32")
LABELS = np.array([[1, 0, 0, 0], [0, 0, 1, 0]], "float32")  # 2nd example: student and teacher both wrong


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def kl(p, q):
    return (p * np.log(p / q)).sum(-1)


@pytest.mark.parametrize("t", [1.0, 4.0])
def test_kd_matches_hand_computed_kl(t):
    expected = (t * t) * kl(softmax(T_LOGITS / t), softmax(S_LOGITS / t)).mean()
    value = float(KDLoss(temperature=t).compute_loss(T_LOGITS, S_LOGITS))
    assert value == pytest.approx(expected, rel=1e-5)
    assert value > 0


def test_kd_is_zero_for_equal_logits_and_non_negative():
    assert float(KDLoss(2.0).compute_loss(T_LOGITS, T_LOGITS)) == pytest.approx(0.0, abs=1e-6)
    rng = np.random.default_rng(1)
    for _ in range(5):
        t, s = rng.normal(0, 20, (2, 8, 10)).astype("float32")
        assert float(KDLoss(3.0).compute_loss(t, s)) >= 0.0


def test_kd_differs_from_keras_default_logits_distillation():
    """Keras 3.15's LogitsDistillation() with loss="kl_divergence" takes KL on raw
    logits (no softmax). Ours must equal the real KL, which that value does not."""
    ours = float(KDLoss(4.0).compute_loss(T_LOGITS, S_LOGITS))
    real = 16.0 * kl(softmax(T_LOGITS / 4), softmax(S_LOGITS / 4)).mean()
    assert ours == pytest.approx(real, rel=1e-5)
    keras_default = keras.distillation.LogitsDistillation(temperature=4.0)
    value = float(keras_default.compute_loss(T_LOGITS, S_LOGITS))
    if abs(value - real) < 1e-4 * abs(real):
        pytest.skip("this Keras version fixed LogitsDistillation's default loss")
    assert value != pytest.approx(ours, rel=1e-3)


def test_kd_stable_for_huge_logits():
    t = np.array([[1000.0, -1000.0, 0.0]], "float32")
    s = np.array([[-1000.0, 1000.0, 0.0]], "float32")
    value = float(KDLoss(1.0).compute_loss(t, s))
    assert np.isfinite(value) and value == pytest.approx(2000.0, rel=1e-4)


@pytest.mark.parametrize("t", [1.0, 4.0])
def test_kd_gradient_is_t_times_probability_gap(t):
    """The T^2 factor makes d loss / d student_logits = T (p_s - p_t) / batch."""
    s = tf.Variable(S_LOGITS)
    with tf.GradientTape() as tape:
        loss = KDLoss(t).compute_loss(tf.constant(T_LOGITS), s)
    grad = tape.gradient(loss, s).numpy()
    expected = t * (softmax(S_LOGITS / t) - softmax(T_LOGITS / t)) / len(S_LOGITS)
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-7)


def dkd_reference(zt, zs, labels, alpha, beta, t):
    """DKD as in the authors' code (megvii-research/mdistiller), in numpy."""
    gt = labels.astype(bool)
    pt, ps = softmax(zt / t), softmax(zs / t)
    bt = np.stack([pt[gt], pt[~gt].reshape(len(pt), -1).sum(-1)], -1)
    bs = np.stack([ps[gt], ps[~gt].reshape(len(ps), -1).sum(-1)], -1)
    tckd = kl(bt, bs).mean() * t * t
    nt = softmax(zt[~gt].reshape(len(zt), -1) / t)
    ns = softmax(zs[~gt].reshape(len(zs), -1) / t)
    nckd = kl(nt, ns).mean() * t * t
    return alpha * tckd + beta * nckd


@pytest.mark.parametrize("t", [1.0, 4.0])
@pytest.mark.parametrize("alpha,beta", [(1.0, 8.0), (0.5, 0.0), (0.0, 1.0)])
def test_dkd_matches_reference(t, alpha, beta):
    expected = dkd_reference(T_LOGITS, S_LOGITS, LABELS, alpha, beta, t)
    value = float(DKDLoss(alpha, beta, t).compute_loss(T_LOGITS, S_LOGITS, labels=LABELS))
    assert value == pytest.approx(expected, rel=1e-4)


def test_dkd_accepts_integer_labels_and_needs_labels():
    a = float(DKDLoss().compute_loss(T_LOGITS, S_LOGITS, labels=LABELS))
    b = float(DKDLoss().compute_loss(T_LOGITS, S_LOGITS, labels=np.array([0, 2])))
    assert a == pytest.approx(b, rel=1e-6)
    with pytest.raises(ValueError, match="needs labels"):
        DKDLoss().compute_loss(T_LOGITS, S_LOGITS)


def test_dkd_tckd_plus_nckd_decomposes_kd():
    """Zhao et al. eq. (3): KD = TCKD + (1 - p_t^target) NCKD, per example."""
    t = 2.0
    for i in range(2):
        zt, zs, lab = T_LOGITS[i:i + 1], S_LOGITS[i:i + 1], LABELS[i:i + 1]
        tckd = float(DKDLoss(1.0, 0.0, t).compute_loss(zt, zs, labels=lab))
        nckd = float(DKDLoss(0.0, 1.0, t).compute_loss(zt, zs, labels=lab))
        pt_target = softmax(zt / t)[lab.astype(bool)][0]
        kd = float(KDLoss(t).compute_loss(zt, zs))
        assert kd == pytest.approx(tckd + (1 - pt_target) * nckd, rel=1e-4)


def at_reference(ft, fs, p=2.0):
    def at(f):
        a = (np.abs(f) ** p).mean(-1).reshape(len(f), -1)
        return a / np.linalg.norm(a, axis=-1, keepdims=True)

    return ((at(fs) - at(ft)) ** 2).mean()


def test_at_matches_reference_and_resizes():
    rng = np.random.default_rng(0)
    ft = rng.normal(size=(2, 4, 4, 6)).astype("float32")
    fs = rng.normal(size=(2, 4, 4, 3)).astype("float32")
    loss = ATLoss("t", "s")
    assert float(loss.compute_loss(ft, fs)) == pytest.approx(at_reference(ft, fs), rel=1e-5)
    assert float(loss.compute_loss(ft, ft)) == pytest.approx(0.0, abs=1e-7)
    small = rng.normal(size=(2, 2, 2, 3)).astype("float32")
    assert np.isfinite(float(loss.compute_loss(ft, small)))


def test_fitnets_is_mse_after_adapter():
    rng = np.random.default_rng(0)
    ft = rng.normal(size=(2, 4, 4, 6)).astype("float32")
    fs = rng.normal(size=(2, 4, 4, 3)).astype("float32")
    loss = FitNetsLoss("t", "s")
    loss.build(ft.shape, fs.shape)
    w = rng.normal(size=(1, 1, 3, 6)).astype("float32")
    loss.adapter.set_weights([w])
    expected = ((np.einsum("nhwc,cd->nhwd", fs, w[0, 0]) - ft) ** 2).mean()
    assert float(loss.compute_loss(ft, fs)) == pytest.approx(expected, rel=1e-5)
    assert len(loss.layers) == 1 and loss.adapter.trainable


def test_registry_lists_methods_and_rejects_unknown():
    assert {"kd", "dkd", "fitnets", "at"} <= set(list_losses())
    with pytest.raises(ValueError, match=r"unknown distillation method 'kdd'.*at, cwd, dist, dkd, edge_kd, fakd, fitnets, kd"):
        create_loss("kdd", kind="distill")
    with pytest.raises(ValueError, match=r"unknown supervised loss 'kd'; registered losses: balanced_bce, ce, l1"):
        create_loss("kd", kind="supervised")
    with pytest.raises(ValueError, match=r"unknown argument\(s\) temp.*temperature"):
        create_loss("kd", temp=3)


@pytest.mark.parametrize("bad", [0, -1.0, "4"])
def test_temperature_must_be_positive(bad):
    with pytest.raises(ValueError, match=f"temperature must be a number > 0, got {bad!r}"):
        KDLoss(temperature=bad)
    with pytest.raises(ValueError, match="temperature"):
        DKDLoss(temperature=bad)


def test_class_count_mismatch_is_reported():
    with pytest.raises(ValueError, match="teacher has 4 classes, student has 3"):
        KDLoss().validate_outputs(T_LOGITS, S_LOGITS[:, :3])


@pytest.mark.parametrize("loss", [KDLoss(3.0), DKDLoss(1.0, 2.0, 3.0), ATLoss("a", "b", 2.0), FitNetsLoss("a", "b")])
def test_loss_config_round_trip(loss):
    clone = type(loss).from_config(loss.get_config())
    assert clone.get_config() == loss.get_config()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(restored) is type(loss) and restored.get_config() == loss.get_config()
