"""BSDS ODS/OIS and PSNR/SSIM against hand-made cases."""

import json
import math

import numpy as np
import pytest

from kd_keras.benchmark.report import write_json_atomic
from kd_keras.metrics import PixelF1, boundary_scores, psnr, rgb_to_y, ssim


def square_boundary(size=64, lo=16, hi=48):
    """Four separate one-pixel lines (no corners, which thinning would trim) and a diagonal."""
    gt = np.zeros((size, size), bool)
    gt[lo, lo + 2:hi - 2] = gt[hi - 1, lo + 2:hi - 2] = gt[lo + 2:hi - 2, lo] = gt[lo + 2:hi - 2, hi - 1] = True
    idx = np.arange(lo + 6, hi - 6)
    gt[idx, idx] = True
    return gt


def score(pred, annotations, nms=False, **kw):
    """Scores one map; NMS is off so that binary hand-made maps keep every pixel."""
    return boundary_scores([pred], [annotations], workers=1, nms=nms, **kw)


def test_perfect_prediction_scores_ods_and_ois_one():
    gt = square_boundary()
    s = score(gt.astype(float), gt[None])
    assert s["ods"] == pytest.approx(1.0) and s["ois"] == pytest.approx(1.0)
    assert s["ods_precision"] == pytest.approx(1.0) and s["ods_recall"] == pytest.approx(1.0)


def test_nms_thins_a_soft_boundary_to_near_perfect():
    from scipy.ndimage import gaussian_filter

    gt = square_boundary()
    soft = gaussian_filter(gt.astype(float), 1.5)
    soft /= soft.max()  # a 5-pixel-wide ridge along the true boundary
    with_nms = score(soft, gt[None], nms=True)["ods"]
    # NMS keeps the ridge line (it loses a few pixels at line ends).
    assert 0.9 < with_nms < 1.0


def test_empty_prediction_scores_zero():
    gt = square_boundary()
    assert score(np.zeros(gt.shape), gt[None])["ods"] == 0.0


def test_half_the_boundary_gives_f_two_thirds():
    gt = np.zeros((64, 64), bool)
    gt[20, 10:50] = gt[40, 10:50] = True
    pred = np.zeros((64, 64))
    pred[20, 10:50] = 1.0  # precision 1, recall 1/2 -> F = 2/3
    s = score(pred, gt[None])
    assert s["ods_precision"] == pytest.approx(1.0) and s["ods_recall"] == pytest.approx(0.5)
    assert s["ods"] == pytest.approx(2 / 3, rel=1e-3)


def test_matching_tolerance_is_a_fraction_of_the_diagonal():
    gt = np.zeros((200, 200), bool)
    gt[100, 40:160] = True  # diagonal 283 px: tolerance 0.0075 * 283 = 2.1 px
    near, far = np.zeros((200, 200)), np.zeros((200, 200))
    near[102, 40:160] = 1.0
    far[106, 40:160] = 1.0
    assert score(near, gt[None])["ods"] == pytest.approx(1.0)
    assert score(far, gt[None])["ods"] == 0.0
    assert score(far, gt[None], max_dist=0.03)["ods"] == pytest.approx(1.0)  # 8.5 px


def test_each_annotator_counts_for_recall_and_any_one_for_precision():
    a, b = np.zeros((64, 64), bool), np.zeros((64, 64), bool)
    a[20, 10:50] = True
    b[40, 10:50] = True
    pred = a.astype(float)
    s = score(pred, np.stack([a, b]))
    # Precision: every predicted pixel matches annotator a. Recall: 40 of 80 annotated pixels.
    assert s["ods_precision"] == pytest.approx(1.0) and s["ods_recall"] == pytest.approx(0.5)


