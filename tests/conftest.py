import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


def tiny_classifier(num_classes=3, input_shape=(8, 8, 3), filters=4, name="tiny", dropout=0.0, bn=True):
    """A few-filter CNN with named layers, for fast Distiller tests."""
    inputs = keras.Input(input_shape, name="image")
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(filters, 3, padding="same", name="conv1")(x)
    if bn:
        x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU(name="feat")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    if dropout:
        x = keras.layers.Dropout(dropout)(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, name="logits")(x), name=name)


@pytest.fixture
def toy_data():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (64, 8, 8, 3)).astype("float32")
    labels = (x[..., 0].mean(axis=(1, 2)) > 127).astype("int32") + (x[..., 1].mean(axis=(1, 2)) > 127)
    y = np.eye(3, dtype="float32")[labels]
    return x, y
