"""The classification head shared by every model family."""

from __future__ import annotations

import keras


def classifier(x, num_classes: int, dropout: float = 0.0, pool: bool = True):
    """Global average pool (for a feature map), optional dropout, logits."""
    if pool:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    return keras.layers.Dense(num_classes, name="logits")(x)
