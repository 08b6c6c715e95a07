"""The benchmark (JSON fields, markdown, plot, separate-process memory) and the recipe's --export rows."""

import json

import pytest
from conftest import train_digits_classifier

from kd_keras.benchmark.__main__ import main
from kd_keras.config import REPO_ROOT
from kd_keras.export import export_model
from kd_keras.recipes.cli import main as recipe_main
from kd_keras.cli.manifest import Manifest

ROW_FIELDS = {"name", "file", "format", "size_bytes", "accuracy", "latency_ms_median", "latency_ms_p90",
              "latency_runs", "throughput", "throughput_batch", "peak_rss_mb", "idle_rss_mb", "threads", "engine",
              "input_shape"}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench")
    train_digits_classifier(folder / "m.keras", epochs=4)
    export_model(str(folder / "m.keras"), "tflite", str(folder / "m.tflite"), log=lambda *_: None)
    return folder


def test_benchmark_writes_json_markdown_and_plot(models, tmp_path, capsys):
    out = tmp_path / "bench"
    code = main([str(models / "m.keras"), str(models / "m.tflite"), "--data", "digits", "--out", str(out),
                 "--runs", "60", "--batch", "8"])
    assert code == 0, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    assert results["task"] == "classification" and results["metric"] == "accuracy" and results["threads"] == 2
    assert results["data"]["num_test"] == 360
    rows = {r["name"]: r for r in results["models"]}
    assert set(rows) == {"m.keras", "m.tflite"}
    for r in rows.values():
        assert ROW_FIELDS <= set(r), ROW_FIELDS - set(r)
        assert r["latency_runs"] == 60 and r["throughput_batch"] == 8 and r["input_shape"] == [8, 8, 1]
        assert 0 < r["latency_ms_median"] <= r["latency_ms_p90"] and r["throughput"] > 0
        assert 0 < r["idle_rss_mb"] <= r["peak_rss_mb"]
        assert 0.5 < r["accuracy"] <= 1.0
    assert rows["m.tflite"]["engine"] == "LiteRT, 2 threads, XNNPACK"
    # fp32 export: the same predictions, so the same accuracy
    assert abs(rows["m.tflite"]["accuracy"] - rows["m.keras"]["accuracy"]) <= 1 / 360
    # the LiteRT process holds LiteRT only, not TensorFlow
    assert rows["m.tflite"]["peak_rss_mb"] < rows["m.keras"]["peak_rss_mb"] / 2
    png = (out / "results.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    md = (out / "results.md").read_text()
    assert "| m.tflite | tflite |" in md and "2 threads" in md and "peak RSS" in md


@pytest.mark.parametrize("argv,message", [
    (["--runs", "10"], "--runs must be >= 50"),
    (["--data", "bsds:/nowhere"], "unknown data source 'bsds'"),
])
def test_benchmark_bad_input(models, tmp_path, capsys, argv, message):
    base = [str(models / "m.tflite"), "--data", "digits", "--out", str(tmp_path)]
    code = main(base + argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err


def test_onnx_gpu_provider_missing_is_one_line(models, tmp_path, capsys):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this ONNX Runtime has CUDA")
    export_model(str(models / "m.keras"), "onnx", str(tmp_path / "m.onnx"), log=lambda *_: None)
    code = main([str(tmp_path / "m.onnx"), "--data", "digits", "--out", str(tmp_path / "o"),
                 "--providers", "CUDAExecutionProvider"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "ONNX Runtime here has no CUDAExecutionProvider" in err and "onnxruntime-gpu" in err


def test_benchmark_refuses_existing_results(models, tmp_path, capsys):
    (tmp_path / "results.json").write_text("{}")
    Manifest(str(tmp_path)).claim(["results.json"])  # an earlier kd_keras run's results
    code = main([str(models / "m.tflite"), "--data", "digits", "--out", str(tmp_path)])
    assert code == 2 and "already holds results (results.json); pass --overwrite" in capsys.readouterr().err
    assert (tmp_path / "results.json").read_text() == "{}"


def test_benchmark_without_xnnpack_says_so(models, tmp_path, capsys):
    out = tmp_path / "b"
    assert main([str(models / "m.tflite"), "--data", "digits", "--out", str(out), "--no-xnnpack",
                 "--threads", "1"]) == 0, capsys.readouterr().err
    row = json.loads((out / "results.json").read_text())["models"][0]
    assert row["engine"] == "LiteRT, 1 thread, reference kernels" and row["threads"] == 1


def test_benchmark_missing_unknown_or_broken_model(tmp_path, capsys):
    (tmp_path / "model.pt").write_text("x")
    (tmp_path / "broken.tflite").write_bytes(b"not a flatbuffer")
    assert main([str(tmp_path / "broken.tflite"), "--data", "digits", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"cannot load TFLite model {str(tmp_path / 'broken.tflite')!r}" in err
    assert main([str(tmp_path / "none.tflite"), "--data", "digits", "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main([str(tmp_path / "model.pt"), "--data", "digits", "--out", str(tmp_path / "o")]) == 2
    assert "cannot tell the format" in capsys.readouterr().err


def test_recipe_export_adds_measured_rows(tmp_path, capsys):
    out = tmp_path / "run"
    code = recipe_main("classification", str(REPO_ROOT / "recipes" / "digits.toml"),
                       ["--smoke", "--export", "--set", "train.epochs=8", "--set", "data.limit=1024",
                        "--set", "student.options={widths=[16, 32, 64]}",
                        "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    exported = {r["name"]: r for r in results["exported"]}
    assert set(exported) == {"teacher.fp32.tflite", "kd.fp32.tflite", "kd.int8.tflite"}
    keras_kd = next(r for r in results["models"] if r["name"] == "kd")
    for name, r in exported.items():
        assert "error" not in r, r["error"]
        assert (out / name).stat().st_size == r["size_bytes"] > 0
        assert r["latency_runs"] >= 50 and r["threads"] == 2 and r["peak_rss_mb"] > 0
        assert r["parity"]["top1_agreement"] >= 0.98
    assert abs(exported["kd.fp32.tflite"]["accuracy"] - keras_kd["accuracy"]) <= 1 / results["data"]["num_test"]
    assert exported["kd.int8.tflite"]["size_bytes"] < exported["teacher.fp32.tflite"]["size_bytes"]
    md = (out / "results.md").read_text()
    assert "## Exported (TFLite under LiteRT, XNNPACK, 2 threads)" in md
    assert "- kd.int8.tflite: " in md and "smaller than teacher.fp32.tflite" in md


def test_benchmark_out_that_is_a_file_is_refused_before_measuring(models, tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("the user's")
    code = main([str(models / "m.tflite"), "--data", "digits", "--out", str(notes)])
    captured = capsys.readouterr()
    assert code == 2 and f"--out {str(notes)!r} is a file, not a folder" in captured.err
    assert "latency" not in captured.out  # nothing was measured
    assert notes.read_text() == "the user's"
