"""A loaded teacher's test scores are stored once and reused by later runs with the same teacher, data and report."""

import json

import pytest

from test_recipe import run_cli

from kd_keras.models import create_model


@pytest.mark.slow  # ~50 s, three recipe runs; test_a_teacher_trained_by_the_run_is_always_scored stays in the default
def test_loaded_teacher_scores_are_reused_only_for_the_same_key(tmp_path, capsys):
    teacher_file = tmp_path / "teacher.keras"
    create_model("resnet20", 10, (8, 8, 1), image_size=16).save(str(teacher_file))
    shared = tmp_path / "cache"
    common = ["--smoke", "--set", f'teacher.weights="{teacher_file}"', "--set", f'train.teacher_cache_dir="{shared}"',
              "--set", "teacher.check_fit=false"]  # an untrained teacher: at chance by design

    def teacher_row(out, *extra):
        code, err = run_cli(capsys, *common, *extra, "--out", str(tmp_path / out))
        assert code == 0, err
        return json.loads((tmp_path / out / "results.json").read_text())["models"][0]

    first = teacher_row("a")
    stored = list(shared.glob("teacher_scores_*.json"))
    assert len(stored) == 1 and json.loads(stored[0].read_text())["accuracy"] == first["accuracy"]
    marked = {**json.loads(stored[0].read_text()), "accuracy": 0.123}  # a value no evaluation gives here
    stored[0].write_text(json.dumps(marked))
    assert teacher_row("b")["accuracy"] == 0.123  # read, not scored again
    assert teacher_row("c", "--set", "data.limit=150")["accuracy"] != 0.123  # other test data: scored again
    assert teacher_row("d", "--set", 'train.teacher_cache="off"')["accuracy"] != 0.123  # "off" stores nothing
    assert len(list(shared.glob("teacher_scores_*.json"))) == 2


def test_a_teacher_trained_by_the_run_is_always_scored(tmp_path, capsys):
    shared = tmp_path / "cache"
    code, err = run_cli(capsys, "--smoke", "--set", f'train.teacher_cache_dir="{shared}"', "--out", str(tmp_path / "a"))
    assert code == 0, err
    assert not list(shared.glob("teacher_scores_*.json"))
