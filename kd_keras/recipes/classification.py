"""Image classification recipe.

Usage:
    python -m kd_keras.recipes.classification [--config recipes/NAME.toml]
        [--set key=value ...] [--data PATH] [--out DIR] [--smoke] [--overwrite]

With no arguments it runs `recipes/digits.toml` on scikit-learn's digits,
offline, in a few minutes on 2 CPU cores.
"""

import sys

from kd_keras.recipes.cli import default_config_path, main

if __name__ == "__main__":
    sys.exit(main("classification", default_config_path("digits.toml")))
