"""The README and docs/ stay true: their links resolve, their command lines parse, every config key is documented, and
every command prints its version."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pytest

from kd_keras.config import REPO_ROOT
from kd_keras.version import __version__

PAGES = [REPO_ROOT / "README.md", REPO_ROOT / "CHANGELOG.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]


def links(text: str) -> list[str]:
    return re.findall(r"!?\[[^\]]*\]\(([^)\s]+)\)", text)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    broken = []
    for target in links(page.read_text()):
        if re.match(r"^(https?:|mailto:|#)", target):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        if not path.exists():
            broken.append(target)
    assert broken == [], f"{page.name}: links to missing files: {broken}"


TEMPLATE = re.compile(r"[<>\[\]|]|\.\.\.|\bPATH\b|\bFILE\b|\bDIR\b")  # `<task>`, `[--out DIR]`, `a|b`: usage


def command_lines(text: str) -> list[str]:
    """Every `python -m kd_keras...` command with arguments: in code blocks (`\\` continuations joined, comments
    dropped) and in inline code; usage templates and bare command names are left out."""
    found = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            for part in re.split(r"&&|\|\|", line.split(" #")[0]):
                found.append(" ".join(part.split()))
    found += [" ".join(code.split()) for code in re.findall(r"`(python -m kd_keras\.[^`]*)`", text)]
    return [c for c in found if c.startswith("python -m kd_keras.") and not TEMPLATE.search(c)
            and (len(c.split()) > 3 or c.split()[2] in ("kd_keras.recipes.classification",
                                                       "kd_keras.recipes.edge_detection",
                                                       "kd_keras.recipes.super_resolution", "kd_keras.models"))]


def parse(line: str) -> None:
    """Parses `line`'s flags with its command's own parser, as `--help` would see them (nothing runs)."""
    args = shlex.split(line)[2:]
    module, argv = args[0], args[1:]
    if module.startswith("kd_keras.recipes."):
        from kd_keras.recipes.cli import parser
        from kd_keras.tasks import TASKS

        task = module.rsplit(".", 1)[1]
        assert task in TASKS, f"no recipe command {module}"
        p = parser(task, "recipe.toml", predict=hasattr(TASKS[task](), "predict"))
    elif module == "kd_keras.export":
        from kd_keras.export.__main__ import parser as p_
        p = p_()
    elif module == "kd_keras.benchmark":
        from kd_keras.benchmark.__main__ import parser as p_
        p = p_()
    elif module == "kd_keras.data.prepare":
        from kd_keras.data.prepare import parser as p_
        p = p_()
    elif module == "kd_keras.models":
        from kd_keras.models.__main__ import parser as p_
        p = p_()
    elif module == "kd_keras.config.reference":
        assert argv in ([], [">", "docs/config.md"]), line
        return
    else:
        raise AssertionError(f"unknown command module {module!r} in {line!r}")
    argv = argv[: argv.index(">")] if ">" in argv else argv
    try:
        p.parse_args(argv)
    except SystemExit as e:
        raise AssertionError(f"{line!r} does not parse (exit {e.code})") from None


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_command_line_in_the_docs_parses(page, capsys):
    lines = command_lines(page.read_text())
    for line in lines:
        parse(line)
    capsys.readouterr()


def test_the_readme_shows_the_main_commands():
    lines = command_lines((REPO_ROOT / "README.md").read_text())
    for module in ("kd_keras.recipes.classification", "kd_keras.export", "kd_keras.benchmark"):
        assert any(line.startswith(f"python -m {module}") for line in lines), module


def test_command_lines_are_found_and_a_bad_flag_fails():
    text = "```bash\npython -m kd_keras.export m.keras --format tflite \\\n    --out m.tflite  # a comment\n```\n"
    assert command_lines(text) == ["python -m kd_keras.export m.keras --format tflite --out m.tflite"]
    with pytest.raises(AssertionError, match="does not parse"):
        parse("python -m kd_keras.export m.keras --format coreml --out m.tflite")


def test_every_config_key_is_documented():
    """docs/config.md is what the schema's docstrings say: a key added without a meaning, or a page left stale,
    fails here (regenerate: python -m kd_keras.config.reference > docs/config.md)."""
    import dataclasses

    from kd_keras.config import reference
    from kd_keras.config.schema import Config

    page = (REPO_ROOT / "docs" / "config.md").read_text()
    assert page == reference.markdown()
    for name, cls in reference._tables(Config, ""):
        for f in dataclasses.fields(cls):
            assert f"| `{f.name}` |" in page, f"{name}.{f.name}"


def test_an_undocumented_key_is_caught():
    import dataclasses

    from kd_keras.config import reference

    @dataclasses.dataclass
    class Table:
        """A table.

        Attributes:
            known: documented.
        """

        known: int = 0
        unknown: int = 1

    assert reference.descriptions(Table) == {"known": "documented."}


@pytest.mark.parametrize("command", ["python -m kd_keras.recipes.classification",
                                     "python -m kd_keras.recipes.edge_detection",
                                     "python -m kd_keras.recipes.super_resolution", "python -m kd_keras.export",
                                     "python -m kd_keras.benchmark", "python -m kd_keras.data.prepare",
                                     "python -m kd_keras.models"])
def test_version_on_every_command(command, capsys):
    with pytest.raises(AssertionError, match="exit 0"):  # parse() reports any exit; --version's is 0
        parse(f"{command} --version")
    assert capsys.readouterr().out.strip() == f"kd_keras {__version__}"


def test_version_as_a_user_runs_it(tmp_path):
    for module in ("kd_keras.config.reference",):
        proc = subprocess.run([sys.executable, "-m", module, "--version"], capture_output=True, text=True,
                              cwd=tmp_path, timeout=300)
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr[-2000:]
        assert proc.stdout.strip() == f"kd_keras {__version__}"


@pytest.mark.parametrize("recipe", sorted((REPO_ROOT / "recipes").glob("*.toml")), ids=lambda p: p.stem)
def test_each_recipe_states_its_current_measurement_in_at_most_8_lines(recipe):
    import tomllib

    expected = tomllib.loads(recipe.read_text()).get("expected", "").strip()
    assert expected and len(expected.splitlines()) <= 8, f"{recipe.name}: {len(expected.splitlines())} lines"
    named = re.findall(r"recipes/results/[\w.{},-]+\.md", expected)
    if "Not measured here" not in expected:  # a recipe whose data is not available offline states that instead
        assert named, f"{recipe.name} names no results file"
    for path in named:
        first = path.split(",")[0].replace("{0,1}", "0")
        assert (REPO_ROOT / first).exists(), f"{recipe.name}: {first} does not exist"


def test_the_readmes_python_example_runs_on_a_softmax_teacher_of_another_input_size(tmp_path, monkeypatch):
    """The README's library example, as written, with tiny stand-ins: its names and calls are the API's."""
    import keras
    import numpy as np

    block = re.findall(r"```python\n(.*?)```", (REPO_ROOT / "README.md").read_text(), re.S)[0]
    assert "kd_keras.load_teacher(" in block
    code = (block.replace('"mobilenet_v3_small"', '"small_cnn"').replace("(96, 96, 3)", "(8, 8, 3)")
            .replace("epochs=30", "epochs=1"))
    monkeypatch.chdir(tmp_path)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))  # another input size than the data's, and a softmax ending
    mean = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(inputs))
    head = keras.layers.Dense(10, activation="softmax")
    teacher = keras.Model(inputs, head(mean))
    centers = np.arange(10) * 25 / 255  # class c: images of brightness 25c; the nearest center wins
    w = np.zeros((3, 10), "float32")
    w[0] = 2000 * centers  # one channel carries it: logits 1000 (2 c m - c^2)
    head.set_weights([w, (-1000 * centers ** 2).astype("float32")])
    teacher.save("my_teacher.keras")

    def images(labels):
        return np.repeat((labels * 25.0)[:, None, None, None], 8 * 8 * 3, 1).reshape(-1, 8, 8, 3).astype("float32")

    y, y_val = np.arange(64) % 10, np.arange(16) % 10
    data = {"x_train": images(y), "y_train": y, "x_val": images(y_val), "y_val": y_val}
    exec(compile(code, "README.md", "exec"), dict(data))  # noqa: S102 (the README's own code)
    assert keras.saving.load_model("student.keras").output_shape == (None, 10)
    from kd_keras import Distiller, create_model

    with pytest.raises(ValueError, match=r"ends in a softmax .* load it with kd_keras.load_teacher\(path, input_shape\)"):
        Distiller(keras.saving.load_model("my_teacher.keras"), create_model("small_cnn", 10, (16, 16, 3)), "kd")
