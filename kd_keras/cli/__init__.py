"""Command-line plumbing shared by every `python -m kd_keras...` command: one-line errors and exit codes
(`errors`), the output-folder lock and checks (`lock`), TensorFlow's start-up lines kept quiet (`quiet`), and the
0.1 import paths that moved (`moved`)."""


def __getattr__(name):
    """`from kd_keras.cli import report_user_errors` as in 0.1, when `kd_keras.cli` was one module (now `errors`)."""
    import importlib
    import warnings

    if name.startswith("_") or name in ("errors", "lock", "moved", "quiet"):  # a submodule: the import system's
        raise AttributeError(f"module 'kd_keras.cli' has no attribute {name!r}")
    errors = importlib.import_module("kd_keras.cli.errors")
    if not hasattr(errors, name):
        raise AttributeError(f"module 'kd_keras.cli' has no attribute {name!r}")
    warnings.warn(f"kd_keras.cli.{name} moved to kd_keras.cli.errors.{name} in kd_keras 0.2; import it from there "
                  f"(the old path goes in 0.3.0).", DeprecationWarning, stacklevel=2)
    return getattr(errors, name)
