"""Edge NMS in Keras ops, against pyEdgeEval's reference, and edge_kd on the thinned teacher map."""

import math

import numpy as np
import pytest

from kd_keras.losses import EdgeKDLoss, create_loss
from kd_keras.losses.edge_nms import edge_nms


def soft_boundaries(size=64, seed=0):
    """A soft, several-pixel-wide edge map: blurred boundaries of random discs, with noise, in (0, 1)."""
    from scipy.ndimage import gaussian_filter
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    regions = np.zeros((size, size), int)
    for r in range(1, 5):
        cy, cx, radius = rng.uniform(8, size - 8), rng.uniform(8, size - 8), rng.uniform(6, size / 3)
        regions[(yy - cy) ** 2 + (xx - cx) ** 2 < radius ** 2] = r
    edges = np.zeros((size, size))
    edges[:, :-1] += regions[:, :-1] != regions[:, 1:]
    edges[:-1, :] += regions[:-1, :] != regions[1:, :]
    soft = gaussian_filter(np.minimum(edges, 1.0), 1.5) * 3 + rng.uniform(0, 0.05, edges.shape)
    return np.clip(soft, 0.0, 1.0)


def test_edge_nms_keeps_the_ridge_of_a_blurred_line_only():
    column = np.exp(-0.5 * ((np.arange(32) - 15) / 2.0) ** 2)  # a vertical line 5 px wide, peak at x = 15
    edges = np.tile(column, (24, 1))[None, ..., None].astype("float32")
    thin = np.asarray(edge_nms(edges))[0, ..., 0]
    assert (thin[:, 15] > 0.5).all()
    kept = np.argwhere(thin > 0)
    assert set(kept[:, 1]) == {15}
    assert thin.shape == edges.shape[1:3]


@pytest.mark.parametrize("seed", [0, 1])
def test_edge_nms_equals_the_benchmark_nms_away_from_the_border(seed):
    fast_nms = pytest.importorskip("pyEdgeEval.preprocess.nms.fast_nms",
                                   reason="pyEdgeEval is the [edges] extra").fast_nms
    soft = soft_boundaries(seed=seed)
    reference = fast_nms(soft.astype(np.float64))  # r = 1, s = 5, m = 1.01
    ours = np.asarray(edge_nms(soft[None, ..., None].astype("float32")))[0, ..., 0]
    inner = (slice(8, -8), slice(8, -8))  # edgesNms damps the 5 px next to the border; we do not
    np.testing.assert_array_equal(ours[inner] > 0, reference[inner] > 0)
    np.testing.assert_allclose(ours[inner], reference[inner], atol=1e-6)
    assert 0 < (ours > 0.3).mean() < 0.5 * (soft > 0.3).mean()  # the strong edges get thinner


def test_thin_edge_kd_is_balanced_edge_kd_on_the_thinned_map():
    rng = np.random.default_rng(0)
    q = np.stack([soft_boundaries(32, s) for s in (2, 3)])[..., None].clip(1e-4, 1 - 1e-4)
    t = np.log(q / (1 - q)).astype("float32")
    s = rng.normal(0, 2, t.shape).astype("float32")
    thin = np.asarray(edge_nms(q.astype("float32")))
    b = thin.mean()
    p = 1 / (1 + np.exp(-s))
    expected = np.mean((1 - b) * thin * -np.log(p) + b * (1 - thin) * -np.log(1 - p))
    assert float(EdgeKDLoss(thin=True).compute_loss(t, s)) == pytest.approx(expected, rel=1e-4)
    assert float(EdgeKDLoss(thin=False).compute_loss(t, s)) != pytest.approx(expected, rel=1e-2)


def test_thin_edge_kd_prefers_a_thin_student_to_one_that_copies_the_blur():
    q = soft_boundaries(48, 4)[None, ..., None].clip(1e-4, 1 - 1e-4)
    t = np.log(q / (1 - q)).astype("float32")
    thin = np.asarray(edge_nms(q.astype("float32")))
    ridge = np.where(thin > 0, 6.0, -6.0).astype("float32")  # sure on the ridges, sure of no edge beside them
    loss = EdgeKDLoss(thin=True)
    assert float(loss.compute_loss(t, ridge)) < float(loss.compute_loss(t, t))
    assert float(EdgeKDLoss(thin=False).compute_loss(t, ridge)) > float(EdgeKDLoss(thin=False).compute_loss(t, t))


def test_thin_round_trips_and_is_checked():
    loss = create_loss("edge_kd", temperature=2.0, thin=True)
    assert loss.get_config() == {"temperature": 2.0, "balanced": True, "thin": True}
    assert type(loss).from_config(loss.get_config()).thin is True
    assert EdgeKDLoss().thin is False
    with pytest.raises(ValueError, match="thin must be true or false, got 1"):
        EdgeKDLoss(thin=1)
    assert math.isfinite(float(loss.compute_loss(np.zeros((1, 4, 4, 1), "float32"), np.zeros((1, 4, 4, 1), "float32"))))
