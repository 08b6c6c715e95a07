"""The Distiller under tf.distribute.MultiWorkerMirroredStrategy: two local worker processes.

Each worker is a real process with its own TF_CONFIG on 127.0.0.1, as on a
cluster; together they must train like one process with the same global
batch.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kd_keras.config import REPO_ROOT

SCRIPT = r"""
import json, os, sys
import tensorflow as tf
multi = bool(os.environ.get("TF_CONFIG"))
strategy = tf.distribute.MultiWorkerMirroredStrategy() if multi else tf.distribute.get_strategy()
import keras, numpy as np
sys.path.insert(0, sys.argv[1])
from conftest import tiny_classifier
from kd_keras import Distiller
from kd_keras.losses import KDLoss

rng = np.random.default_rng(0)
x = rng.uniform(0, 255, (64, 8, 8, 3)).astype("float32")
y = np.eye(3, dtype="float32")[rng.integers(0, 3, 64)]
keras.utils.set_random_seed(0)
with strategy.scope():
    teacher = tiny_classifier(name="t", filters=8, bn=False)
    student = tiny_classifier(name="s", bn=False)
    d = Distiller(student, teacher, [KDLoss(2.0)], student_loss_weight=0.5)
    d.compile(keras.optimizers.SGD(0.1), keras.losses.CategoricalCrossentropy(from_logits=True))
h = d.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(16), epochs=2, verbose=0, shuffle=False)
print("RESULT" + json.dumps({"history": h.history, "weights": [w.tolist() for w in student.get_weights()]}))
"""


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def result(stdout):
    line = next(l for l in stdout.splitlines() if l.startswith("RESULT"))
    return json.loads(line[len("RESULT"):])


def test_two_local_workers_train_like_one_process():
    tests_dir = str(Path(__file__).parent)
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    single = subprocess.run([sys.executable, "-c", SCRIPT, tests_dir], capture_output=True, text=True, env=env,
                            timeout=600)
    assert single.returncode == 0, single.stderr[-2000:]
    workers = [f"127.0.0.1:{p}" for p in free_ports(2)]
    procs = []
    for i in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}}
        procs.append(subprocess.Popen([sys.executable, "-c", SCRIPT, tests_dir], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True,
                                      env={**env, "TF_CONFIG": json.dumps(tf_config)}))
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    one = result(single.stdout)
    for out, _ in outs:
        two = result(out)
        for key in ("loss", "student_loss", "distillation_loss"):
            np.testing.assert_allclose(two["history"][key], one["history"][key], rtol=1e-4)
        for a, b in zip(two["weights"], one["weights"]):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert one["history"]["distillation_loss"][0] > 0


@pytest.mark.slow
def test_recipe_runs_on_two_local_workers(tmp_path):
    out = tmp_path / "run"
    workers = [f"127.0.0.1:{p}" for p in free_ports(2)]
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    procs = []
    for i in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}}
        cmd = [sys.executable, "-m", "kd_keras.recipes.classification", "--smoke", "--out", str(out),
               "--set", "train.strategy=\"multi_worker\""]
        procs.append(subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      env={**env, "TF_CONFIG": json.dumps(tf_config)}))
    outs = [p.communicate(timeout=1200) for p in procs]
    for p, (o, err) in zip(procs, outs):
        assert p.returncode == 0, (o + err)[-3000:]
    results = json.loads((out / "results.json").read_text())  # the chief (worker 0) writes the run's results
    assert results["config"]["train"]["strategy"] == "multi_worker"
    assert [m["role"] for m in results["models"]] == ["teacher", "baseline", "kd"]
    assert (out / ".worker1" / "results.json").exists()  # the other worker writes aside, never over the chief
