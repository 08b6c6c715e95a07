"""The Distiller under tf.distribute.MirroredStrategy matches one device.

Logical CPU devices must be configured before TensorFlow initialises, so
the check runs in a fresh process.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

SCRIPT = r"""
import json, os, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, numpy as np
sys.path.insert(0, sys.argv[1])
from conftest import tiny_classifier
from kd_keras import Distiller
from kd_keras.losses import KDLoss

rng = np.random.default_rng(0)
x = rng.uniform(0, 255, (64, 8, 8, 3)).astype("float32")
y = np.eye(3, dtype="float32")[rng.integers(0, 3, 64)]

def run(strategy):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        teacher = tiny_classifier(name="t", filters=8, bn=False)
        student = tiny_classifier(name="s", bn=False)
        d = Distiller(student, teacher, [KDLoss(2.0)], student_loss_weight=0.5)
        d.compile(keras.optimizers.SGD(0.1), keras.losses.CategoricalCrossentropy(from_logits=True))
    h = d.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(16), epochs=2, verbose=0, shuffle=False)
    return h.history, [w.tolist() for w in student.get_weights()]

one = run(tf.distribute.get_strategy())
two = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
print("RESULT" + json.dumps({"one": one, "two": two}))
"""


def test_mirrored_strategy_matches_single_device():
    tests_dir = str(Path(__file__).parent)
    proc = subprocess.run([sys.executable, "-c", SCRIPT, tests_dir], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT"))
    data = json.loads(line[len("RESULT"):])
    (h1, w1), (h2, w2) = data["one"], data["two"]
    for key in ("loss", "student_loss", "distillation_loss"):
        np.testing.assert_allclose(h1[key], h2[key], rtol=1e-4)
    assert h1["distillation_loss"][0] > 0
    for a, b in zip(w1, w2):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


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
