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


def train_digits_classifier(path, epochs=6):
    """A small CNN trained for a few seconds on the embedded digits (distinct logits), saved to `path`.

    Returns 64 training images for checks.
    """
    from kd_keras import Distiller
    from kd_keras.data import load
    from kd_keras.models import create_model

    splits = load("digits")
    x = np.stack([a for a, _ in splits.train.as_numpy_iterator()])
    y = np.eye(10, dtype="float32")[[b for _, b in splits.train.as_numpy_iterator()]]
    keras.utils.set_random_seed(0)
    model = create_model("small_cnn", 10, (8, 8, 1), widths=(8, 16))
    distiller = Distiller(model)
    distiller.compile(keras.optimizers.Adam(3e-3), keras.losses.CategoricalCrossentropy(from_logits=True))
    distiller.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    model.save(path)
    return x[:64]
