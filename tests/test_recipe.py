"""The classification recipe end to end (smoke mode), and its bad-input messages."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from kd_keras.config import REPO_ROOT, quote
from kd_keras.models import create_model
from kd_keras.recipes.cli import main
from kd_keras.cli.manifest import Manifest

ROW_FIELDS = {"name", "role", "arch", "params", "size_bytes", "accuracy", "latency_ms_b1", "throughput",
              "train_seconds", "kd", "file"}


def run_cli(capsys, *argv):
    code = main("classification", str(REPO_ROOT / "recipes" / "digits.toml"), list(argv))
    captured = capsys.readouterr()
    return code, captured.err.strip()


def test_default_recipe_smoke_writes_results(tmp_path, capsys):
    out = tmp_path / "run"
    code, err = run_cli(capsys, "--smoke", "--out", str(out))
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    roles = [m["role"] for m in results["models"]]
    assert roles[:2] == ["teacher", "baseline"] and "kd" in roles
    for row in results["models"]:
        assert ROW_FIELDS <= set(row), ROW_FIELDS - set(row)
        assert row["size_bytes"] == os.path.getsize(out / row["file"]) > 0
        assert 0.0 <= row["accuracy"] <= 1.0 and row["latency_ms_b1"] > 0 and row["throughput"] > 0
        assert row["latency_runs"] >= 20
    kd_rows = [m for m in results["models"] if m["role"] == "kd"]
    assert kd_rows[0]["kd"]["losses"][0]["method"] == "kd" and "gap_recovered" in kd_rows[0]
    assert results["data"]["num_test"] > 0 and results["environment"]["tensorflow"]
    assert results["command"] == f"python -m kd_keras.recipes.classification --smoke --out {out}"
    assert "| teacher |" in (out / "results.md").read_text()
    assert kd_rows[0]["steps"] == results["models"][1]["steps"] > 0  # the same budget as the baseline: no flag
    assert "part of the difference" not in (out / "results.md").read_text()  # no unequal-budget flag
    assert "- Equal budgets: the baseline and every KD student took" in (out / "results.md").read_text()
    # digits trains with random translation, which is replayed from stored views, and the run said so
    assert kd_rows[0]["kd"]["teacher_outputs"].startswith("teacher outputs from 2 stored augmented views per image")
    assert "Teacher outputs from 2 stored augmented views" in (out / "results.md").read_text()
    png = (out / "results.png").read_bytes()  # the picture of the result, linked from results.md
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000 and "](results.png)" in (out / "results.md").read_text()
    from PIL import Image

    assert Image.open(out / "results.png").size[0] > Image.open(out / "results.png").size[1]  # two panels side by side
    for name in ("teacher", "baseline", "kd"):  # CSV and TensorBoard logs of every training run
        lines = (out / "logs" / f"{name}.csv").read_text().splitlines()
        assert lines[0].startswith("epoch,") and "loss" in lines[0] and len(lines) == 2
        assert any(f.startswith("events.out.tfevents") for f in os.listdir(out / "logs" / name / "train"))
    assert not (out / ".progress").exists() and not (out / ".backup").exists()  # a finished run leaves no state


def test_existing_results_are_not_overwritten(tmp_path, capsys):
    (tmp_path / "results.json").write_text('{"keep": true}')
    Manifest(str(tmp_path)).claim(["results.json"])  # an earlier kd_keras run's results
    code, err = run_cli(capsys, "--out", str(tmp_path))
    assert code == 2 and "already holds results (results.json); pass --overwrite" in err
    assert json.loads((tmp_path / "results.json").read_text()) == {"keep": True}


def write_bad_npz(path):
    np.savez(path, images=np.zeros((4, 8, 8), "uint8"), labels=np.zeros(4, "int32"))


@pytest.fixture
def mismatched_teacher(tmp_path):
    path = tmp_path / "teacher5.weights.h5"
    create_model("small_cnn", 5, (8, 8, 1)).save_weights(str(path))
    return path


BAD_INPUTS = {
    "unknown model": (["--set", "student.model=resnet19"],
                      "unknown student model 'resnet19'; pass a registered classification model ("),
    "unknown method": (["--set", "distill.0.losses.0.method=kdd"],
                       "distill.0.losses.0: unknown distillation method 'kdd'; registered methods: at, cwd, dist, dkd"),
    "method option": (["--set", "distill.0.losses.0.standardise=true"],
                      "distill.0.losses.0: loss 'kd' got unknown argument(s) standardise; valid arguments: "
                      "temperature, standardize."),
    "option value": (["--set", "distill.0.losses.0.standardize=1"], "standardize must be true or false, got 1."),
    "negative weight": (["--set", "distill.0.losses.0.weight=-0.5"], "distill.0.losses.0.weight must be >= 0, got -0.5"),
    "warm-up": (["--set", "distill.0.warmup_epochs=3"],
                "distill.0.warmup_epochs = 3 is not shorter than the student's 1 training epochs"),
    "student augment": (["--set", "distill.0.augment={mixup=1.0}"],
                        "distill.0.augment: unknown config key(s) augment.mixup; valid keys in augment: flip"),
    "unknown dataset": (["--set", "data.source=cifar"], "unknown dataset source 'cifar'; valid sources:"),
    "missing data path": (["--set", "data.source=npz", "--data", "/no/such/file.npz"],
                          "npz file '/no/such/file.npz' does not exist; check the path."),
    "no data path": (["--set", "data.source=npz"], "data.path is empty for source 'npz'; pass --data PATH"),
    "temperature": (["--set", "distill.0.losses.0.temperature=0"], "temperature must be a number > 0, got 0"),
    "negative temperature": (["--set", "distill.0.losses.0.temperature=-2.0"], "got -2.0"),
    "weight": (["--set", "distill.0.student_loss_weight=1.5"],
               "distill.0.student_loss_weight must be between 0.0 and 1.0, got 1.5"),
    "config key": (["--set", "train.epochz=3"], "unknown config key(s) train.epochz; valid keys in train: epochs"),
    "missing config": (["--config", "recipes/nope.toml"], "config file 'recipes/nope.toml' does not exist"),
}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_bad_input_gets_one_line(case, tmp_path, capsys):
    argv, message = BAD_INPUTS[case]
    out = tmp_path / "out"
    code, err = run_cli(capsys, *argv, "--smoke", "--out", str(out))
    assert code == 2
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not (out / "results.json").exists()


def test_npz_without_keys(tmp_path, capsys):
    write_bad_npz(tmp_path / "bad.npz")
    code, err = run_cli(capsys, "--set", "data.source=npz", "--data", str(tmp_path / "bad.npz"), "--smoke",
                        "--out", str(tmp_path / "out"))
    assert code == 2 and "lacks key(s) x_train, y_train, x_test, y_test" in err and "\n" not in err


def test_teacher_with_other_class_count(tmp_path, capsys, mismatched_teacher):
    code, err = run_cli(capsys, "--set", "teacher.model=small_cnn", "--set", f'teacher.weights="{mismatched_teacher}"',
                        "--smoke", "--out", str(tmp_path / "out"))
    assert code == 2 and "does not fit model 'small_cnn'" in err and "same architecture, num_classes" in err


def test_nan_loss_stops_and_keeps_last_good_weights(tmp_path, capsys):
    out = tmp_path / "out"
    code, err = run_cli(capsys, "--set", "teacher.epochs=1", "--set", "train.learning_rate=1e35",
                        "--set", "teacher.learning_rate=1e35", "--set", "train.schedule=\"constant\"",
                        "--smoke", "--out", str(out))
    assert code == 3, err
    assert re.search(r"diverged: the loss became NaN/inf in epoch 1, step (\d+); kept the weights of epoch 0", err)
    assert err.endswith("lower train.learning_rate and run again with --overwrite (or another --out).")
    assert (out / "teacher.keras").exists() and not (out / "results.json").exists()
    code, err = run_cli(capsys, "--set", "teacher.epochs=1", "--smoke", "--out", str(out), "--overwrite")  # the hint
    assert code == 0, err


def test_cli_process_prints_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "kd_keras.recipes.classification", "--set", "student.model=nope",
                           "--out", str(tmp_path)], capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "error: unknown student model 'nope'" in proc.stderr


def test_recipe_loads_given_teacher_instead_of_training(tmp_path, capsys):
    import keras

    teacher_file = tmp_path / "given_teacher.keras"
    given = create_model("resnet20", 10, (8, 8, 1), image_size=16)
    given.save(str(teacher_file))
    out = tmp_path / "out"
    # An untrained file scores at chance, which the fit check refuses (see the next test): it is switched off here.
    code, err = run_cli(capsys, "--smoke", "--set", f'teacher.weights="{teacher_file}"', "--set",
                        "teacher.check_fit=false", "--out", str(out))
    assert code == 0, err
    row = json.loads((out / "results.json").read_text())["models"][0]
    assert row["train_seconds"] is None and row["source"] == f"loaded from {teacher_file}"
    saved = keras.models.load_model(str(out / "teacher.keras"))
    for a, b in zip(saved.get_weights(), given.get_weights()):
        np.testing.assert_array_equal(a, b)  # used as given, not retrained


def test_a_loaded_teacher_at_chance_is_refused_before_any_student_trains(tmp_path, capsys):
    teacher_file = tmp_path / "untrained.keras"
    create_model("resnet20", 10, (8, 8, 1), image_size=16).save(str(teacher_file))  # not trained: chance level
    out = tmp_path / "out"
    code, err = run_cli(capsys, "--smoke", "--set", f'teacher.weights="{teacher_file}"', "--out", str(out))
    assert code == 2 and len(err.splitlines()) == 1
    assert f"the teacher loaded from {teacher_file} scores " in err and "no better than chance (10.0% for 10 " in err
    assert err.endswith("or set teacher.check_fit=false to use it anyway.")
    assert not out.exists()


def test_missing_teacher_weights_without_training_is_an_error(tmp_path, capsys):
    code, err = run_cli(capsys, "--smoke", "--set", 'teacher.weights="saved_models/nope.keras"',
                        "--out", str(tmp_path / "out"))
    assert code == 2
    assert "teacher weights 'saved_models/nope.keras' do not exist; fix teacher.weights or one of resnet20's named " \
           "weights (fashion_mnist_small), or set teacher.train_if_missing=true" in err and "\n" not in err


CIFAR_NPZ = REPO_ROOT.parent / "shared" / "data" / "cifar10_small.npz"


@pytest.mark.skipif(not CIFAR_NPZ.exists(), reason="shared CIFAR-10 subset not present (../shared/data)")
def test_cifar10_recipe_uses_shipped_teacher(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("KD_CIFAR10_NPZ", str(CIFAR_NPZ))
    out = tmp_path / "out"
    code, err = run_cli(capsys, "--config", str(REPO_ROOT / "recipes" / "cifar10_small.toml"), "--smoke",
                        "--out", str(out))
    assert code == 0, err
    teacher = json.loads((out / "results.json").read_text())["models"][0]
    assert teacher["source"] == "loaded from saved_models/cifar10_small_resnet56.keras"
    assert teacher["train_seconds"] is None
    assert teacher["accuracy"] > 0.65  # 78.1% on the full 2,000-image test split


def test_recipe_of_another_task_names_the_right_command(tmp_path, capsys):
    code, err = run_cli(capsys, "--config", str(REPO_ROOT / "recipes" / "edges_synthetic.toml"), "--smoke",
                        "--out", str(tmp_path))
    assert code == 2 and "is a recipe for edge_detection; run it with python -m kd_keras.recipes.edge_detection" in err


def test_a_distill_entry_with_its_own_student(tmp_path, capsys):
    out = tmp_path / "run"
    code, err = run_cli(capsys, "--smoke", "--out", str(out),
                        "--set", 'distill.0.student={ model = "small_cnn", options = { widths = [2, 4] } }')
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    baseline, kd = results["models"][1], results["models"][2]
    assert kd["params"] < baseline["params"] and kd["kd"]["own_student"] is True and kd["gap_recovered"] is None
    assert "a different student (small_cnn) than the baseline's, so no KD gain" in (out / "results.md").read_text()
    code, err = run_cli(capsys, "--smoke", "--out", str(tmp_path / "bad"),
                        "--set", 'distill.0.student={ model = "nope" }')
    assert code == 2 and "distill.0.student must be { model = NAME" in err


def test_precise_bn_recomputes_statistics_of_every_trained_model(tmp_path, capsys):
    code = main("classification", str(REPO_ROOT / "recipes" / "digits.toml"),
                ["--smoke", "--set", "train.precise_bn_batches=2", "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 0
    for name in ("teacher", "baseline", "kd"):
        assert f"   {name}: BatchNorm statistics recomputed on 2 training batches (precise BN)" in out
    code, err = run_cli(capsys, "--smoke", "--set", "train.precise_bn_batches=-1", "--out", str(tmp_path / "bad"))
    assert code == 2 and "train.precise_bn_batches must be >= 0 (0: off), got -1." in err


def test_teacher_file_of_another_architecture_or_class_count_is_one_line(tmp_path, capsys):
    other_classes = tmp_path / "resnet20_3_classes.keras"  # run at 16 px, as digits.toml's teacher
    create_model("resnet20", 3, (8, 8, 1), image_size=16).save(other_classes)
    other_arch = tmp_path / "resnet56.keras"
    create_model("resnet56", 10, (8, 8, 1), image_size=16).save(other_arch)
    other_size = tmp_path / "resnet20_at_8px.keras"
    create_model("resnet20", 10, (8, 8, 1)).save(other_size)
    out = tmp_path / "out_other_size"
    code, err = run_cli(capsys, "--smoke", "--set", f"teacher.weights={quote(str(other_size))}", "--out", str(out))
    assert code == 2 and err.startswith("error: ") and "\n" not in err
    assert (f"weights file {str(other_size)!r} was saved from a network that runs at 8x8 px, but model 'resnet20' "
            "runs at 16x16; set image_size=8 in its options.") in err
    for path in (other_classes, other_arch):
        out = tmp_path / f"out_{path.stem}"  # a failed run still locks its folder (issue 16)
        code, err = run_cli(capsys, "--smoke", "--set", f"teacher.weights={quote(str(path))}", "--out", str(out))
        assert code == 2 and err.startswith("error: ") and "\n" not in err
        assert f"weights file {str(path)!r} does not fit model 'resnet20'" in err
        assert "use weights saved from the same architecture, num_classes and options" in err
        assert not (out / "results.json").exists()
