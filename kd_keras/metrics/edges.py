"""Edge-detection metrics: the BSDS benchmark (ODS, OIS, AP) and a fast pixel F1.

`boundary_scores` follows the BSDS500 protocol (Arbelaez et al., TPAMI
2011) through pyEdgeEval, a maintained port of the benchmark's C++ code:
non-maximum suppression of the probability map, then at each of 99
thresholds morphological thinning and a minimum-cost bipartite matching of
predicted to ground-truth boundary pixels within 0.0075 of the image
diagonal (`correspondPixels`), against every annotator. A predicted pixel
counts as correct if it matches any annotator; recall counts the matched
pixels of all annotators. ODS is the best F over one threshold for the
whole set (interpolated between thresholds, as the benchmark does); OIS
takes the best threshold per image.
"""

from __future__ import annotations

import multiprocessing
import os
import time

import keras
import numpy as np

MAX_DIST = 0.0075
THRESHOLDS = 99


def thresholds(n: int = THRESHOLDS) -> np.ndarray:
    """The benchmark's `n` evenly spaced thresholds in (0, 1)."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"the number of edge thresholds must be an integer >= 1, got {n!r}.")
    return np.linspace(1.0 / (n + 1), 1.0 - 1.0 / (n + 1), n)


def edge_counts(probability: np.ndarray, annotations: np.ndarray, n_thresholds: int = THRESHOLDS,
                max_dist: float = MAX_DIST, nms: bool = True) -> np.ndarray:
    """Matching counts of one image at every threshold.

    Args:
        probability: HxW edge probabilities in [0, 1].
        annotations: KxHxW boolean maps, one per annotator.
        n_thresholds: number of thresholds.
        max_dist: matching tolerance as a fraction of the image diagonal.
        nms: apply edge non-maximum suppression first (for soft maps).

    Returns:
        Array (4, n_thresholds): matched GT pixels, GT pixels, matched
        predicted pixels, predicted pixels.
    """
    evaluate = _pyedgeeval()[0]
    probability = np.asarray(probability, np.float64)
    annotations = np.asarray(annotations, bool)
    if annotations.ndim == 2:
        annotations = annotations[None]
    if probability.shape != annotations.shape[1:]:
        raise ValueError(f"edge map {probability.shape} and annotations {annotations.shape[1:]} differ in size.")
    counts = evaluate(
        thresholds(n_thresholds), probability, annotations, max_dist=max_dist, apply_thinning=True, apply_nms=nms)
    return np.stack(counts).astype(np.float64)


MISSING = ("edge detection is scored with the BSDS benchmark of pyEdgeEval, which is not installed; install the "
           "extra: pip install \"kd_keras[edges]\" (pyEdgeEval builds from source: it needs a C++ compiler).")


def missing_benchmark() -> str:
    """The one-line hint when pyEdgeEval (the `edges` extra) is not installed, else ""."""
    import importlib.util

    try:
        found = importlib.util.find_spec("pyEdgeEval") is not None
    except (ImportError, ValueError):  # a broken or hidden install
        found = False
    return "" if found else MISSING


def _pyedgeeval():
    """Imports pyEdgeEval quietly (it prints a note about .mat files on import)."""
    import contextlib
    import io

    if missing_benchmark():
        raise ValueError(MISSING)
    with contextlib.redirect_stdout(io.StringIO()):
        from pyEdgeEval.common.binary_label.evaluate_boundaries import evaluate_boundaries_threshold_multiple_gts
        from pyEdgeEval.common.metrics import interpolated_max_scores
    return evaluate_boundaries_threshold_multiple_gts, interpolated_max_scores


def _f1(recall, precision):
    return np.where(recall + precision > 0, 2 * recall * precision / np.maximum(recall + precision, 1e-12), 0.0)


def _rp(counts):
    count_r, sum_r, count_p, sum_p = counts
    return count_r / np.where(sum_r > 0, sum_r, 1), count_p / np.where(sum_p > 0, sum_p, 1)


def _counts_job(args):
    return edge_counts(*args)


def boundary_scores(probabilities, annotations, n_thresholds: int = THRESHOLDS, max_dist: float = MAX_DIST,
                    nms: bool = True, workers: int | None = None, log=None) -> dict:
    """ODS, OIS and AP of a set of edge maps (the BSDS benchmark).

    Args:
        probabilities: list of HxW edge-probability maps in [0, 1].
        annotations: list of KxHxW boolean annotator maps, one per image.
        n_thresholds: thresholds (the benchmark uses 99).
        max_dist: matching tolerance, a fraction of the diagonal (0.0075).
        nms: apply non-maximum suppression to each map first.
        workers: processes (default: the CPU count); 1 runs in-process.
        log: if given, `log(line)` reports progress and the time left about
            every tenth of the images (the matching takes about a minute per
            image per core at 99 thresholds).

    Returns:
        dict with `ods`, `ods_threshold`, `ods_precision`, `ods_recall`,
        `ois` and `ap`.
    """
    interpolated_max_scores = _pyedgeeval()[1]
    if len(probabilities) != len(annotations) or not probabilities:
        raise ValueError(f"need one annotation set per edge map, got {len(probabilities)} maps and "
                         f"{len(annotations)} annotation sets.")
    jobs = [(p, a, n_thresholds, max_dist, nms) for p, a in zip(probabilities, annotations)]
    workers = min(workers or os.cpu_count() or 1, len(jobs))
    report = _progress(len(jobs), log)
    if workers > 1:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            per_image = [report(c) for c in pool.imap(_counts_job, jobs)]
    else:
        per_image = [report(_counts_job(j)) for j in jobs]
    per_image = np.stack(per_image)  # (images, 4, thresholds)
    ths = thresholds(n_thresholds)

    total = per_image.sum(axis=0)
    recall, precision = _rp(total)
    best_t, best_r, best_p, ods = interpolated_max_scores(ths, recall, precision)

    best = np.zeros(4)
    for counts in per_image:  # OIS: each image at its own best threshold
        r, p = _rp(counts)
        best += counts[:, int(np.argmax(_f1(r, p)))]
    r, p = _rp(best[:, None])
    ois = float(_f1(r, p)[0])

    ap = 0.0  # the benchmark's AP: interpolated precision at recall 0, 0.01, ..., 1
    for t in np.linspace(0, 1, 101):
        ap += np.max(precision[recall >= t], initial=0.0) / 101
    return {"ods": float(ods), "ods_threshold": float(best_t), "ods_precision": float(best_p),
            "ods_recall": float(best_r), "ois": ois, "ap": float(ap)}


def _progress(n: int, log):
    """`report(result)`: counts finished images and logs progress with the time left about every tenth."""
    start, done, shown = time.perf_counter(), 0, 0

    def report(result):
        nonlocal done, shown
        done += 1
        if log is not None and (done * 10 // n > shown or done == n):
            shown = done * 10 // n
            elapsed = time.perf_counter() - start
            left = elapsed / done * (n - done)
            log(f"   BSDS benchmark: {done}/{n} images, {_duration(elapsed)} elapsed"
                + (f", about {_duration(left)} left" if done < n else ""))
        return result

    return report


def _duration(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m} min {s:02d} s" if m else f"{s} s"


@keras.saving.register_keras_serializable(package="kd_keras")
class PixelF1(keras.metrics.Metric):
    """F1 of edge pixels at probability 0.5, without matching tolerance.

    A cheap training monitor (it is below the BSDS F-measure, which forgives
    a pixel or two of displacement). Labels are annotator shares: >=
    `label_threshold` is an edge, 0 is not, and pixels in between are
    ignored, as in the training loss.
    """

    def __init__(self, label_threshold: float = 0.5, name: str = "pixel_f1", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_threshold = float(label_threshold)
        self.tp = self.add_variable(shape=(), initializer="zeros", name="tp")
        self.fp = self.add_variable(shape=(), initializer="zeros", name="fp")
        self.fn = self.add_variable(shape=(), initializer="zeros", name="fn")

    def update_state(self, y_true, y_pred, sample_weight=None):
        from keras import ops

        y = ops.cast(y_true, "float32")
        positive = ops.cast(y >= self.label_threshold, "float32")
        negative = ops.cast(y <= 0.0, "float32")
        predicted = ops.cast(ops.cast(y_pred, "float32") > 0.0, "float32")  # logit > 0 <=> p > 0.5
        self.tp.assign_add(ops.sum(predicted * positive))
        self.fp.assign_add(ops.sum(predicted * negative))
        self.fn.assign_add(ops.sum((1.0 - predicted) * positive))

    def result(self):
        from keras import ops

        return 2.0 * self.tp / ops.maximum(2.0 * self.tp + self.fp + self.fn, 1.0)

    def reset_state(self):
        for v in (self.tp, self.fp, self.fn):
            v.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "label_threshold": self.label_threshold}
