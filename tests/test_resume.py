"""A recipe run killed with SIGKILL resumes when the same command runs again."""

import json
import os
import signal
import subprocess
import sys
import time

from kd_keras.cli.manifest import Manifest
from kd_keras.config import REPO_ROOT


def command(out):
    return [sys.executable, "-m", "kd_keras.recipes.classification", "--config", "digits", "--out", str(out),
            "--set", "teacher.epochs=1", "--set", "train.epochs=12", "--set", "data.limit=0",
            "--set", "report.latency_runs=20", "--set", "report.rounds=1", "--set", "report.throughput_batch=8"]


def saved_epoch(path):
    try:
        with open(path) as f:
            return json.load(f)["epoch"]
    except (OSError, ValueError):
        return 0


def test_sigkilled_run_resumes_with_the_same_command(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen(command(out), cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    metadata = out / ".backup" / "baseline" / "training_metadata.json"
    deadline = time.time() + 600
    while saved_epoch(metadata) < 3 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed:\n" + proc.stdout.read().decode()[-2000:]
    killed_after = saved_epoch(metadata)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 3 <= killed_after < 12 and not (out / "results.json").exists()
    assert (out / "teacher.keras").exists() and not (out / "baseline.keras").exists()

    again = subprocess.run(command(out), cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    log = again.stdout
    assert f"resuming an interrupted run in {out}: teacher already finished" in log
    assert "== [1/4] teacher: finished by an earlier run of this command; loaded from teacher.keras" in log
    assert "== training teacher" not in log
    resumed = int(log.split("resuming baseline from its backup after epoch ")[1].split()[0])
    assert resumed >= killed_after
    # the baseline ended with the planned 12 epochs: its CSV log runs to epoch index 11, and the resumed
    # part starts where the backup stopped
    rows = [line.split(",")[0] for line in (out / "logs" / "baseline.csv").read_text().splitlines()]
    epochs = [int(e) for e in rows if e != "epoch"]
    assert epochs[-1] == 11 and epochs.count(11) == 1 and resumed in epochs
    assert sorted(set(epochs)) == list(range(12))
    results = json.loads((out / "results.json").read_text())
    assert [m["name"] for m in results["models"]] == ["teacher", "baseline", "kd"]
    leftovers = [f for f in os.listdir(out) if "partial" in f or f.startswith(".") and f != ".kd_keras_run.json"]
    assert leftovers == []


def test_an_interrupted_run_of_another_config_is_refused(tmp_path, capsys):
    from test_recipe import run_cli

    out = tmp_path / "run"
    (out / ".progress").mkdir(parents=True)
    (out / ".progress" / "config.json").write_text(json.dumps({"name": "another recipe"}))
    Manifest(str(out)).claim([".progress/"])  # as an interrupted kd_keras run leaves it
    code, err = run_cli(capsys, "--smoke", "--out", str(out))
    assert code == 2 and len(err.splitlines()) == 1
    assert "holds an interrupted run of another config (it differs in " in err and "finished: nothing yet" in err
    assert "to discard it, pass --overwrite; to keep it, choose another --out." in err
    assert sorted(os.listdir(out)) == [".kd_keras_run.json", ".progress"]  # nothing was trained or written


def test_a_user_error_leaves_no_interrupted_run_and_the_fixed_command_proceeds(tmp_path, capsys):
    from test_recipe import run_cli

    out = tmp_path / "run"
    code, err = run_cli(capsys, "--smoke", "--set", 'data.source="npz"', "--data", str(tmp_path / "missing.npz"),
                        "--out", str(out))
    assert code == 2 and "does not exist" in err
    assert not out.exists()  # the folder this run made is gone, with no .progress in it
    keep = tmp_path / "kept"
    (keep / "notes").mkdir(parents=True)
    (keep / "notes" / "mine.txt").write_text("the user's")
    code, err = run_cli(capsys, "--smoke", "--set", "student.options={ nope = 1 }", "--out", str(keep))
    assert code == 2 and "holds 1 file(s) that kd_keras did not write there (notes/mine.txt;" in err  # not its own
    assert sorted(p.name for p in keep.rglob("*")) == ["mine.txt", "notes"]  # an existing folder keeps its files
    code, err = run_cli(capsys, "--smoke", "--out", str(out))  # the corrected command
    assert code == 0, err
    assert (out / "results.json").exists() and not (out / ".progress").exists()


def test_a_bad_student_option_fails_before_the_teacher_trains(tmp_path, capsys):
    from test_recipe import run_cli

    out = tmp_path / "run"
    code, err = run_cli(capsys, "--smoke", "--set", "student.options={ widths = [4, 8, -1] }", "--out", str(out))
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith("error: student: 'small_cnn' with options {'widths': [4, 8, -1]} cannot be built: ")
    assert err.endswith("; fix student.options.")
    assert not out.exists()  # nothing trained, nothing written


def test_a_second_run_cannot_write_a_folder_another_run_holds_and_a_stale_lock_is_taken_over(tmp_path, capsys):
    import socket
    import subprocess
    import sys

    from test_recipe import run_cli

    out = tmp_path / "run"
    out.mkdir()
    (out / ".lock").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))  # a live run
    code, err = run_cli(capsys, "--smoke", "--out", str(out))
    assert code == 2 and len(err.splitlines()) == 1
    assert f"another run (pid {os.getpid()} on {socket.gethostname()}) is writing {str(out)!r}" in err
    assert sorted(p.name for p in out.iterdir()) == [".lock"]  # the other run's folder is untouched
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True).stdout.strip()
    (out / ".lock").write_text(json.dumps({"pid": int(dead), "host": socket.gethostname()}))  # a killed run's
    code, err = run_cli(capsys, "--smoke", "--out", str(out))
    assert code == 0, err
    assert (out / "results.json").exists() and not (out / ".lock").exists()
