"""Recipe configs: TOML, overrides, key and type checks."""

import pytest

from kd_keras.config import REPO_ROOT, Config, apply_override, load_config, parse_value, to_dict

RECIPES = sorted((REPO_ROOT / "recipes").glob("*.toml"))


@pytest.mark.parametrize("path", RECIPES, ids=[p.name for p in RECIPES])
def test_every_recipe_file_parses_and_states_its_command(path):
    cfg = load_config(path)
    assert cfg.name == path.stem
    assert cfg.command.startswith("python -m kd_keras.recipes.")
    assert cfg.expected and cfg.description


def test_overrides_reach_nested_keys_and_lists():
    cfg = load_config(REPO_ROOT / "recipes" / "digits.toml", [
        "train.epochs=3", "data.augment.flip=true", "distill.0.losses.0.temperature=2.5",
        "student.options={ widths = [2, 4] }", "distill.0.name=\"hinton\"",
    ])
    assert cfg.train.epochs == 3 and cfg.data.augment.flip is True
    assert cfg.distill[0].losses[0].options == {"temperature": 2.5}
    assert cfg.distill[0].name == "hinton"
    assert cfg.student.options == {"widths": [2, 4]}


def test_parse_value():
    assert parse_value("3") == 3 and parse_value("0.5") == 0.5 and parse_value("true") is True
    assert parse_value("[1, 2]") == [1, 2] and parse_value("hello") == "hello"


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ValueError, match=r"unknown config key\(s\) train.epochz; valid keys in train: epochs, optimizer"):
        load_config(None, ["train.epochz=3"])
    with pytest.raises(ValueError, match=r"unknown config key\(s\) colour; valid keys: name, task, description"):
        load_config(None, ["colour=1"])


def test_wrong_types_and_bad_overrides():
    with pytest.raises(ValueError, match="config key train.epochs must be of type int, got 'ten'"):
        load_config(None, ["train.epochs=ten"])
    with pytest.raises(ValueError, match="--set expects key=value"):
        apply_override({}, "train.epochs")
    with pytest.raises(FileNotFoundError, match="config file 'nope.toml' does not exist"):
        load_config("nope.toml")


def test_smoke_shrinks_and_round_trips():
    cfg = load_config(None, smoke=True)
    assert cfg.train.epochs == 1 and cfg.data.limit == 256 and cfg.report.latency_runs == 20
    cfg = load_config(None, ["train.epochs=3", "data.limit=512"], smoke=True)  # an explicit --set wins
    assert cfg.train.epochs == 3 and cfg.data.limit == 512 and cfg.teacher.epochs == 1
    d = to_dict(Config())
    assert d["distill"][0]["losses"][0]["method"] == "kd"


def test_a_config_built_in_python_meets_the_schema_choices_too():
    from kd_keras.config import TrainConfig
    from kd_keras.recipes.validate import validate

    with pytest.raises(ValueError, match="^train.optimizer must be one of adam, adamw, sgd, got 'adagrad'.$"):
        validate(Config(train=TrainConfig(optimizer="adagrad")))
    validate(Config(train=TrainConfig(optimizer="sgd")))  # an allowed value passes
