"""Super-resolution recipe.

Usage:
    python -m kd_keras.recipes.super_resolution [--config recipes/NAME.toml]
        [--set key=value ...] [--data PATH] [--out DIR] [--smoke] [--overwrite]
    python -m kd_keras.recipes.super_resolution --predict IMAGE --out sr.png [--model MODEL.keras]

With no arguments it runs `recipes/sr_skimage.toml` (x2) on the photographs
bundled with scikit-image, offline. `recipes/sr_t91.toml` trains on T91 and
tests on Set5 and Set14.
"""

import sys

from kd_keras.recipes.cli import default_config_path, main

if __name__ == "__main__":
    sys.exit(main("super_resolution", default_config_path("sr_skimage.toml")))
