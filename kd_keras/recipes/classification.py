"""Image classification recipe.

Usage:
    python -m kd_keras.recipes.classification [--config NAME|FILE.toml]
        [--teacher FILE] [--student NAME|FILE] [--data PATH] [--pairs N]
        [--set key=value ...] [--out DIR] [--export [MODES]] [--smoke] [--overwrite]

With no arguments it runs `recipes/fashion_mnist_small.toml`, offline: the
Fashion-MNIST subset and the ResNet-20 teacher shipped inside kd_keras, three
pairs of students (KD and a baseline from the same start), and the KD student
exported to int8 TFLite. `--config digits` is the fastest smoke run.
"""

import sys

from kd_keras.recipes.cli import default_config_path, main

DEFAULT = "fashion_mnist_small.toml"

if __name__ == "__main__":
    sys.exit(main("classification", default_config_path(DEFAULT)))
