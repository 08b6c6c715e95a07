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

import pytest
from test_distribute import SCRIPT, assert_same_training, result

from kd_keras.config import REPO_ROOT


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_two_local_workers_train_like_one_process():
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    single = subprocess.run([sys.executable, SCRIPT, "worker"], capture_output=True, text=True, env=env, timeout=600)
    assert single.returncode == 0, single.stderr[-2000:]
    workers = [f"127.0.0.1:{p}" for p in free_ports(2)]
    procs = []
    for i in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}}
        procs.append(subprocess.Popen([sys.executable, SCRIPT, "worker"], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True,
                                      env={**env, "TF_CONFIG": json.dumps(tf_config)}))
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    for out, _ in outs:
        assert_same_training(result(out)["run"], result(single.stdout)["run"])


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
