"""Every teacher shipped under saved_models/ loads and scores above a stated floor on the shared data.

Each floor sits a little below the metric in the model card, measured on the
same split with the recipe's protocol; a broken file, a swapped file or an
input-pipeline change that hurts the teacher falls below it. Skipped when
../shared/data is absent.
"""


import keras
import numpy as np
import pytest

import kd_keras  # noqa: F401  (registers the custom layers)
from kd_keras.config import REPO_ROOT
from kd_keras.data.images import list_images, read_image
from kd_keras.data.sources import load
from kd_keras.tasks.super_resolution import SuperResolutionTask

SHARED = REPO_ROOT.parent / "shared" / "data"
SAVED = REPO_ROOT / "saved_models"


def top1_on_test(data, image_size=None, source="npz"):
    """Top-1 on the test split, read and resized by the recipes' own loader."""

    def score(model):
        splits = load(source, str(SHARED / data), image_size=image_size)
        hits = [np.argmax(model.predict_on_batch(x), -1) == np.asarray(y) for x, y in splits.test.batch(250)]
        return float(np.mean(np.concatenate(hits)))

    return score


def set5_psnr(model):
    """Set5 PSNR at x2, scored by the super-resolution task's own evaluation (Y channel, 2 px shaved)."""
    examples = [(f.stem, read_image(f)) for f in list_images(SHARED / "sr" / "Set5", "Set5")]
    return SuperResolutionTask().evaluate(model, {"Set5": examples})["psnr"]


# file -> (data it needs, scorer, floor, card's figure)
TEACHERS = {
    "cifar10_small_resnet56.keras": ("cifar10_small.npz", top1_on_test("cifar10_small.npz"), 0.77, "78.10% top-1"),
    "fashion_mnist_bit_mobilenetv3_bit_resnet.keras": (
        "fashion_mnist_small.npz", top1_on_test("fashion_mnist_small.npz", 32), 0.875, "88.75% top-1"),
    "sr_t91_edsr_baseline.keras": ("sr", set5_psnr, 36.8, "Set5 36.94 dB"),
    "mnist_kd_mlp_teacher.keras": ("mnist_small.npz", top1_on_test("mnist_small.npz"), 0.978, "98.20% top-1"),
    "tiny_imagenet_resnet50_resnet34.keras": (
        "tiny_imagenet_subset", top1_on_test("tiny_imagenet_subset", source="tiny_imagenet"), 0.75, "77.40% top-1"),
}


def test_every_shipped_teacher_has_a_floor_and_a_model_card():
    files = sorted(p.name for p in SAVED.glob("*.keras"))
    assert files, "no teacher shipped under saved_models/"
    assert sorted(TEACHERS) == files
    for name in files:
        card = (SAVED / name).with_suffix(".md")
        assert card.exists(), f"{name} has no model card"
        assert TEACHERS[name][3] in card.read_text(), f"the card of {name} does not state {TEACHERS[name][3]}"
        assert (SAVED / name).stat().st_size <= 25 * 2**20


@pytest.mark.parametrize("name", sorted(TEACHERS))
def test_shipped_teacher_scores_above_its_floor(name):
    data, score, floor, _ = TEACHERS[name]
    if not (SHARED / data).exists():
        pytest.skip(f"shared data {data} not present (../shared/data)")
    model = keras.saving.load_model(SAVED / name, compile=False)
    assert score(model) > floor
