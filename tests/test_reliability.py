"""Nothing lost and nothing silently wrong, round three (issue 46): each case run as a user runs it (a subprocess),
asserting the exit code, one line, no traceback, and the user's files byte-identical."""

from __future__ import annotations

from pathlib import Path

import pytest

from test_cli_mistakes import assert_one_line_error, snapshot
from test_user_mistakes import recipe


@pytest.fixture(scope="module")
def earlier_run(tmp_path_factory):
    """A finished `--smoke` digits run, whose files a refused `--overwrite` must leave as they are."""
    root = tmp_path_factory.mktemp("earlier")
    proc = recipe("--out", "run", cwd=root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return root


@pytest.mark.parametrize("sets, message", [
    (["data.augment.translate=0.0", "data.augment.crop_padding=40"],
     "data.augment.crop_padding = 40 needs images larger than 40 px, and the images are 8 px"),
    (["data.image_size=2", "data.augment.translate=0.0", "data.augment.crop_padding=4"],
     "data.augment.crop_padding = 4 needs images larger than 4 px, and the images are 2 px"),
], ids=["crop padding", "image size"])
def test_a_setting_that_cannot_work_is_refused_before_overwrite_removes_anything(earlier_run, sets, message):
    before = snapshot(earlier_run / "run")
    argv = ["--out", "run", "--overwrite"]
    for s in sets:
        argv += ["--set", s]
    proc = recipe(*argv, cwd=earlier_run)
    assert_one_line_error(proc, message)
    assert "removed" not in proc.stdout
    assert snapshot(earlier_run / "run") == before  # the earlier run's files, names and bytes
