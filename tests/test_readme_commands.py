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
