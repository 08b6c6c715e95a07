"""Edge-detection and super-resolution recipes end to end (smoke mode), predict, bad input."""

import json
import os

import numpy as np
import pytest
from PIL import Image
from test_dense_data import make_bsds

from kd_keras.config import REPO_ROOT
from kd_keras.recipes.cli import main

ROW_FIELDS = {"name", "role", "arch", "params", "size_bytes", "latency_ms_b1", "latency_input_shape",
              "throughput", "train_seconds", "file"}
EDGES = ("edge_detection", str(REPO_ROOT / "recipes" / "edges_synthetic.toml"))
SR = ("super_resolution", str(REPO_ROOT / "recipes" / "sr_skimage.toml"))


def run_cli(capsys, recipe, *argv):
    code = main(*recipe, list(argv))
    captured = capsys.readouterr()
    return code, captured.err.strip(), captured.out


@pytest.fixture(scope="module")
def edge_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("edges") / "run"
    assert main(*EDGES, ["--smoke", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def sr_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sr") / "run"
    assert main(*SR, ["--smoke", "--export", "--out", str(out)]) == 0
    return out


def check_rows(out, metric_keys, roles):
    results = json.loads((out / "results.json").read_text())
    assert [m["role"] for m in results["models"]] == roles
    for row in results["models"]:
        assert ROW_FIELDS | set(metric_keys) <= set(row), (ROW_FIELDS | set(metric_keys)) - set(row)
        assert row["size_bytes"] == os.path.getsize(out / row["file"]) > 0
        assert row["latency_ms_b1"] > 0 and len(row["latency_input_shape"]) == 3
    return results


def test_edge_smoke_run_reports_ods_ois_and_says_synthetic(edge_run):
    results = check_rows(edge_run, {"ods", "ois", "ap", "pixel_f1"}, ["teacher", "baseline", "kd"])
    assert results["task"] == "edge_detection" and results["metric"] == "ods"
    assert results["data"]["synthetic"] is True
    for row in results["models"]:
        # No ODS <= OIS check: on a one-epoch model's flat P/R curve, the benchmark's interpolation
        # between two of 9 thresholds can put ODS above OIS.
        assert 0.0 <= row["ods"] <= 1.0 and 0.0 <= row["ois"] <= 1.0
    teacher, student = results["models"][0], results["models"][2]
    assert student["params"] * 10 <= teacher["params"]
    md = (edge_run / "results.md").read_text()
    assert "(SYNTHETIC)" in md and "| ODS | OIS |" in md and "ODS vs baseline" in md
    assert "BSDS protocol" in md and "12 test images at 9 thresholds" in md


def test_sr_smoke_run_reports_psnr_ssim_and_bicubic(sr_run):
    results = check_rows(sr_run, {"psnr", "ssim"}, ["teacher", "baseline", "kd", "reference"])
    bicubic = results["models"][3]
    assert bicubic["name"] == "bicubic" and bicubic["params"] == 0 and bicubic["train_seconds"] is None
    assert 20 < bicubic["psnr"] < 50 and 0 < bicubic["ssim"] <= 1
    assert "| bicubic | reference |" in (sr_run / "results.md").read_text()


def test_sr_smoke_export_rows_score_psnr_under_litert(sr_run):
    results = json.loads((sr_run / "results.json").read_text())
    exported = {r["name"]: r for r in results["exported"]}
    assert set(exported) == {"teacher.fp32.tflite", "kd.fp32.tflite", "kd.int8.tflite"}
    kd = next(r for r in results["models"] if r["name"] == "kd")
    # fp32 TFLite (bicubic skip as builtin convolutions) computes what Keras computes
    assert abs(exported["kd.fp32.tflite"]["psnr"] - kd["psnr"]) < 0.01
    assert exported["kd.int8.tflite"]["parity"]["psnr_db"] >= 30
    for r in exported.values():
        assert r["input_shape"] == kd["latency_input_shape"] and r["latency_ms_median"] > 0


def write_image(path, h, w, grey=False):
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (h, w) if grey else (h, w, 3)).astype(np.uint8)).save(path)
    return path


def test_edge_predict_writes_a_png_of_the_input_size(edge_run, tmp_path, capsys):
    image = write_image(tmp_path / "photo.jpg", 37, 53)
    out = tmp_path / "edges.png"
    code, err, _ = run_cli(capsys, EDGES, "--predict", str(image), "--out", str(out), "--model",
                           str(edge_run / "kd.keras"))
    assert code == 0, err
    edges = np.asarray(Image.open(out))
    assert edges.shape == (37, 53) and edges.dtype == np.uint8
    # Refuses to overwrite, and names the fix.
    code, err, _ = run_cli(capsys, EDGES, "--predict", str(image), "--out", str(out), "--model",
                           str(edge_run / "kd.keras"))
    assert code == 2 and err == f"error: output '{out}' already exists; pass --overwrite to replace it or " \
                                f"choose another --out."


