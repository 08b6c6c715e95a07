"""Dense-task losses against hand-computed values."""

import math

import numpy as np
import pytest
import tensorflow as tf

from kd_keras.losses import (
    BalancedBCELoss, ChannelWiseLoss, EdgeKDLoss, FAKDLoss, FitNetsLoss, OutputL1Loss, SideOutputKDLoss, create_loss,
    list_losses,
)


def bce(q, z):
    """Binary cross-entropy of sigmoid(z) against target q, by the textbook formula."""
    p = 1 / (1 + math.exp(-z))
    return -(q * math.log(p) + (1 - q) * math.log(1 - p))


def test_balanced_bce_weights_edges_and_ignores_minority_pixels():
    # One edge (share 1.0), two non-edges (0), one pixel marked by a minority (0.4): ignored.
    y = np.array([1.0, 0.0, 0.4, 0.0], "float32").reshape(1, 2, 2, 1)
    z = np.array([2.0, -1.0, 5.0, 0.5], "float32").reshape(1, 2, 2, 1)
    w_pos, w_neg = 2 / 3, 1.1 * 1 / 3  # N/(P+N) and lambda*P/(P+N) with P=1, N=2
    expected = (w_pos * bce(1, 2.0) + w_neg * (bce(0, -1.0) + bce(0, 0.5))) / 4
    assert float(BalancedBCELoss()(y, z)) == pytest.approx(expected, rel=1e-5)
    # The ignored pixel's logit does not matter.
    z2 = z.copy()
    z2[0, 1, 0, 0] = -30.0
    assert float(BalancedBCELoss()(y, z2)) == pytest.approx(expected, rel=1e-5)


def test_balanced_bce_counts_over_the_batch_and_is_stable():
    y = np.zeros((2, 4, 4, 1), "float32")
    y[0, 1, 1] = 1.0  # the second image has no edge at all: its non-edges still count
    z = np.full((2, 4, 4, 1), 80.0, "float32")  # saturated logits: no inf/nan
    value = float(BalancedBCELoss(negative_weight=1.0)(y, z))
    w_neg = 1 / 32
    expected = (15 * w_neg * 80.0 / 16 + 16 * w_neg * 80.0 / 16) / 2
    assert value == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("bad", [0.0, 1.5, True])
def test_balanced_bce_rejects_bad_threshold(bad):
    with pytest.raises(ValueError, match=f"threshold must be a number in \\(0, 1\\], got {bad!r}"):
        BalancedBCELoss(threshold=bad)


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_edge_kd_matches_hand_computed_bce_and_its_gradient(temperature):
    t = np.array([2.0, -1.0, 0.0, 3.0], "float32").reshape(1, 2, 2, 1)
    s = np.array([0.0, 1.0, -2.0, 3.0], "float32").reshape(1, 2, 2, 1)
    T = temperature
    q = [1 / (1 + math.exp(-v / T)) for v in t.ravel()]
    expected = T * T * np.mean([bce(qi, si / T) for qi, si in zip(q, s.ravel())])
    loss = EdgeKDLoss(temperature, balanced=False)
    assert float(loss.compute_loss(t, s)) == pytest.approx(expected, rel=1e-5)
    s_var = tf.Variable(s)
    with tf.GradientTape() as tape:
        value = loss.compute_loss(t, s_var)
    grad = tape.gradient(value, s_var).numpy().ravel()
    sig = 1 / (1 + np.exp(-s.ravel() / T))
    np.testing.assert_allclose(grad, T * (sig - np.array(q)) / 4, rtol=1e-4, atol=1e-7)


def test_balanced_edge_kd_weights_by_the_teachers_edge_share():
    t = np.array([2.0, -2.0, -3.0, -1.0], "float32").reshape(1, 2, 2, 1)
    s = np.array([1.0, 0.0, -1.0, 2.0], "float32").reshape(1, 2, 2, 1)
    q = 1 / (1 + np.exp(-t.ravel()))
    b = q.mean()
    expected = np.mean([(1 - b) * qi * -math.log(1 / (1 + math.exp(-si)))
                        + b * (1 - qi) * -math.log(1 - 1 / (1 + math.exp(-si))) for qi, si in zip(q, s.ravel())])
    assert float(EdgeKDLoss(1.0).compute_loss(t, s)) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="balanced must be true or false, got 'yes'"):
        EdgeKDLoss(balanced="yes")


