"""What every kd_keras command shares: one-line user errors, exit codes, output-path checks."""

from __future__ import annotations

import errno
import os
import re
import sys
import tempfile

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
EXIT_NO_SPACE = 75  # sysexits' EX_TEMPFAIL: a temporary failure; the same command resumes once space is freed
NO_SPACE = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}


def ensure_space(path: str, nbytes: int) -> None:
    """Raises OSError(ENOSPC) naming `path` when fewer than `nbytes` can be written there: the free space of its
    disk, or a file-size limit (`ulimit -f`). Checked before a model is saved: HDF5 (h5py) that runs out of space
    mid-file leaves handles that crash the interpreter at exit."""
    import resource

    folder = os.path.dirname(os.path.abspath(path))
    try:
        st = os.statvfs(folder)
        free = st.f_bavail * st.f_frsize
    except OSError:
        free = None
    soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    limits = [x for x in (free, None if soft == resource.RLIM_INFINITY else soft) if x is not None]
    cap = min(limits) if limits else None
    if cap is not None and cap < nbytes:
        raise OSError(errno.ENOSPC, f"No space left for {nbytes:,} bytes ({cap:,} available)", path)


def model_bytes(model) -> int:
    """What a model's saved file needs, about: its weights plus room for the config and the archive."""
    return int(sum(int(getattr(w, "size", 0) or 0) * 4 for w in model.weights) * 1.1) + (1 << 20)


def no_space(e: BaseException) -> str:
    """The file a write failed on for lack of space (a full disk, a quota, a file-size limit), else ""."""
    if not isinstance(e, OSError):
        return ""
    text = str(e)
    code = e.errno if e.errno is not None else next(
        (int(m) for m in re.findall(r"errno = (\d+)", text)), None)  # h5py puts the errno in its message
    if code not in NO_SPACE and "No space left" not in text:
        return ""
    name = e.filename or next(iter(re.findall(r"filename = '([^']+)'", text)), "")
    return name or "a file"


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
