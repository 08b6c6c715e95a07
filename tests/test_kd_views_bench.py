"""benchmarks/kd_views.py runs end to end, resumes its accuracy runs and reuses its views pass; no timing asserted."""

import json

import pytest

from conftest import load_benchmark, train_digits_classifier


def load_bench():
    return load_benchmark("kd_views")


@pytest.mark.slow  # a lab benchmark (its figures are committed under recipes/results/), ~25 s; bad input below
def test_kd_views_benchmark_runs_resumes_and_reuses_its_pass(tmp_path, capsys):
    bench = load_bench()
    teacher = tmp_path / "teacher.keras"
    train_digits_classifier(str(teacher), epochs=2)
    args = ["--config", "recipes/digits.toml", "--teacher", str(teacher), "--views", "2", "--seeds", "0",
            "--epochs", "1", "--timing-epochs", "2", "--rounds", "1", "--limit", "200", "--out", str(tmp_path / "b")]
    code = bench.main(args)
    assert code == 0  # a missed target is reported, not an error
    r = json.loads((tmp_path / "b" / "result.json").read_text())
    assert set(r["epoch_seconds"]) == set(bench.TIMED) and all(t > 0 for t in r["epoch_seconds"].values())
    assert r["pass_computed"] and r["pass_seconds"] > 0 and r["teacher_epoch_seconds"] > 0
    assert r["bytes_per_image"] == 2 * (10 * 4 + 2 * 4) + 4  # K x (10 float32 logits + float32 dx, dy) + offset
    assert set(r["accuracy"]) == {"KD live", "KD views"}
    assert all(0.0 <= run["test"] <= 1.0 for runs in r["accuracy"].values() for run in runs)
    printed = capsys.readouterr().out
    assert "KD views / baseline epoch" in printed and "KD views - KD live:" in printed

    code = bench.main(args)  # the same command again: nothing retrained, the pass read from disk
    assert code == 0
    again = json.loads((tmp_path / "b" / "result.json").read_text())
    assert not again["pass_computed"] and again["accuracy"] == r["accuracy"]
    assert printed.count("KD views/K2/seed0/epochs1") == 1 and "done by an earlier run" in capsys.readouterr().out


def test_kd_views_benchmark_refuses_bad_input(tmp_path, capsys):
    bench = load_bench()
    assert bench.main(["--teacher", str(tmp_path / "none.keras")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert bench.main(["--teacher", __file__, "--views", "0"]) == 2
    assert "--views must be \"epochs\" or >= 1" in capsys.readouterr().err
    for bad in (["KD views", "KD views"], ["KD cached"]):
        assert bench.main(["--teacher", __file__, "--variants", *bad]) == 2
        assert "--variants must be distinct names from KD views, KD live" in capsys.readouterr().err
    # A first [[distill]] entry with its own schedule or augmentation (function matching) is not what it trains.
    recipe = tmp_path / "fm.toml"
    text = open("recipes/digits.toml").read()
    recipe.write_text(text.replace("[[distill]]\n", "[[distill]]\nepochs = 90\n", 1))
    assert bench.main(["--config", str(recipe), "--teacher", __file__, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "sets its own epochs" in err and "kd_methods.py" in err and len(err.strip().splitlines()) == 1


def test_paired_comparison_per_seed_and_its_measurable_loss_rule():
    """Views minus live per seed, with the paired t-test that decides "measurably loses" (p < 0.05)."""
    bench = load_bench()

    def result(views, live):
        return {"seeds": list(range(len(views))), "accuracy": {
            "KD views": [{"test": t} for t in views], "KD live": [{"test": t} for t in live]}}

    # cifar10_small's five seeds (2026-12-04): -0.42 pt on the mean, the sign changes: not measurable.
    q = bench.paired(result([.742, .7455, .74, .7495, .7445], [.7505, .7555, .747, .7465, .743]),
                     "KD views", "KD live")
    assert [round(d, 2) for d in q["diffs_pt"]] == [-0.85, -1.0, -0.7, 0.3, 0.15]
    assert abs(q["mean_pt"] + 0.42) < 1e-9 and abs(q["t"] + 1.5636) < 1e-3 and 0.15 < q["p"] < 0.25
    assert not q["measurably_loses"]
    # A steady loss of about 1 pt on every seed is measurable.
    q = bench.paired(result([.74, .741, .739, .742], [.75, .751, .75, .752]), "KD views", "KD live")
    assert q["measurably_loses"] and q["p"] < 0.05
    assert bench.paired(result([.74], [.75]), "KD views", "KD live") is None  # one seed: no test
    assert bench.paired(result([.74, .75], [.75, .76]), "KD views int8", "KD views") is None
