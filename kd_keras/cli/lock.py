"""The output folder of a run: checked before anything runs, and locked against a second run (a lock file that a
killed run does not leave stuck)."""

from __future__ import annotations

import json
import os
import socket

from kd_keras.cli.errors import unwritable_reason

LOCK = ".lock"
RESULT_FILES = ("results.json", "results.md")


def check_out_dir(out_dir: str, overwrite: bool, inputs: dict | None = None, resumable: bool = False):
    """Refuses an output dir that is a file, cannot be written, holds files no kd_keras run wrote there
    (`kd_keras.cli.manifest`), or holds an earlier run's results or files (unless `overwrite`).

    Args:
        inputs: `{what: path}` the run reads; refused inside `out_dir`.
        resumable: an earlier run's files without results are kept for a resume (a recipe's `.progress`).

    Returns:
        the folder's `Manifest`.
    """
    from kd_keras.cli.manifest import check_ownership, shown

    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(f"--out {out_dir!r} is a file, not a folder; choose a folder for the run's models and "
                         f"results.")
    why = unwritable_reason(out_dir)
    if why:
        raise ValueError(f"--out {out_dir!r} cannot be written ({why}); choose another --out.")
    manifest = check_ownership(out_dir, inputs)
    if overwrite:
        return manifest
    held = [f for f in RESULT_FILES if os.path.exists(os.path.join(out_dir, f))]
    if held:
        raise ValueError(f"output dir {out_dir!r} already holds results ({', '.join(held)}); "
                         f"pass --overwrite to replace them or choose another --out.")
    earlier = manifest.owned()
    if earlier and not resumable:
        raise ValueError(f"output dir {out_dir!r} holds an earlier run's files ({shown(earlier)}) and nothing to "
                         f"resume; pass --overwrite to replace them or choose another --out.")
    return manifest


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


class OutputLock:
    """Holds `<out_dir>/.lock` (this process's pid and host) while a run writes `out_dir`.

    A lock left by a process that no longer runs on this host is taken over;
    one held by a live process, or by another host (whose processes cannot be
    checked from here), is refused.

    Raises:
        ValueError: another run holds the folder.
    """

    def __init__(self, out_dir: str):
        self.path = os.path.join(out_dir, LOCK)
        self.held = False

    def acquire(self) -> None:
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname()}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                other = self._holder()
                if other.get("host") == me["host"] and not _alive(int(other.get("pid", -1))):
                    os.remove(self.path)  # a killed run's lock
                    continue
                raise ValueError(f"another run (pid {other.get('pid', '?')} on {other.get('host', '?')}) is writing "
                                 f"{os.path.dirname(self.path)!r}; wait for it to end or choose another --out "
                                 f"(if no such run exists, delete {self.path!r}).") from None
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.held = True
            return

    def _holder(self) -> dict:
        try:
            with open(self.path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def release(self) -> None:
        if self.held:
            self.held = False
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass
