"""benchmarks/patient.py: accuracy against the schedule's length for baseline and KD, one plot; its resume."""

import json

import pytest
from conftest import load_benchmark


@pytest.mark.slow  # a lab benchmark: two schedule lengths of a tiny digits run, ~45 s; bad input below
def test_patient_benchmark_runs_each_length_plots_and_resumes(tmp_path, capsys):
    bench = load_benchmark("patient")
    out = tmp_path / "p"
    args = ["--seeds", "0", "--epochs", "1", "--multipliers", "1", "2", "--methods", "kd", "fm",
            "--set", "teacher.epochs=1", "--set", "data.limit=150", "--set", "teacher.check_fit=false",
            "--out", str(out), "--json", str(tmp_path / "patient.json")]
    assert bench.main(args) == 0
    t = json.loads((tmp_path / "patient.json").read_text())
    assert t["epochs"] == [1, 2] and set(t["methods"]) == {"baseline", "kd", "fm"}
    for name, by in t["methods"].items():
        assert set(by) == {"1", "2"}, name
        assert all(0 <= v["test_mean"] <= 1 and len(v["runs"]) == 1 for v in by.values())
    fm = {r["name"]: r for r in json.loads((out / "x2" / "seed0" / "results.json").read_text())["models"]}
    assert fm["fm@epochs2"]["kd"]["epochs"] == 2 and fm["fm@epochs2"]["kd"]["augment"] == {"mixup_alpha": 1.0}
    assert fm["baseline"]["steps"] == 2 * json.loads((out / "x1" / "seed0" / "results.json").read_text())[
        "models"][1]["steps"]  # the baseline trains at every length too
    assert (out / "patient.png").stat().st_size > 0 and "Best:" in (out / "patient.md").read_text()
    capsys.readouterr()
    assert bench.main(args) == 0  # again: every length's seed is read, nothing retrained
    assert capsys.readouterr().out.count("finished earlier") == 2


def test_patient_benchmark_refuses_bad_input(capsys):
    bench = load_benchmark("patient")
    assert bench.main(["--multipliers", "0"]) == 2
    assert "--multipliers must be distinct integers >= 1, got [0]" in capsys.readouterr().err
    assert bench.main(["--methods", "kd", "nope"]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err
