""".ci/run runs the README's two commands as they are written, in a new virtual environment, on a clean clone."""

import re
import shutil
import subprocess

from kd_keras.config import REPO_ROOT

CI = REPO_ROOT / ".ci" / "run"


def readme_commands():
    """The command lines of the README's first bash block (comments and blank lines left out)."""
    text = (REPO_ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    return [line.strip() for line in block.splitlines() if line.strip() and not line.strip().startswith("#")]


def ci_lines():
    return [line.strip() for line in CI.read_text().splitlines()]


def test_the_readme_opens_with_two_commands_and_ci_runs_both_to_the_letter():
    commands = readme_commands()
    assert len(commands) == 2, commands
    assert commands[0].startswith("pip install -e . && python -m kd_keras.recipes.")
    assert commands[1].startswith('pip install -e ".[dev]" && python -m pytest')
    lines = ci_lines()
    at = [lines.index(f"{command} || exit $?") for command in commands]  # each a line of its own, in order
    assert at == sorted(at)
    made = lines.index('"${PYTHON:-python3}" -m venv .venv')
    assert made < lines.index(". .venv/bin/activate") < at[0]  # a fresh environment first, then the commands


def test_ci_refuses_a_checkout_that_is_not_clean_and_touches_nothing(tmp_path):
    (tmp_path / ".ci").mkdir()
    shutil.copy(CI, tmp_path / ".ci" / "run")
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "mine.txt").write_text("the user's")
    proc = subprocess.run(["bash", str(tmp_path / ".ci" / "run")], capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"error: .ci/run needs a clean clone, and {tmp_path}/.venv exists; run it in a fresh one: "
        "git clone . /tmp/ci && bash /tmp/ci/.ci/run"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ci", ".venv"]
    assert (tmp_path / ".venv" / "mine.txt").read_text() == "the user's"


def test_the_readme_library_example_runs_as_written_on_a_short_budget(tmp_path):
    """docs/library.md's `## Using the library` block, run with 256 images and 1 epoch instead of 9,000 and 40:
    nothing else changes, so a broken example fails here."""
    import sys

    import pytest

    shared = REPO_ROOT.parent / "shared" / "data" / "cifar10_small.npz"
    if not shared.exists():
        pytest.skip("shared CIFAR-10 subset not present (../shared/data)")
    text = (REPO_ROOT / "docs" / "library.md").read_text()
    code = re.search(r"## Using the library\n\n```python\n(.*?)```", text, re.S).group(1)
    for old, new in (("epochs=40", "epochs=1"), ("batch(10_000)", "batch(256)"),
                     ('"../shared/data/cifar10_small.npz"', repr(str(shared))),
                     ('"saved_models/cifar10_small_resnet56.keras"',
                      repr(str(REPO_ROOT / "saved_models" / "cifar10_small_resnet56.keras")))):
        assert old in code, f"the README's library example no longer has {old!r}; update this test"
        code = code.replace(old, new)
    code += "\nassert distiller.teacher_cache_info['mode'] == 'views', distiller.teacher_cache_info\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    import keras

    student = keras.saving.load_model(tmp_path / "student.keras")
    assert student.output_shape == (None, 10)
