"""The import paths of kd_keras 0.1 that moved in 0.2 (CHANGELOG.md), kept working through 0.2.x.

`import kd_keras.teacher_cache` (or `from kd_keras.file_teacher import ...`) imports the module from its new home
and warns once with a DeprecationWarning naming it; the old paths go in 0.3.0. `kd_keras.cli`, a module in 0.1,
is a package now: its 0.1 names come from `kd_keras.cli.errors` (`kd_keras/cli/__init__.py`).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

MOVED = {
    "kd_keras.callbacks": "kd_keras.training.callbacks",
    "kd_keras.config_schema": "kd_keras.config.schema",
    "kd_keras.dataspec": "kd_keras.config.dataspec",
    "kd_keras.file_teacher": "kd_keras.teachers.files",
    "kd_keras.interrupt": "kd_keras.training.interrupt",
    "kd_keras.precise_bn": "kd_keras.training.precise_bn",
    "kd_keras.precision": "kd_keras.training.precision",
    "kd_keras.quiet": "kd_keras.cli.quiet",
    "kd_keras.recipes.catalog": "kd_keras.config.catalog",
    "kd_keras.recipes.lock": "kd_keras.cli.lock",
    "kd_keras.recipes.teacher_source": "kd_keras.teachers.source",
    "kd_keras.recipes.training": "kd_keras.training.optim",
    "kd_keras.report": "kd_keras.benchmark.report",
    "kd_keras.runtimes": "kd_keras.models.runtimes",
    "kd_keras.teacher_cache": "kd_keras.teachers.cache",
    "kd_keras.teacher_maps": "kd_keras.teachers.maps",
    "kd_keras.teacher_views": "kd_keras.teachers.views",
}


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old path and hands back the module at its new path (the same module object, not a copy)."""

    def find_spec(self, name, path=None, target=None):
        return importlib.util.spec_from_loader(name, self) if name in MOVED else None

    def create_module(self, spec):
        new = MOVED[spec.name]
        warnings.warn(f"{spec.name} moved to {new} in kd_keras 0.2; import it from there (the old path goes in "
                      f"0.3.0).", DeprecationWarning, stacklevel=3)
        module = importlib.import_module(new)
        self._spec = module.__spec__
        return module

    def exec_module(self, module):
        module.__spec__ = self._spec  # the import system set the old path's spec on the module: give it back


def install_moved_modules() -> None:
    """Puts the finder first on `sys.meta_path`, once: it answers only the old paths, which no file holds in 0.2
    (first, so that a stale copy of 0.1 that another finder can still see is not imported instead)."""
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _MovedFinder())

