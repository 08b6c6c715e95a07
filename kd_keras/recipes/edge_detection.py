"""Edge-detection recipe.

Usage:
    python -m kd_keras.recipes.edge_detection [--config recipes/NAME.toml]
        [--set key=value ...] [--data PATH] [--out DIR] [--smoke] [--overwrite]
    python -m kd_keras.recipes.edge_detection --predict IMAGE --out edges.png [--model MODEL.keras]

With no arguments it runs `recipes/edges_synthetic.toml` on generated shapes
(synthetic, offline). `recipes/bsds500.toml` runs on the BSDS500 layout.
"""

import sys

from kd_keras.recipes.cli import default_config_path, main

if __name__ == "__main__":
    sys.exit(main("edge_detection", default_config_path("edges_synthetic.toml")))
