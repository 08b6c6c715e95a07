"""Quiet command lines: TensorFlow's C++ start-up lines and retracing warnings kept out of stderr.

TensorFlow's C++ libraries log through Abseil, which writes every message
logged before `absl::InitializeLog()` straight to stderr, whatever
`TF_CPP_MIN_LOG_LEVEL` says (abseil/abseil-cpp#1718): the oneDNN and CUDA
notices, the CPU-feature notice, a failed `cuInit` on a machine without a
GPU. A user's one-line error would follow four such lines. The kd_keras
command lines (every `python -m kd_keras...`: recipes, export, benchmark,
data.prepare) therefore pass stderr through a filter, at the level
of the file descriptor, so that it also holds for C++ and worker processes,
that drops exactly those lines; everything else (Python's own output,
warnings, errors, other C++ errors) passes unchanged. `--verbose` turns the
filter off. Importing kd_keras as a library changes nothing.
"""

from __future__ import annotations

import atexit
import os
import re
import sys
import threading

CLI_MODULES = ("kd_keras.",)  # every command line: recipes, export, benchmark, data.prepare, models

# Abseil's prefix is "<I|W|E>MMDD <time>  <thread> <file>:<line>] "; before InitializeLog() the time is
# "00:00:<seconds since the epoch>.<micros>", after it "hh:mm:ss.<micros>".
_ABSL = r"[IWE]\d{4} [\d:.]+\s+\d+ [\w.]+:\d+\] "
NOISE = re.compile(
    r"^(?:WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} [\d:.]+\s+\d+ [\w.]+:\d+\] .*"  # every info and warning line
    rf"|{_ABSL}(?:failed call to cuInit|oneDNN supports DT_\w+ only on platforms).*"  # CPU-only machines
    r"|To enable the following instructions: .*in other operations, rebuild TensorFlow.*"
    r"|INFO: Created TensorFlow Lite XNNPACK delegate for CPU\."  # LiteRT, once per interpreter
    r"|fully_quantize: \d+, inference_type: \d+, input_inference_type: \w+, output_inference_type: \w+"  # int8
    r")$"
)


def is_noise(line: str) -> bool:
    """Whether a stderr line is TensorFlow start-up noise (see the module docstring)."""
    return bool(NOISE.match(line.rstrip("\r\n")))


def command_line(orig_argv=None) -> bool:
    """Whether this process is a kd_keras command line (`python -m kd_keras...`)."""
    argv = list(getattr(sys, "orig_argv", []) if orig_argv is None else orig_argv)
    if "-m" not in argv[:-1]:
        return False
    return argv[argv.index("-m") + 1].startswith(CLI_MODULES)


def wanted(orig_argv=None) -> bool:
    """Whether this process is a kd_keras command line run without `--verbose`."""
    argv = list(getattr(sys, "orig_argv", []) if orig_argv is None else orig_argv)
    return command_line(argv) and "--verbose" not in argv


def one_line_interrupt() -> None:
    """Ctrl-C before a command's own handler runs (while TensorFlow imports, say): one line and exit 130, not a
    traceback of the import machinery."""
    previous = sys.excepthook

    def hook(exc_type, exc, tb):
        if not issubclass(exc_type, KeyboardInterrupt):
            return previous(exc_type, exc, tb)
        try:
            sys.stderr.write("interrupted: stopped while starting; nothing was written.\n")
            sys.stderr.flush()
        finally:
            import atexit

            atexit._run_exitfuncs()  # the stderr filter drains before the process ends
            os._exit(130)

    sys.excepthook = hook


def install() -> None:
    """Filters fd 2 through `is_noise` until the process exits; also silences tf.function retracing warnings."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        read, write = os.pipe()
        os.dup2(write, 2)
        os.close(write)
    except OSError:  # no usable stderr (a closed descriptor): nothing to filter
        return

    def pump() -> None:
        with os.fdopen(read, "rb", buffering=0) as source:
            pending = b""
            while chunk := source.read(65536):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                out = b"".join(ln + b"\n" for ln in lines if not is_noise(ln.decode("utf-8", "replace")))
                if out:
                    os.write(saved, out)
            if pending and not is_noise(pending.decode("utf-8", "replace")):
                os.write(saved, pending)

    thread = threading.Thread(target=pump, name="kd_keras-quiet-stderr", daemon=True)
    thread.start()

    def restore() -> None:
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(saved, 2)  # closes the pipe's last writer in this process: the pump drains and ends
        thread.join(timeout=5)

    atexit.register(restore)
    _quiet_python_warnings()


def _quiet_python_warnings() -> None:
    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # "... triggered tf.function retracing" warnings
