"""Export: every format and quantisation mode, run under its runtime, with parity; and every bad input."""

import os
from unittest import mock

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import train_digits_classifier

from kd_keras.export import converters, export_model, parity
from kd_keras.export.__main__ import main
from kd_keras.models import create_model
from kd_keras.models.layers import bicubic_upscale
from kd_keras.models.runtimes import open_runtime


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "digits.keras"
    return str(path), train_digits_classifier(path)


def cli(capsys, *argv):
    code = main(list(argv))
    return code, capsys.readouterr().err.strip()


@pytest.mark.parametrize("quantize", ["none", "fp16", "dynamic", "int8"])
def test_tflite_export_runs_under_litert_with_parity(digits_model, tmp_path, quantize):
    path, x = digits_model
    out = str(tmp_path / f"m_{quantize}.tflite")
    info = export_model(path, "tflite", out, quantize, calibration="digits" if quantize == "int8" else None,
                        log=lambda *_: None)
    assert os.path.getsize(out) == info["size_bytes"] > 0
    assert info["parity_samples"] == 200 and info["task"] == "classification"
    assert not parity.check("classification", quantize, info["parity"])
    assert info["parity"]["top1_agreement"] >= parity.THRESHOLDS["classification"][parity.precision(quantize)][
        "top1_agreement"]
    runtime = open_runtime(out, threads=2)
    assert runtime.engine.startswith("LiteRT, 2 threads, XNNPACK")
    reference = keras.models.load_model(path)(x).numpy()
    got = runtime(x)
    assert got.shape == reference.shape
    agreement = np.mean(got.argmax(-1) == reference.argmax(-1))
    assert agreement >= 0.95
    if quantize == "none":
        np.testing.assert_allclose(got, reference, atol=1e-4)
    if quantize == "int8":
        assert info["calibration_samples"] == 200
    dtypes = {np.dtype(t["dtype"]).name for t in runtime.interpreter.get_tensor_details()}
    if quantize in ("int8", "dynamic"):
        assert "int8" in dtypes  # int8 weights (and activations, for int8)
    if quantize == "fp16":
        assert "float16" in dtypes
    if quantize == "none":
        assert dtypes <= {"float32", "int32"}


def test_int8_with_integer_input_and_output(digits_model, tmp_path):
    path, x = digits_model
    out = str(tmp_path / "u8.tflite")
    info = export_model(path, "tflite", out, "int8", calibration="digits", io_type="uint8", log=lambda *_: None)
    runtime = open_runtime(out)
    assert runtime.input_dtype == "uint8"
    assert info["parity"]["top1_agreement"] >= 0.98
    assert runtime(x).dtype == np.float32  # dequantised by the runtime


@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_onnx_round_trip(digits_model, tmp_path, quantize):
    path, x = digits_model
    out = str(tmp_path / "m.onnx")
    info = export_model(path, "onnx", out, quantize, calibration="digits", log=lambda *_: None)
    runtime = open_runtime(out, threads=1)
    assert "CPUExecutionProvider" in runtime.engine
    reference = keras.models.load_model(path)(x).numpy()
    if quantize == "none":
        np.testing.assert_allclose(runtime(x), reference, atol=1e-4)
        assert info["parity"]["max_abs_diff"] < 1e-4
    else:
        assert info["parity"]["top1_agreement"] >= 0.98


def test_saved_model_export_serves_the_same_outputs(digits_model, tmp_path):
    path, x = digits_model
    out = str(tmp_path / "served")
    export_model(path, "saved_model", out, log=lambda *_: None)
    assert os.path.exists(os.path.join(out, "saved_model.pb"))
    np.testing.assert_allclose(open_runtime(out)(x), keras.models.load_model(path)(x).numpy(), atol=1e-5)


