"""benchmarks/kd_methods.py: a one-seed, one-epoch smoke run on digits, its resume, and its bad input."""

import json

import pytest
from conftest import load_benchmark


def load_bench():
    return load_benchmark("kd_methods")


@pytest.mark.slow  # a lab benchmark (its figures are committed under recipes/results/), ~33 s; bad input below
def test_methods_benchmark_smoke_run_on_digits(tmp_path, capsys):
    bench = load_bench()
    out = tmp_path / "b"
    args = ["--seeds", "0", "--epochs", "1", "--methods", "kd", "kd:temperature=2", "dist", "fm",
            "--set", "teacher.epochs=1", "--set", "data.limit=200", "--set", "train.teacher_views=2",
            "--out", str(out)]
    assert bench.main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["methods"]) == {"baseline", "kd", "kd@temperature2", "dist", "fm"}
    assert summary["chosen_on_val"] in summary["methods"]
    for m in summary["methods"].values():
        assert 0 <= m["test_mean"] <= 100 and m["epoch_ratio"] > 0 and m["val_mean"] is not None
    results = json.loads((out / "seed0" / "results.json").read_text())
    rows = {r["name"]: r for r in results["models"]}
    fm = rows["fm"]["kd"]
    assert fm["student_loss_weight"] == 0.0 and fm["epochs"] == 3 and fm["augment"] == {"mixup_alpha": 1.0}
    assert "mixup" in fm["teacher_outputs"]  # the teacher saw the same mixed images, from stored views
    assert rows["kd@temperature2"]["kd"]["losses"][0]["options"]["temperature"] == 2
    table = (out / "table.md").read_text()
    assert "| baseline |" in table and "(best on val)" in table and "gap recovered" in table

    assert bench.main(args) == 0  # again: the finished seed is read, nothing is trained
    assert "seed 0: finished earlier" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--methods", "kd", "mlkdd"], "unknown method 'mlkdd' in --methods; choose from kd, kd_std, dkd"),
    (["--methods", "kd:temperature"], "method 'kd:temperature': expected key=value after ':'"),
    (["--methods", "kd:weight=-1"], "distill.0.losses.0.weight must be >= 0, got -1.0"),
    (["--methods", "dkd:warmup_epochs=40"], "distill.0.warmup_epochs = 40 is not shorter than the student's 30"),
    (["--teacher", "/no/teacher.keras"], "--teacher '/no/teacher.keras' does not exist"),
])
def test_methods_benchmark_bad_input_is_one_line(argv, message, tmp_path, capsys):
    code = load_bench().main([*argv, "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "b").exists()


@pytest.mark.slow  # a lab benchmark with a subprocess killed mid-schedule, ~60 s
def test_a_long_schedule_preset_runs_resumes_after_a_kill_and_writes_its_json(tmp_path, capsys):
    """fm10 (function matching over 10x the epochs) on a tiny digits run, killed (SIGKILL) inside fm10's
    schedule; the same command then continues fm10 from its last finished epoch and writes the JSON table."""
    import os
    import signal
    import subprocess
    import sys

    bench = load_bench()
    out, table = tmp_path / "b", tmp_path / "kd_methods.json"
    args = ["--seeds", "0", "--epochs", "1", "--methods", "kd", "fm10", "--set", "teacher.epochs=1",
            "--set", "data.limit=150", "--set", "teacher.check_fit=false", "--out", str(out), "--json", str(table)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "benchmarks/kd_methods.py", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    seen, in_fm = [], False
    for line in proc.stdout:
        seen.append(line)
        in_fm = in_fm or line.startswith("== ") and "training fm10" in line
        if in_fm and line.startswith("Epoch 4/10"):  # three of its epochs are finished and backed up
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert in_fm, "".join(seen[-20:])
    assert not table.exists() and not (out / "seed0" / "results.json").exists()
    capsys.readouterr()
    assert bench.main(args) == 0
    printed = capsys.readouterr().out
    assert "resuming fm10 from its backup after epoch 3 of 10" in printed, printed[-3000:]
    rows = {r["name"]: r for r in json.loads((out / "seed0" / "results.json").read_text())["models"]}
    assert rows["fm10"]["kd"]["epochs"] == 10 and rows["fm10"]["kd"]["student_loss_weight"] == 0.0
    assert rows["fm10"]["kd"]["teacher_cache"]["views"] == 10  # one stored view per epoch of its own schedule
    t = json.loads(table.read_text())
    assert set(t["methods"]) == {"kd", "fm10"} and sum(m["chosen"] for m in t["methods"].values()) == 1
    for m in t["methods"].values():
        assert 0 <= m["test_mean"] <= 1 and len(m["runs"]) == 1 and 0 <= m["val_mean"] <= 1
    assert 0 <= t["teacher"] <= 1 and 0 <= t["baseline"]["test_mean"] <= 1