def test_edge_kd_is_minimal_when_the_student_copies_the_teacher():
    t = np.random.default_rng(0).normal(0, 3, (2, 5, 5, 1)).astype("float32")
    loss = EdgeKDLoss(2.0, balanced=False)
    at_teacher = float(loss.compute_loss(t, t))
    for delta in (0.5, -0.5):
        assert float(loss.compute_loss(t, t + delta)) > at_teacher


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_cwd_is_the_kl_of_per_channel_softmaxes_over_pixels(temperature):
    rng = np.random.default_rng(1)
    t = rng.normal(0, 3, (2, 3, 4, 2)).astype("float32")
    s = rng.normal(0, 3, (2, 3, 4, 2)).astype("float32")
    T, kls = temperature, []
    for n in range(2):
        for c in range(2):  # each image and channel: a distribution over its 12 pixels
            q = np.exp(t[n, ..., c].ravel() / T) / np.exp(t[n, ..., c].ravel() / T).sum()
            p = np.exp(s[n, ..., c].ravel() / T) / np.exp(s[n, ..., c].ravel() / T).sum()
            kls.append(np.sum(q * np.log(q / p)))
    loss = create_loss("cwd", temperature=temperature)
    assert isinstance(loss, ChannelWiseLoss)
    assert float(loss.compute_loss(t, s)) == pytest.approx(T * T * np.mean(kls), rel=1e-4)


def test_cwd_ignores_a_shift_of_a_student_map_but_not_a_move_of_its_mass():
    t = np.random.default_rng(2).normal(0, 3, (1, 6, 6, 1)).astype("float32")
    loss = ChannelWiseLoss(4.0)
    assert float(loss.compute_loss(t, t)) == pytest.approx(0.0, abs=1e-6)
    assert float(loss.compute_loss(t, t + 5.0)) == pytest.approx(0.0, abs=1e-5)  # a per-pixel loss is not
    assert float(loss.compute_loss(t, t[:, ::-1])) > 0.1
    big = tf.Variable(np.concatenate([t * 100, t * 100]))  # large logits: log-softmax stays finite
    with tf.GradientTape() as tape:
        value = loss.compute_loss(np.concatenate([t * 100, -t * 100]), big)
    assert np.isfinite(float(value)) and np.isfinite(tape.gradient(value, big).numpy()).all()
    assert ChannelWiseLoss.from_config(loss.get_config()).temperature == 4.0
    with pytest.raises(ValueError, match="temperature must be a number > 0, got 0"):
        ChannelWiseLoss(0)
    with pytest.raises(ValueError, match="cwd needs teacher and student outputs of the same shape"):
        loss.validate_outputs(np.zeros((1, 4, 4, 1)), np.zeros((1, 2, 2, 1)))


def test_output_l1_is_the_mean_absolute_difference():
    t = np.array([[[[10.0, 20.0, 30.0]]]], "float32")
    s = np.array([[[[12.0, 17.0, 30.0]]]], "float32")
    assert float(OutputL1Loss().compute_loss(t, s)) == pytest.approx(5.0 / 3)


def test_fakd_compares_spatial_affinities_whatever_the_widths():
    # Teacher: two positions with orthogonal features -> affinity = identity.
    t = np.array([[[[1.0, 0.0], [0.0, 3.0]]]], "float32")  # (1, 1, 2, 2)
    # Student (3 channels): both positions point the same way -> affinity = all ones.
    s = np.array([[[[1.0, 1.0, 0.0], [2.0, 2.0, 0.0]]]], "float32")
    loss = create_loss("fakd", teacher_layer="t", student_layer="s")
    assert float(loss.compute_loss(t, s)) == pytest.approx(0.5, rel=1e-5)  # |I - 1| averaged over 4 entries
    assert float(loss.compute_loss(t, t)) == pytest.approx(0.0, abs=1e-6)


def test_fakd_rejects_maps_of_different_size():
    loss = FAKDLoss("block1_out", "map1_out")
    with pytest.raises(ValueError, match="fakd needs maps of the same height and width"):
        loss.build((None, 8, 8, 64), (None, 4, 4, 12))


def test_dense_losses_are_registered_by_kind():
    assert {"edge_kd", "side_kd", "cwd", "output_l1", "fakd"} <= set(list_losses())
    assert list_losses("supervised") == ["balanced_bce", "ce", "l1"]
    assert float(create_loss("l1", kind="supervised")(np.ones((1, 2, 2, 3)), np.zeros((1, 2, 2, 3)))) == 1.0


def test_l1_and_its_charbonnier_smoothing_by_hand():
    y = np.zeros((1, 1, 2, 1), "float32")
    pred = np.array([3.0, -0.5], "float32").reshape(1, 1, 2, 1)
    assert float(create_loss("l1", kind="supervised")(y, pred)) == pytest.approx(1.75)
    smooth = (math.sqrt(9 + 1) - 1 + math.sqrt(0.25 + 1) - 1) / 2
    assert float(create_loss("l1", kind="supervised", epsilon=1.0)(y, pred)) == pytest.approx(smooth, rel=1e-6)
    assert float(OutputL1Loss(epsilon=1.0).compute_loss(y, pred)) == pytest.approx(smooth, rel=1e-6)
    with pytest.raises(ValueError, match="epsilon must be a number >= 0, got -1"):
        OutputL1Loss(epsilon=-1)