@pytest.mark.parametrize("name,options,source", [
    ("fsrcnn", {"scale": 2, "d": 8, "s": 4, "m": 1}, "skimage"),
    ("edge_unet", {"widths": (4, 8)}, "shapes"),
])
@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_dense_models_export_with_parity(tmp_path, name, options, source, quantize):
    keras.utils.set_random_seed(0)
    model = create_model(name, **options)
    info = export_model(model, "tflite", str(tmp_path / "m.tflite"), quantize, calibration=source,
                        calibration_samples=16, parity_samples=3, log=lambda *_: None)
    assert not parity.check(info["task"], quantize, info["parity"])
    runtime = open_runtime(str(tmp_path / "m.tflite"))
    image = np.random.default_rng(0).uniform(0, 255, (1, 13, 17, 3)).astype("float32")
    expected = (1, 26, 34, 3) if name == "fsrcnn" else (1, 13, 17, 1)
    assert runtime(image).shape == expected  # any input size


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_as_convolution_equals_tf_resize(scale):
    x = tf.constant(np.random.default_rng(scale).uniform(0, 255, (2, 7, 5, 3)).astype("float32"))
    expected = tf.image.resize(x, (7 * scale, 5 * scale), method="bicubic")
    np.testing.assert_allclose(bicubic_upscale(x, scale), expected, atol=2e-3)


def test_tftrt_without_tensorrt_names_the_onnx_route(digits_model, tmp_path, capsys):
    if converters.linked_tensorrt_version() != (0, 0, 0):
        pytest.skip("this TensorFlow is linked with TensorRT")
    out = tmp_path / "trt"
    code, err = cli(capsys, digits_model[0], "--format", "tftrt", "--out", str(out))
    assert code == 2 and len(err.splitlines()) == 1
    assert "not linked with TensorRT" in err and "(0, 0, 0)" in err and "--format onnx" in err
    assert not out.exists()


def test_tftrt_with_tensorrt_detected_runs_the_converter(digits_model, tmp_path, capsys):
    """Only the detection is mocked: the real TF-TRT converter then runs (and fails here, without TensorRT)."""
    out = tmp_path / "trt"
    with mock.patch.object(converters, "linked_tensorrt_version", return_value=(10, 3, 0)):
        code, err = cli(capsys, digits_model[0], "--format", "tftrt", "--out", str(out))
    if code == 0:  # a machine with TensorRT
        assert (out / "saved_model.pb").exists()
        return
    assert code == 2 and len(err.splitlines()) == 1
    assert "TF-TRT conversion failed (TensorRT 10.3.0)" in err and "--format onnx" in err
    assert not out.exists() and not (tmp_path / "trt.partial").exists()


@keras.saving.register_keras_serializable(package="kd_keras_tests")
class IncompleteGamma(keras.layers.Layer):
    """Uses tf.math.igamma, which neither TFLite builtins nor ONNX have."""

    def call(self, x):
        return tf.math.igamma(x * x + 1.0, x * x + 1.0)


@pytest.fixture
def unconvertible(tmp_path):
    inputs = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = IncompleteGamma(name="odd_layer")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    path = tmp_path / "odd.keras"
    keras.Model(inputs, keras.layers.Dense(10)(x), name="odd").save(path)
    return str(path)


def _bad_cases(tmp_path, digits_model, unconvertible):
    model = digits_model[0]
    existing = tmp_path / "there.tflite"
    existing.write_bytes(b"keep me")
    garbage = tmp_path / "garbage.keras"
    garbage.write_text("not a model")
    return {
        "unknown format": ([model, "--format", "coreml", "--out", str(tmp_path / "m")],
                           "argument --format: invalid choice: 'coreml'"),
        "int8 without calibration": ([model, "--format", "tflite", "--quantize", "int8", "--out",
                                      str(tmp_path / "m.tflite")], "int8 quantisation needs calibration data"),
        "model does not load": ([str(garbage), "--format", "tflite", "--out", str(tmp_path / "m.tflite")],
                                f"model file {str(garbage)!r} is corrupt: not a zip archive"),
        "missing model": ([str(tmp_path / "nope.keras"), "--format", "tflite", "--out", str(tmp_path / "m.tflite")],
                          "does not exist"),
        "output exists": ([model, "--format", "tflite", "--out", str(existing)],
                          f"output {str(existing)!r} already exists; pass --overwrite"),
        "unconvertible op": ([unconvertible, "--format", "tflite", "--out", str(tmp_path / "m.tflite")],
                             "op tf.Igamma in layer 'odd_layer' is not supported by the tflite converter"),
        "unconvertible op, onnx": ([unconvertible, "--format", "onnx", "--out", str(tmp_path / "m.onnx")],
                                   "op tf.Igamma in layer 'odd_layer' is not supported by the onnx converter"),
        "unknown quantisation": ([model, "--format", "tflite", "--quantize", "int4", "--out",
                                  str(tmp_path / "m.tflite")], "argument --quantize: invalid choice: 'int4'"),
        "bad data spec": ([model, "--format", "tflite", "--calibration", "shapes", "--out",
                           str(tmp_path / "m.tflite")], "unknown data source 'shapes'"),
        "data of another shape": ([model, "--format", "tflite", "--calibration", "npz:" + str(tmp_path / "c.npz"),
                                   "--out", str(tmp_path / "m.tflite")],
                                  "gives 32x32x3 inputs but the model takes 8x8x1"),
    }


