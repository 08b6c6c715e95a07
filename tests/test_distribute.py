"""The Distiller under tf.distribute.MirroredStrategy matches one device; the recipes under a strategy.

Logical CPU devices must be configured before TensorFlow initialises, so
the check runs in a fresh process.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

SCRIPT = str(Path(__file__).parent / "distributed_kd.py")


def result(stdout):
    line = next(l for l in stdout.splitlines() if l.startswith("RESULT"))
    return json.loads(line[len("RESULT"):])


def assert_same_training(a, b):
    """Two runs' losses and final weights agree within float tolerance."""
    for key in ("loss", "student_loss", "distillation_loss"):
        np.testing.assert_allclose(a["history"][key], b["history"][key], rtol=1e-4)
    assert a["history"]["distillation_loss"][0] > 0
    for wa, wb in zip(a["weights"], b["weights"]):
        np.testing.assert_allclose(wa, wb, rtol=1e-4, atol=1e-5)


def test_mirrored_strategy_matches_single_device():
    proc = subprocess.run([sys.executable, SCRIPT, "mirrored"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = result(proc.stdout)
    assert_same_training(data["one"], data["two"])


def test_recipe_trains_under_mirrored_strategy(tmp_path, capsys):
    from test_recipe import run_cli

    out = tmp_path / "run"
    code, err = run_cli(capsys, "--smoke", "--set", "train.strategy=\"mirrored\"", "--out", str(out))
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["train"]["strategy"] == "mirrored"
    assert [m["role"] for m in results["models"]] == ["teacher", "baseline", "kd"]


def test_multi_worker_without_tf_config_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    from test_recipe import run_cli

    monkeypatch.delenv("TF_CONFIG", raising=False)
    code, err = run_cli(capsys, "--smoke", "--set", "train.strategy=\"multi_worker\"", "--out", str(tmp_path / "r"))
    assert code == 2 and "needs the TF_CONFIG environment variable" in err and len(err.splitlines()) == 1
