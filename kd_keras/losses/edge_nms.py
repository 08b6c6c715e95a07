"""Edge non-maximum suppression in Keras ops: a soft edge map thinned to its ridges.

The BSDS benchmark thins every map before it matches it to the annotators'
one-pixel boundaries (Dollar's `edgesNms`, as in pyEdgeEval's `fast_nms`).
A teacher's soft map (HED's is several pixels wide) can be thinned the same
way, inside the graph, so that a student is taught where the teacher's
edges are and how sure it is of them, and not the teacher's blur.
"""

from __future__ import annotations

import numpy as np
from keras import ops


def _conv(x, kernel):
    """'valid' 2-D convolution of (N, H, W, 1) maps with a (kh, kw) kernel."""
    k = np.asarray(kernel, np.float32)[:, :, None, None]
    return ops.conv(x, ops.convert_to_tensor(k), padding="valid")


def conv_tri(x, radius: int):
    """Dollar's triangle filter (`convTri`) of radius `radius`, symmetric borders, on (N, H, W, 1)."""
    if radius <= 1:
        p = 12.0 / radius / (radius + 2) - 2
        f = np.array([1.0, p, 1.0]) / (2 + p)
        radius = 1
    else:
        f = np.concatenate([np.arange(1, radius + 2), np.arange(radius, 0, -1)]) / (radius + 1) ** 2
    x = ops.pad(x, ((0, 0), (radius, radius), (radius, radius), (0, 0)), mode="symmetric")
    return _conv(_conv(x, f[None, :]), f[:, None])


def _gradient(x):
    """`np.gradient` along columns (x) and rows (y): central differences, one-sided at the borders."""
    def along(v, axis):
        n = ops.shape(v)[axis]
        first = ops.take(v, [1], axis=axis) - ops.take(v, [0], axis=axis)
        last = ops.take(v, [n - 1], axis=axis) - ops.take(v, [n - 2], axis=axis)
        middle = (ops.take(v, ops.arange(2, n), axis=axis) - ops.take(v, ops.arange(0, n - 2), axis=axis)) / 2.0
        return ops.concatenate([first, middle, last], axis=axis)
    return along(x, 2), along(x, 1)


def _shifted(x):
    """The 3x3 neighbourhood of every pixel, borders replicated: {(di, dj): map of x[y + dj, x + di]}."""
    h, w = ops.shape(x)[1], ops.shape(x)[2]
    padded = ops.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="symmetric")  # 1 px: the border itself
    return {(di, dj): padded[:, 1 + dj:1 + dj + h, 1 + di:1 + di + w, :] for di in (-1, 0, 1) for dj in (-1, 0, 1)}


def _interp(neighbours, dx, dy):
    """Bilinear sample at offset (dx, dy), |dx|, |dy| <= 1, from the 3x3 neighbourhood."""
    total = 0.0
    for (di, dj), value in neighbours.items():
        weight = ops.relu(1.0 - ops.abs(dx - di)) * ops.relu(1.0 - ops.abs(dy - dj))
        total = total + weight * value
    return total


def edge_nms(edges, multiplier: float = 1.01):
    """Non-maximum suppression of an edge probability map, as the BSDS benchmark applies it.

    The map is smoothed (`convTri`, radius 1); the edge normal comes from
    the second derivatives of a radius-4 smoothing; a pixel is kept when
    `multiplier` times its value is at least the (bilinear) values one
    pixel away on both sides along the normal, and set to 0 otherwise.
    Unlike `edgesNms`, pixels near the map's border are not damped: here
    the map is usually a crop, whose border is not the image's.

    Args:
        edges: (N, H, W, 1) probabilities in [0, 1], H and W at least 2.
        multiplier: `m` of `edgesNms`, > 1 keeps near-ties.

    Returns:
        The thinned map, same shape: the smoothed value on ridges, 0 elsewhere.

    Reference:
        Dollar, Zitnick. Fast Edge Detection Using Structured Forests. TPAMI
        2015 (edgesNms.m / edgesNmsMex.cpp; pyEdgeEval `fast_nms`, r = 1).
    """
    edge = conv_tri(ops.cast(edges, "float32"), 1)
    ox, oy = _gradient(conv_tri(edge, 4))
    oxx, _ = _gradient(ox)
    oxy, oyy = _gradient(oy)
    oxx = ops.where(ops.equal(oxx, 0.0), 1e-5, oxx)
    angle = ops.arctan(oyy * ops.sign(-oxy) / oxx)
    angle = angle - np.pi * ops.floor(angle / np.pi)  # mod pi, in [0, pi)
    dx, dy = ops.cos(angle), ops.sin(angle)
    neighbours = _shifted(edge)
    strong = edge * multiplier
    keep = ops.logical_and(strong >= _interp(neighbours, dx, dy), strong >= _interp(neighbours, -dx, -dy))
    return ops.where(keep, edge, 0.0)