def test_ois_picks_each_images_own_threshold():
    gt = square_boundary()
    clutter = np.zeros(gt.shape)
    clutter[30:34, 20:44] = 1.0  # a blob of false edges
    strong = np.where(gt, 0.9, clutter * 0.5)  # best threshold above 0.5
    weak = np.where(gt, 0.3, 0.0)  # best threshold below 0.3
    s = boundary_scores([strong, weak], [gt[None], gt[None]], workers=1, nms=False)
    assert s["ois"] == pytest.approx(1.0, abs=1e-3)
    assert s["ods"] < s["ois"]


def test_scores_run_in_worker_processes_alike():
    gt = square_boundary()
    maps = [gt.astype(float), np.zeros(gt.shape), np.where(gt, 0.6, 0.0)]
    ann = [gt[None]] * 3
    parallel = boundary_scores(maps, ann, workers=2, n_thresholds=9)
    serial = boundary_scores(maps, ann, workers=1, n_thresholds=9)
    # The matching (BSDS' CSA) breaks ties with its own random stream, so results may
    # differ slightly with the order images are matched in.
    assert parallel == pytest.approx(serial, abs=0.02)


def test_pixel_f1_counts_edge_pixels_at_probability_half():
    y = np.array([1.0, 1.0, 0.0, 0.0, 0.4], "float32").reshape(1, 1, 5, 1)
    logits = np.array([3.0, -3.0, 3.0, -3.0, 3.0], "float32").reshape(1, 1, 5, 1)
    m = PixelF1()
    m.update_state(y, logits)
    assert float(m.result()) == pytest.approx(2 * 1 / (2 * 1 + 1 + 1))  # TP 1, FP 1, FN 1; 0.4 ignored


def test_identical_images_give_infinite_psnr_written_as_json(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (20, 20, 3)).astype(np.uint8)
    assert psnr(image, image, shave=2) == math.inf
    assert ssim(image, image, shave=2) == pytest.approx(1.0)
    write_json_atomic(str(tmp_path / "r.json"), {"psnr": psnr(image, image)})
    assert json.loads((tmp_path / "r.json").read_text()) == {"psnr": "inf"}


def test_known_noise_gives_the_psnr_of_the_formula():
    rng = np.random.default_rng(0)
    grey = rng.integers(50, 200, (32, 32))
    noise = rng.choice([-6, 6], (32, 32))
    clean = np.repeat(grey[..., None], 3, -1)
    noisy = np.repeat((grey + noise)[..., None], 3, -1)
    # On grey pixels Y = 16 + 219/255 * v, so an RGB error of 6 is a Y error of 6 * 219/255 everywhere.
    expected = 10 * math.log10(255 ** 2 / (6 * 219 / 255) ** 2)
    assert psnr(noisy, clean) == pytest.approx(expected, rel=1e-9)


def test_psnr_shaves_the_border_and_uses_bt601_luma():
    clean = np.full((16, 16, 3), 100, np.uint8)
    broken = clean.copy()
    broken[:2] = 0  # damage only the 2-pixel border rows
    assert psnr(broken, clean, shave=2) == math.inf and psnr(broken, clean, shave=1) < 25
    assert rgb_to_y([255, 255, 255]) == pytest.approx(235.0) and rgb_to_y([0, 0, 0]) == pytest.approx(16.0)


def test_psnr_rejects_mismatched_sizes():
    with pytest.raises(ValueError, match=r"output \(4, 4, 3\) and reference \(4, 5, 3\) images differ"):
        psnr(np.zeros((4, 4, 3)), np.zeros((4, 5, 3)))


def test_benchmark_reports_progress_and_the_time_left():
    gt = square_boundary()
    lines = []
    boundary_scores([gt.astype(float)] * 20, [gt[None]] * 20, n_thresholds=5, workers=1, nms=False,
                    log=lines.append)
    assert 5 <= len(lines) <= 11 and lines[-1].startswith("   BSDS benchmark: 20/20 images, ")
    assert "left" not in lines[-1] and all("left" in line for line in lines[:-1])
    assert [int(line.split(": ")[1].split("/")[0]) for line in lines] == sorted(
        int(line.split(": ")[1].split("/")[0]) for line in lines)
