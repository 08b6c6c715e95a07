"""Logit standardization, DIST and the distillation warm-up against numpy references."""

import numpy as np
import pytest

from kd_keras.distiller import warmup_factor
from kd_keras.losses import DISTLoss, DKDLoss, KDLoss, create_loss, standardize_logits

RNG = np.random.default_rng(0)
T_LOGITS = RNG.normal(0, 3, (6, 5)).astype("float32")
S_LOGITS = RNG.normal(0, 1, (6, 5)).astype("float32")
LABELS = np.eye(5, dtype="float32")[[0, 1, 2, 3, 4, 0]]


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def kl(p, q):
    return (p * np.log(p / q)).sum(-1)


def zscore(z):  # unbiased std, as the reference code's torch.std
    return (z - z.mean(-1, keepdims=True)) / (z.std(-1, ddof=1, keepdims=True) + 1e-7)


def pearson_distance(a, b):  # rows
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    return 1 - ((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-8)).mean()


def test_standardize_is_unbiased_zscore():
    z = np.asarray(standardize_logits(T_LOGITS))
    np.testing.assert_allclose(z, zscore(T_LOGITS.astype("float64")), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(z.std(-1, ddof=1), 1.0, rtol=1e-4)


@pytest.mark.parametrize("t", [1.0, 2.0])
def test_kd_standardized_matches_numpy(t):
    expected = t * t * kl(softmax(zscore(T_LOGITS) / t), softmax(zscore(S_LOGITS) / t)).mean()
    value = float(KDLoss(t, standardize=True).compute_loss(T_LOGITS, S_LOGITS))
    assert value == pytest.approx(expected, rel=1e-4)
    plain = float(KDLoss(t).compute_loss(T_LOGITS, S_LOGITS))
    assert abs(value - plain) > 1e-3  # the option changes the loss


@pytest.mark.parametrize("loss", [KDLoss(2.0, standardize=True), DKDLoss(1.0, 8.0, 2.0, standardize=True)])
def test_standardization_ignores_shift_and_positive_scale_of_either_side(loss):
    ref = float(loss.compute_loss(T_LOGITS, S_LOGITS, labels=LABELS))
    shifted_t = float(loss.compute_loss(3.0 * T_LOGITS - 7.0, S_LOGITS, labels=LABELS))
    shifted_s = float(loss.compute_loss(T_LOGITS, 0.25 * S_LOGITS + 4.0, labels=LABELS))
    assert shifted_t == pytest.approx(ref, rel=1e-4)
    assert shifted_s == pytest.approx(ref, rel=1e-4)
    plain = type(loss)(**{**loss.get_config(), "standardize": False})
    assert float(plain.compute_loss(3.0 * T_LOGITS, S_LOGITS, labels=LABELS)) != pytest.approx(
        float(plain.compute_loss(T_LOGITS, S_LOGITS, labels=LABELS)), rel=1e-3)  # without it, scale matters


@pytest.mark.parametrize("t", [1.0, 4.0])
def test_dkd_standardized_equals_dkd_on_zscored_logits(t):
    a = float(DKDLoss(1.0, 8.0, t, standardize=True).compute_loss(T_LOGITS, S_LOGITS, labels=LABELS))
    b = float(DKDLoss(1.0, 8.0, t).compute_loss(zscore(T_LOGITS), zscore(S_LOGITS), labels=LABELS))
    assert a == pytest.approx(b, rel=1e-4)


@pytest.mark.parametrize("t", [1.0, 4.0])
def test_dist_matches_numpy(t):
    ps, pt = softmax(S_LOGITS / t), softmax(T_LOGITS / t)
    inter, intra = pearson_distance(ps, pt), pearson_distance(ps.T, pt.T)
    expected = t * t * (2.0 * inter + 0.5 * intra)
    value = float(DISTLoss(beta=2.0, gamma=0.5, temperature=t).compute_loss(T_LOGITS, S_LOGITS))
    assert value == pytest.approx(expected, rel=1e-4)
    assert value > 0


@pytest.mark.parametrize("t", [1.0, 4.0])
def test_dist_is_zero_for_an_affine_map_of_the_teacher(t):
    pt = softmax(T_LOGITS / t)
    c = pt.shape[-1]
    ps = 0.4 * pt + 0.6 / c  # positive scale and a shift that keeps the rows summing to one
    s_logits = t * np.log(ps)
    assert float(DISTLoss(temperature=t).compute_loss(T_LOGITS, s_logits.astype("float32"))) == pytest.approx(
        0.0, abs=1e-4)  # float32 round-off times T^2
    assert float(DISTLoss(temperature=t).compute_loss(T_LOGITS, S_LOGITS)) > 0.05


def test_warmup_factor_at_start_midway_and_after():
    assert float(warmup_factor(0, 10)) == pytest.approx(0.1)  # the first step already distils 1/10
    assert float(warmup_factor(4, 10)) == pytest.approx(0.5)
    assert float(warmup_factor(9, 10)) == pytest.approx(1.0)
    assert float(warmup_factor(500, 10)) == pytest.approx(1.0)


def test_new_options_round_trip_and_reject_bad_values():
    for name, kwargs in (("kd", {"standardize": True}), ("dkd", {"standardize": True}),
                         ("dist", {"beta": 2.0, "gamma": 0.5, "temperature": 3.0})):
        loss = create_loss(name, **kwargs)
        assert type(loss).from_config(loss.get_config()).get_config() == loss.get_config()
    with pytest.raises(ValueError, match="standardize must be true or false, got 'yes'"):
        KDLoss(standardize="yes")
    with pytest.raises(ValueError, match="beta must be a number >= 0, got -1"):
        DISTLoss(beta=-1)
    with pytest.raises(ValueError, match="loss 'dist' got unknown argument.*tau"):
        create_loss("dist", tau=2.0)


def test_mlkd_matches_numpy_at_two_temperatures():
    from kd_keras.losses import MLKDLoss

    expected = 0.0
    for t in (1.0, 3.0):
        pt, ps = softmax(T_LOGITS / t), softmax(S_LOGITS / t)
        instance = t * t * kl(pt, ps).mean()
        batch = ((pt @ pt.T - ps @ ps.T) ** 2).sum() / pt.shape[0]
        cls = ((pt.T @ pt - ps.T @ ps) ** 2).sum() / pt.shape[1]
        expected += 1.0 * instance + 2.0 * batch + 0.5 * cls
    # at the reference batch the normalised terms are the reference code's
    loss = MLKDLoss(temperatures=[1.0, 3.0], instance_weight=1.0, batch_weight=2.0, class_weight=0.5,
                    reference_batch=len(T_LOGITS))
    assert float(loss.compute_loss(T_LOGITS, S_LOGITS)) == pytest.approx(expected, rel=1e-4)
    assert float(loss.compute_loss(T_LOGITS, T_LOGITS)) == pytest.approx(0.0, abs=1e-6)
    assert MLKDLoss.from_config(loss.get_config()).get_config() == loss.get_config()
    with pytest.raises(ValueError, match="temperatures must be a non-empty list of numbers > 0, got 4"):
        MLKDLoss(temperatures=4)
    with pytest.raises(ValueError, match="reference_batch must be an integer >= 1 .*got 0"):
        MLKDLoss(reference_batch=0)


def test_mlkd_does_not_grow_with_the_batch():
    from kd_keras.losses import MLKDLoss

    loss = MLKDLoss()
    one = float(loss.compute_loss(T_LOGITS, S_LOGITS))
    for times in (2, 8):  # the same images repeated: a larger batch of the same predictions
        bigger = float(loss.compute_loss(np.concatenate([T_LOGITS] * times), np.concatenate([S_LOGITS] * times)))
        assert bigger == pytest.approx(one, rel=1e-5), f"{times}x the batch changed the loss: {one} -> {bigger}"
