"""What every kd_keras command shares: one-line user errors, exit codes, output-path checks."""

from __future__ import annotations

import os
import sys
import tempfile

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C


def report_user_errors(fn, *args, interrupted: str = "nothing was written", **kwargs) -> int:
    """Runs `fn`; a user mistake (ValueError, FileNotFoundError) becomes one `error:` line and exit 2.

    Ctrl-C becomes one `interrupted:` line (saying `interrupted`, what was kept) and exit 130.
    """
    try:
        fn(*args, **kwargs)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"interrupted: {interrupted}.", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def check_new_output(path: str, overwrite: bool) -> None:
    """Refuses an output that exists (unless `overwrite`) or whose folder does not."""
    if os.path.exists(path) and not overwrite:
        raise ValueError(f"output {path!r} already exists; pass --overwrite to replace it or choose another --out.")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"output folder {parent!r} does not exist; create it or choose another --out.")


def unwritable_reason(folder: str) -> str:
    """Why `folder` cannot be created and written ("" if it can): probes the nearest existing ancestor.

    A real probe (a folder made and removed), since permission bits say nothing for root.
    """
    path = os.path.abspath(folder)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    if not os.path.isdir(path):
        return f"{path!r} is a file, not a folder"
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".kd_keras_probe", dir=path))
    except OSError as e:
        return f"{path!r} is not writable: {e.strerror}"
    return ""