CASES = ["unknown format", "int8 without calibration", "model does not load", "missing model", "output exists",
         "unconvertible op", "unconvertible op, onnx", "unknown quantisation", "bad data spec", "data of another shape"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gets_one_line_and_writes_nothing(case, tmp_path, capsys, digits_model, unconvertible):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "c.npz", x_train=rng.integers(0, 255, (20, 32, 32, 3), dtype=np.uint8),
             y_train=np.arange(20) % 10, x_test=rng.integers(0, 255, (10, 32, 32, 3), dtype=np.uint8),
             y_test=np.arange(10))
    argv, message = _bad_cases(tmp_path, digits_model, unconvertible)[case]
    before = sorted(os.listdir(tmp_path))
    code, err = cli(capsys, *argv)
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err
    assert message in err
    assert sorted(os.listdir(tmp_path)) == before  # nothing written, nothing half-written
    assert (tmp_path / "there.tflite").read_bytes() == b"keep me"


def test_failed_parity_writes_nothing(digits_model, tmp_path, capsys, monkeypatch):
    impossible = {**parity.THRESHOLDS["classification"], "int8": {"top1_agreement": 1.01}}
    monkeypatch.setitem(parity.THRESHOLDS, "classification", impossible)
    out = tmp_path / "m.tflite"
    code, err = cli(capsys, digits_model[0], "--format", "tflite", "--quantize", "int8", "--calibration", "digits",
                    "--out", str(out))
    assert code == 2 and "parity check failed for tflite int8 on 200 test samples" in err
    assert "top1_agreement" in err and "< 1.01" in err
    assert os.listdir(tmp_path) == []


def test_overwrite_replaces_an_export(digits_model, tmp_path, capsys):
    out = tmp_path / "m.tflite"
    code, err = cli(capsys, digits_model[0], "--format", "tflite", "--out", str(out))
    assert code == 0, err
    first = out.read_bytes()
    code, err = cli(capsys, digits_model[0], "--format", "tflite", "--quantize", "fp16", "--out", str(out),
                    "--overwrite")
    assert code == 0, err
    assert out.read_bytes()[4:8] == b"TFL3" and out.read_bytes() != first  # replaced by the fp16 flatbuffer
    assert sorted(os.listdir(tmp_path)) == ["m.tflite"]


@pytest.mark.parametrize("fmt, name, make", [
    ("tflite", "notes.tflite", "folder"), ("tflite", "photo.tflite", "file"),
    ("saved_model", "thesis", "folder"), ("saved_model", "report.txt.d", "file")])
def test_overwrite_never_replaces_what_the_exporter_did_not_write(digits_model, tmp_path, capsys, fmt, name, make):
    target = tmp_path / name
    if make == "folder":
        target.mkdir()
        (target / "chapter1.md").write_text("the user's work")
    else:
        target.write_bytes(b"\x89PNG the user's file")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    code, err = cli(capsys, digits_model[0], "--format", fmt, "--out", str(target), "--overwrite")
    assert code == 2 and len(err.splitlines()) == 1
    assert f"--out {str(target)!r} exists and " in err and "so --overwrite will not replace it" in err
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_export_process_prints_no_traceback(tmp_path):
    import subprocess
    import sys

    from kd_keras.config import REPO_ROOT

    proc = subprocess.run([sys.executable, "-m", "kd_keras.export", str(tmp_path / "none.keras"), "--format", "tflite",
                           "--quantize", "int8", "--out", str(tmp_path / "m.tflite")],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: int8 quantisation needs calibration data")
