"""Packs the repository's recipes/*.toml into the wheel as kd_keras/recipe_files (see kd_keras/recipes/catalog.py).

Everything else is declared in pyproject.toml.
"""

import glob
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithRecipes(build_py):
    """build_py, plus a copy of the shipped recipes: one source (recipes/), no copies kept by hand."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):  # an editable install reads recipes/ in place
            return
        target = os.path.join(self.build_lib, "kd_keras", "recipe_files")
        os.makedirs(target, exist_ok=True)
        for path in sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)), "recipes", "*.toml"))):
            shutil.copy(path, target)


setup(cmdclass={"build_py": BuildWithRecipes})