def test_sr_predict_writes_a_png_scale_times_larger(sr_run, tmp_path, capsys):
    image = write_image(tmp_path / "small.png", 21, 30, grey=True)
    out = tmp_path / "sr.png"
    code, err, _ = run_cli(capsys, SR, "--predict", str(image), "--out", str(out), "--model",
                           str(sr_run / "kd.keras"))
    assert code == 0, err
    assert np.asarray(Image.open(out)).shape == (42, 60, 3)


def test_predict_names_a_corrupt_image_and_a_missing_model(sr_run, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG broken")
    code, err, _ = run_cli(capsys, SR, "--predict", str(bad), "--out", str(tmp_path / "o.png"), "--model",
                           str(sr_run / "kd.keras"))
    assert code == 2 and f"cannot read image '{bad}'" in err and "\n" not in err
    assert not (tmp_path / "o.png").exists()
    good = write_image(tmp_path / "ok.png", 8, 8)
    code, err, _ = run_cli(capsys, SR, "--predict", str(good), "--out", str(tmp_path / "o.png"), "--model",
                           str(tmp_path / "none.keras"))
    assert code == 2 and "model file" in err and "does not exist" in err


@pytest.mark.parametrize("scale", ["5", "1"])
def test_bad_scale_is_one_line_and_writes_nothing(scale, tmp_path, capsys):
    code, err, _ = run_cli(capsys, SR, "--smoke", "--set", f"data.scale={scale}", "--out", str(tmp_path / "r"))
    assert code == 2 and err == f"error: scale must be one of 2, 3, 4, got {scale}."
    assert not (tmp_path / "r" / "results.json").exists()


def test_bsds_recipe_names_a_missing_ground_truth_map(tmp_path, capsys):
    root = make_bsds(tmp_path / "bsds")
    (root / "gt" / "train" / "train1.png").unlink()
    code, err, _ = run_cli(capsys, EDGES, "--config", str(REPO_ROOT / "recipes" / "bsds500.toml"), "--smoke",
                           "--data", str(root), "--out", str(tmp_path / "r"))
    assert code == 2 and "ground-truth map" in err and "train1.png' is missing for image" in err
    assert "\n" not in err and not (tmp_path / "r" / "results.json").exists()


def test_bsds_recipe_smoke_runs_on_a_made_folder(tmp_path, capsys):
    root = make_bsds(tmp_path / "bsds", {"train": [(40, 48), (48, 40), (20, 20)], "val": [(40, 40)],
                                          "test": [(41, 47)]})
    code, err, _ = run_cli(capsys, EDGES, "--config", str(REPO_ROOT / "recipes" / "bsds500.toml"), "--smoke",
                           "--data", str(root), "--out", str(tmp_path / "r"), "--set", "data.patch_size=32",
                           "--set", "teacher.epochs=1", "--set", "teacher.weights=")
    assert code == 0, err
    assert "skipped 1 of 3 training images smaller than the 32x32 patch" in err
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert results["data"]["synthetic"] is False and results["data"]["skipped_train_images"] == 1


SHARED = REPO_ROOT.parent / "shared" / "data"


@pytest.mark.skipif(not (SHARED / "sr" / "Set5").exists(), reason="shared SR sets not present (../shared/data/sr)")
def test_t91_recipe_smoke_on_the_shared_sets(tmp_path, capsys):
    code, err, _ = run_cli(capsys, SR, "--config", str(REPO_ROOT / "recipes" / "sr_t91.toml"), "--smoke",
                           "--data", str(SHARED / "sr"), "--out", str(tmp_path / "r"))
    assert code == 0, err
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    row = results["models"][-1]
    assert row["name"] == "bicubic" and {"psnr", "ssim", "psnr_Set14", "ssim_Set14"} <= set(row)
    assert 25 < row["psnr"] < 40  # bicubic x2 on Set5 is about 33.7 dB


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "bsds500").exists(), reason="shared BSDS500 not present (../shared/data/bsds500)")
def test_bsds500_recipe_smoke_on_the_shared_data(tmp_path, capsys):
    code, err, _ = run_cli(capsys, EDGES, "--config", str(REPO_ROOT / "recipes" / "bsds500.toml"), "--smoke",
                           "--data", str(SHARED / "bsds500"), "--out", str(tmp_path / "r"))
    assert code == 0, err
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert [m["benchmark_images"] for m in results["models"]] == [12, 12, 12]
    assert all(0 <= m["ods"] <= 1 and 0 <= m["ois"] <= 1 for m in results["models"])