def built_side_kd(temperature=1.0, balanced=True, kernel=(0.5, -1.0), bias=0.25):
    """A side_kd hint from a 2-channel student map (4x4) to a 1-channel teacher map (8x8), with a set head."""
    loss = SideOutputKDLoss("side4", "enc2_out", temperature=temperature, balanced=balanced)
    loss.build((None, None, None, 1), (None, None, None, 2))
    loss.adapter.set_weights([np.array(kernel, "float32").reshape(1, 1, 2, 1), np.array([bias], "float32")])
    return loss


@pytest.mark.parametrize("temperature,balanced", [(1.0, False), (1.0, True), (2.0, True)])
def test_side_kd_is_edge_bce_of_the_resized_side_head_against_the_teacher_side_map(temperature, balanced):
    rng = np.random.default_rng(0)
    s = rng.normal(0, 1, (2, 4, 4, 2)).astype("float32")
    t = rng.normal(-1, 2, (2, 8, 8, 1)).astype("float32")
    T = temperature
    head = s @ np.array([0.5, -1.0], "float32") + 0.25  # the 1x1 convolution, by hand
    z = tf.image.resize(head[..., None], (8, 8), method="bilinear").numpy().ravel() / T
    q = 1 / (1 + np.exp(-t.ravel() / T))
    b = q.mean() if balanced else None
    per_pixel = [((1 - b) * qi * bce(1, zi) + b * (1 - qi) * bce(0, zi)) if balanced else bce(qi, zi)
                 for qi, zi in zip(q, z)]
    expected = T * T * np.mean(per_pixel)
    assert float(built_side_kd(T, balanced).compute_loss(t, s)) == pytest.approx(expected, rel=1e-4)


def test_side_kd_is_lower_for_a_head_that_matches_the_teacher():
    s = np.zeros((1, 4, 4, 2), "float32")
    s[0, 1, :, 0] = 1.0  # a student feature on row 1
    t = np.full((1, 4, 4, 1), -6.0, "float32")
    t[0, 1, :, 0] = 6.0  # the teacher's side map fires on the same row
    right = float(built_side_kd(kernel=(12.0, 0.0), bias=-6.0).compute_loss(t, s))
    wrong = float(built_side_kd(kernel=(-12.0, 0.0), bias=6.0).compute_loss(t, s))
    assert right < 0.02 and wrong > 1.0  # the minimum is the teacher map's entropy, 0.0102 here


def test_side_kd_checks_its_layers_and_round_trips():
    loss = create_loss("side_kd", teacher_layer="side5", student_layer="enc4_out", temperature=2.0)
    assert isinstance(loss, SideOutputKDLoss)
    again = SideOutputKDLoss.from_config(loss.get_config())
    assert again.get_config() == {"teacher_layer": "side5", "student_layer": "enc4_out", "temperature": 2.0,
                                  "balanced": True}
    with pytest.raises(ValueError, match="student_layer must be a layer name .*got ''"):
        SideOutputKDLoss("side5", "")
    with pytest.raises(ValueError, match="student layer 'enc4_out' has output shape \\(None, 64\\)"):
        SideOutputKDLoss("side5", "enc4_out").build((None, None, None, 1), (None, 64))
    with pytest.raises(ValueError, match="not built"):
        SideOutputKDLoss("side5", "enc4_out").compute_loss(np.zeros((1, 2, 2, 1)), np.zeros((1, 2, 2, 3)))


def test_hints_resize_student_maps_whose_size_is_known_only_when_the_step_runs():
    """Dense models take any image size: in a traced step both maps are (None, None); the student's is still resized."""
    rng = np.random.default_rng(1)
    t = rng.normal(0, 1, (1, 8, 8, 1)).astype("float32")
    s = rng.normal(0, 1, (1, 4, 4, 2)).astype("float32")
    for loss in (built_side_kd(), FitNetsLoss("side4", "enc2_out")):
        if isinstance(loss, FitNetsLoss):
            loss.build((None, None, None, 1), (None, None, None, 2))
        traced = tf.function(loss.compute_loss, input_signature=[tf.TensorSpec((None, None, None, 1)),
                                                                 tf.TensorSpec((None, None, None, 2))])
        assert float(traced(t, s)) == pytest.approx(float(loss.compute_loss(t, s)), rel=1e-5)
