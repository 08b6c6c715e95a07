import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402


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
    distiller = Distiller(student=model)
    distiller.compile(keras.optimizers.Adam(3e-3), keras.losses.CategoricalCrossentropy(from_logits=True))
    distiller.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    model.save(path)
    return x[:64]


# ---------------------------------------------------------- dataset folders in official layouts
WNIDS = ["n01443537", "n02099712"]


def _image(path, grey=False, size=64, value=0):
    rng = np.random.default_rng(value)
    shape = (size, size) if grey else (size, size, 3)
    Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(path)


def make_tiny_imagenet(root, per_class=3):
    (root / "val" / "images").mkdir(parents=True)
    (root / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    (root / "words.txt").write_text("n01443537\tgoldfish, Carassius auratus\nn02099712\tLabrador retriever\n")
    for i, w in enumerate(WNIDS):
        folder = root / "train" / w / "images"
        folder.mkdir(parents=True)
        for j in range(per_class):
            _image(folder / f"{w}_{j}.JPEG", grey=(j == 0), value=10 * i + j)
    lines = []
    for k in range(4):
        _image(root / "val" / "images" / f"val_{k}.JPEG", value=100 + k)
        lines.append(f"val_{k}.JPEG\t{WNIDS[k % 2]}\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return root


def make_mhist(root, n=8):
    (root / "images").mkdir(parents=True)
    rows = ["Image Name,Majority Vote Label,Number of Annotators who Selected SSA,Partition"]
    for k in range(n):
        _image(root / "images" / f"MHIST_{k:03d}.png", size=32, value=k)
        rows.append(f"MHIST_{k:03d}.png,{'SSA' if k % 3 == 0 else 'HP'},{5 if k % 3 == 0 else 1},"
                    f"{'test' if k >= n - 3 else 'train'}")
    (root / "annotations.csv").write_text("\n".join(rows) + "\n")
    return root


def load_benchmark(name: str):
    """Imports `benchmarks/<name>.py` as a module (the benchmarks are scripts, not a package)."""
    import importlib.util

    from kd_keras.config import REPO_ROOT

    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
