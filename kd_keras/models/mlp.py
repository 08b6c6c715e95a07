"""Fully connected networks: the MNIST teacher and student of Hinton et al."""

from __future__ import annotations

import keras

from kd_keras.models.preprocessing import image_input, preprocess
from kd_keras.models.registry import register_model


@register_model(role="student")
def mlp(num_classes, input_shape, hidden=(800, 800), dropout=0.0, input_dropout=0.0):
    """ReLU layers of `hidden` units on the flattened image in [0, 1], then logits.

    Hinton, Vinyals & Dean, Distilling the Knowledge in a Neural Network
    (NIPS 2014 workshop, https://arxiv.org/abs/1503.02531), MNIST: a
    2x1200 teacher trained with dropout (0.2 on the input, 0.5 on hidden
    units), a 2x800 student, and transfer at T = 20. Hidden outputs are
    named `fc{i}_out` for feature losses.

    Args:
        hidden: units per hidden layer.
        dropout: dropout after each hidden layer.
        input_dropout: dropout on the input pixels.
    """
    inputs = image_input(input_shape)
    x = keras.layers.Flatten(name="flatten")(preprocess(inputs, None, "unit", channels=input_shape[-1]))
    if input_dropout:
        x = keras.layers.Dropout(input_dropout, name="input_dropout")(x)
    for i, units in enumerate(hidden, start=1):
        x = keras.layers.Dense(int(units), activation="relu", name=f"fc{i}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"fc{i}_dropout")(x)
        x = keras.layers.Identity(name=f"fc{i}_out")(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, name="logits")(x), name="mlp")
