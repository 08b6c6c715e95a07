"""benchmarks/transfer.py: baseline, KD and KD with the transfer set at each schedule length; its resume."""

import json

import pytest
from conftest import load_benchmark

from kd_keras.config import REPO_ROOT


@pytest.mark.slow  # a lab benchmark: two schedule lengths of a tiny digits run, ~60 s; bad input below
def test_transfer_benchmark_reports_every_variant_at_equal_steps_and_resumes(tmp_path, capsys):
    bench = load_benchmark("transfer")
    out = tmp_path / "t"
    entries = ('distill=[{name="kd", student_loss_weight=0.1, unlabeled=false, losses=[{method="kd"}]}, '
               '{name="kd_transfer", student_loss_weight=0.1, losses=[{method="kd"}]}]')
    args = ["--config", str(REPO_ROOT / "recipes" / "digits.toml"), "--epochs", "1", "2", "--pairs", "2",
            "--set", "teacher.epochs=1", "--set", "data.limit=300", "--set", "data.labels_per_class=5",
            "--set", "data.unlabeled=\"rest\"", "--set", entries, "--out", str(out),
            "--results", str(tmp_path / "transfer")]
    assert bench.main(args) == 0
    t = json.loads((tmp_path / "transfer.json").read_text())
    rows = {(r["variant"], r["epochs"]): r for r in t["variants"]}
    assert set(rows) == {(v, e) for v in ("baseline", "kd", "kd_transfer") for e in (1, 2)}
    for e in (1, 2):
        steps = {rows[v, e]["steps"] for v in ("baseline", "kd", "kd_transfer")}
        assert steps == {e * rows["baseline", 1]["steps"]}  # equal steps within a length
        assert rows["kd_transfer", e]["transfer_images"] > 0 == rows["kd", e]["transfer_images"]
        for v in ("baseline", "kd", "kd_transfer"):
            r = rows[v, e]
            assert len(r["runs"]) == 2 and 0 <= r["test_mean"] <= 1 and r["val_mean"] is not None
    assert all(r["wall_seconds"] > 0 for r in t["runs"])
    md = (tmp_path / "transfer.md").read_text()
    assert "| kd_transfer | 2 |" in md and "kd_transfer - baseline" in md
    capsys.readouterr()
    assert bench.main(args) == 0  # again: both lengths are read, nothing retrained
    assert "== " not in capsys.readouterr().out


def test_transfer_benchmark_refuses_bad_input(capsys):
    bench = load_benchmark("transfer")
    assert bench.main(["--epochs", "0"]) == 2
    assert "--epochs must be distinct integers >= 1" in capsys.readouterr().err
    assert bench.main(["--config", "nope.toml"]) == 2
    assert "--config 'nope.toml' is not a file" in capsys.readouterr().err
