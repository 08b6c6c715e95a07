"""Mixed precision (float16, bfloat16) and XLA compilation: numerically sane on the CPU."""

import json

import keras
import numpy as np
import pytest
from conftest import tiny_classifier

from kd_keras import Distiller
from kd_keras.losses import FitNetsLoss, KDLoss

CE = keras.losses.CategoricalCrossentropy(from_logits=True)


def train(x, y, policy="float32", jit_compile=False, epochs=3):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        keras.utils.set_random_seed(1)
        teacher = tiny_classifier(name="teacher", filters=8)
        student = tiny_classifier(name="student")
        d = Distiller(teacher, student, [KDLoss(3.0), FitNetsLoss("feat", "feat")], loss_weights=[1.0, 0.5])
        d.compile(keras.optimizers.SGD(0.05), CE, jit_compile=jit_compile)
        history = d.fit(x, y, batch_size=16, epochs=epochs, shuffle=False, verbose=0).history
        info = {"output": keras.backend.standardize_dtype(student(x[:2]).dtype),
                "loss": keras.backend.standardize_dtype(d.compute_loss(x[:4], y[:4]).dtype),
                "variables": sorted({keras.backend.standardize_dtype(v.dtype) for v in student.weights}),
                "optimizer": type(d.optimizer).__name__}
        return history, student.get_weights(), info
    finally:
        keras.config.set_dtype_policy(previous)


@pytest.mark.parametrize("policy,compute,rtol", [("mixed_float16", "float16", 1e-2), ("mixed_bfloat16", "bfloat16",
                                                                                          5e-2)])
def test_mixed_precision_trains_like_float32(toy_data, policy, compute, rtol):
    x, y = toy_data
    h32, w32, _ = train(x, y)
    h, w, info = train(x, y, policy)
    assert info["output"] == compute  # the student computes in low precision ...
    assert info["loss"] == "float32" and info["variables"] == ["float32"]  # ... its losses and weights stay float32
    if policy == "mixed_float16":
        assert info["optimizer"] == "LossScaleOptimizer"  # float16 gradients are loss-scaled
    for key in ("loss", "student_loss", "distillation_loss"):
        assert np.all(np.isfinite(h[key]))
        np.testing.assert_allclose(h[key], h32[key], rtol=rtol)
    assert h["loss"][-1] < h["loss"][0]  # it still learns
    for a, b in zip(w, w32):
        np.testing.assert_allclose(a, b, atol=5e-2)


def test_xla_compiled_step_matches_the_plain_one(toy_data):
    x, y = toy_data
    h0, w0, _ = train(x, y, jit_compile=False)
    h1, w1, _ = train(x, y, jit_compile=True)
    for key in ("loss", "student_loss", "distillation_loss"):
        np.testing.assert_allclose(h1[key], h0[key], rtol=1e-4)
    for a, b in zip(w1, w0):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.slow  # 50-90 s; the default suite checks bfloat16 training and the XLA step above, on a toy model
def test_recipe_runs_in_bfloat16_with_xla_and_restores_the_policy(tmp_path, capsys):
    from test_recipe import run_cli

    out = tmp_path / "run"
    code, err = run_cli(capsys, "--smoke", "--set", "train.precision=\"mixed_bfloat16\"",
                        "--set", "train.jit_compile=true", "--out", str(out))
    assert code == 0, err
    assert keras.config.dtype_policy().name == "float32"
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["train"]["precision"] == "mixed_bfloat16"
    for row in results["models"]:
        assert 0.0 <= row["accuracy"] <= 1.0
    # trained in bfloat16, saved in float32 (what a device runs), with the trained weights
    student = keras.saving.load_model(out / "kd.keras", compile=False)
    assert {layer.dtype_policy.name for layer in student.layers} == {"float32"}
    assert np.all(np.isfinite(student.predict(np.zeros((2, 8, 8, 1), "float32"), verbose=0)))


def test_a_mixed_precision_model_is_copied_to_float32_with_its_weights(toy_data):
    from kd_keras.training.precision import as_float32, is_float32

    x, _ = toy_data
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = tiny_classifier(name="m")
    finally:
        keras.config.set_dtype_policy(previous)
    assert not is_float32(model)
    copy = as_float32(model)
    assert is_float32(copy) and keras.backend.standardize_dtype(copy(x).dtype) == "float32"
    for a, b in zip(copy.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(copy(x), np.asarray(model(x), "float32"), rtol=5e-2, atol=5e-2)
    assert as_float32(copy) is copy


@pytest.mark.parametrize("key,value,message", [
    ("train.precision", "\"float8\"",
     "train.precision must be one of float32, mixed_float16, mixed_bfloat16, got 'float8'"),
    ("train.jit_compile", "\"yes\"", "train.jit_compile must be true, false or \"auto\", got 'yes'"),
    ("train.strategy", "\"tpu\"", "train.strategy must be one of default, mirrored, multi_worker, got 'tpu'"),
])
def test_bad_speed_options_are_one_line_errors(tmp_path, capsys, key, value, message):
    from test_recipe import run_cli

    code, err = run_cli(capsys, "--smoke", "--set", f"{key}={value}", "--out", str(tmp_path / "r"))
    assert code == 2 and message in err and len(err.splitlines()) == 1


def test_export_of_a_mixed_precision_file_converts_in_float32(tmp_path):
    from kd_keras.export import export_model
    from kd_keras.models import create_model

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        keras.utils.set_random_seed(0)
        create_model("small_cnn", 10, (8, 8, 1), widths=(8, 16)).save(tmp_path / "bf16.keras")
    finally:
        keras.config.set_dtype_policy(previous)
    out = tmp_path / "bf16.tflite"
    export_model(str(tmp_path / "bf16.keras"), "tflite", str(out), "none", calibration="digits")
    assert out.stat().st_size > 0  # the bfloat16 graph itself has ops TFLite refuses