def test_predict_refuses_a_model_of_another_task(edge_run, sr_run, tmp_path, capsys):
    image = write_image(tmp_path / "photo.png", 24, 24)
    out = tmp_path / "o.png"
    code, err, _ = run_cli(capsys, EDGES, "--predict", str(image), "--out", str(out), "--model",
                           str(sr_run / "kd.keras"))
    assert code == 2 and len(err.splitlines()) == 1
    assert "turns a 32x32 image into a 64x64 image (a super-resolution model), not an edge map; run python -m " \
           "kd_keras.recipes.super_resolution --predict" in err
    code, err, _ = run_cli(capsys, SR, "--predict", str(image), "--out", str(out), "--model",
                           str(edge_run / "kd.keras"))
    assert code == 2 and "into a 32x32 edge map (an edge-detection model), not a larger image" in err
    assert not out.exists()


def test_predict_reads_16_bit_and_exif_rotated_images_as_a_viewer_shows_them(edge_run, tmp_path, capsys, monkeypatch):
    from kd_keras.data import images

    monkeypatch.setattr(images, "_NOTED", set())  # the note is shown once per process; an earlier test may have seen it
    deep = tmp_path / "deep.png"
    Image.fromarray((np.arange(30 * 20).reshape(20, 30) * 100).astype(np.uint16)).save(deep)
    code, err, printed = run_cli(capsys, EDGES, "--predict", str(deep), "--out", str(tmp_path / "a.png"), "--model",
                                 str(edge_run / "kd.keras"))
    assert code == 0, err
    assert "read with 16-bit values divided by 257" in printed
    photo = Image.fromarray(np.zeros((20, 40, 3), np.uint8))
    exif = photo.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
    photo.save(tmp_path / "portrait.jpg", exif=exif)
    code, err, _ = run_cli(capsys, EDGES, "--predict", str(tmp_path / "portrait.jpg"), "--out",
                           str(tmp_path / "b.png"), "--model", str(edge_run / "kd.keras"))
    assert code == 0, err
    assert np.asarray(Image.open(tmp_path / "b.png")).shape == (40, 20)  # upright, as the EXIF says


def test_sr_predict_in_tiles_equals_the_whole_image_run(sr_run):
    from kd_keras.recipes.predict import load_trained
    from kd_keras.tasks import TASKS
    from kd_keras.tasks.super_resolution import tiled

    task = TASKS["super_resolution"]()
    model = load_trained(str(sr_run / "kd.keras"))
    image = np.random.default_rng(0).integers(0, 256, (70, 93, 3)).astype(np.uint8)
    whole = task.super_resolve(model, [image])[0]
    pieces = tiled(lambda x: task.super_resolve(model, [x])[0], image, tile=32, margin=24)  # 3 x 3 tiles
    assert pieces.shape == whole.shape == (140, 186, 3)
    np.testing.assert_allclose(pieces, whole, atol=1e-2)
    no_margin = tiled(lambda x: task.super_resolve(model, [x])[0], image, tile=32, margin=0)
    assert np.abs(no_margin - whole).max() > 0.1  # without context the seams differ: the margin is what makes it equal
    np.testing.assert_array_equal(task.predict(model, image, tile=32, margin=24), task.predict(model, image))


def test_edge_smoke_run_trains_on_the_teachers_stored_maps(edge_run):
    kd = next(m for m in json.loads((edge_run / "results.json").read_text())["models"] if m["role"] == "kd")
    assert kd["kd"]["teacher_cache"]["mode"] == "maps", kd["kd"]
    assert "cropped, flipped and rotated with them (computed in one pass of" in kd["kd"]["teacher_outputs"]


def test_an_edge_recipe_takes_a_keras_teacher_file(edge_run, tmp_path, capsys):
    """The value-range probe is a classifier's: a dense task's teacher file is loaded as it is (it crashed, issue 47)."""
    out = tmp_path / "run"
    code, err, _ = run_cli(capsys, EDGES, "--smoke", "--teacher", str(edge_run / "teacher.keras"), "--out", str(out))
    assert code == 0, err
    rows = {r["name"]: r for r in json.loads((out / "results.json").read_text())["models"]}
    assert rows["teacher"]["source"].startswith("loaded from") and 0.0 <= rows["kd"]["ods"] <= 1.0
