"""Every registered model builds, eats raw images and round-trips its weights."""

import keras
import numpy as np
import pytest

from kd_keras.models import create_model, list_models, model_role

# Keras applications need >= 32 px; BiT and EfficientNet default to 224/300.
SMALL = {"image_size": 32}


def options(name):
    return SMALL if name.startswith(("bit", "efficientnet", "mobilenet", "resnet50", "resnet101")) else {}


@pytest.mark.parametrize("name", list_models(task="classification"))
def test_model_builds_runs_and_round_trips_weights(name, tmp_path):
    keras.utils.set_random_seed(0)
    model = create_model(name, 5, (16, 16, 3), **options(name))
    x = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    out = model(x, training=False).numpy()
    assert out.shape == (2, 5) and np.isfinite(out).all()
    assert model.get_layer("logits").activation.__name__ == "linear"
    path = str(tmp_path / f"{name}.weights.h5")
    model.save_weights(path)
    keras.utils.set_random_seed(1)
    fresh = create_model(name, 5, (16, 16, 3), weights=path, **options(name))
    np.testing.assert_allclose(fresh(x, training=False).numpy(), out, rtol=1e-4, atol=1e-4)


def test_roles_cover_teachers_and_students():
    assert {"resnet18", "resnet34", "resnet50", "resnet101", "resnet20", "resnet56", "resnet110",
            "resnet8x4", "resnet32x4", "bit_m_r50x1"} <= set(list_models())
    assert {"mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0", "efficientnet_b3",
            "small_cnn"} <= set(list_models(role="student"))
    assert model_role("bit_m_r50x1") == "teacher"
    assert list_models("resnet1*") == ["resnet101", "resnet110", "resnet18"]


def test_grey_input_feeds_rgb_model_and_student_reloads_without_kd_keras(tmp_path):
    model = create_model("mobilenet_v2", 3, (8, 8, 1), alpha=0.35)
    assert model.inputs[0].shape[1:] == (8, 8, 1)
    x = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 1)).astype("float32")
    assert model(x).shape == (2, 3)
    path = str(tmp_path / "m.keras")
    model.save(path)
    # Built only from Keras layers: loads with no custom objects.
    loaded = keras.models.load_model(path, custom_objects={})
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-5)


def test_keras_resnet_gets_caffe_preprocessing_in_graph():
    model = create_model("resnet50", 2, (32, 32, 3))
    conv = model.get_layer("caffe_bgr")
    pixel = np.array([[[[10.0, 20.0, 30.0]]]], "float32")
    out = conv(pixel).numpy().ravel()
    np.testing.assert_allclose(out, [30 - 103.939, 20 - 116.779, 10 - 123.68], rtol=1e-5)


def test_mobilenet_alpha_changes_width():
    full = create_model("mobilenet_v2", 10, (32, 32, 3)).count_params()
    half = create_model("mobilenet_v2", 10, (32, 32, 3), alpha=0.5).count_params()
    assert half < full / 2


@pytest.mark.parametrize("name", ["mobilenet_v2", "mobilenet_v3_small"])
def test_mobilenet_batchnorm_statistics_follow_a_short_run(name, tmp_path):
    # keras.applications' BN momentum 0.999 left a 5-epoch MobileNetV2 at chance on the test split.
    model = create_model(name, 3, (32, 32, 3), image_size=32)
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(bns) > 10 and {layer.momentum for layer in bns} == {0.99}
    x = np.random.default_rng(0).uniform(0, 255, (16, 32, 32, 3)).astype("float32")
    y = np.arange(16) % 3
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = keras.ops.convert_to_numpy(bns[0].moving_mean)
    model.fit(x, y, batch_size=16, epochs=20, verbose=0)  # 20 steps: 1 - 0.99**20 = 18% of the way
    batch_mean = keras.ops.convert_to_numpy(keras.ops.mean(
        keras.Model(model.input, bns[0].input)(x, training=False), axis=(0, 1, 2)))
    moved = np.abs(keras.ops.convert_to_numpy(bns[0].moving_mean) - before).mean()
    assert moved > 0.1 * np.abs(batch_mean - before).mean()
    path = tmp_path / "m.keras"
    model.save(path)
    assert {layer.momentum for layer in keras.saving.load_model(path).layers
            if isinstance(layer, keras.layers.BatchNormalization)} == {0.99}
    with pytest.raises(ValueError, match="bn_momentum must be in"):
        create_model(name, 3, (32, 32, 3), image_size=32, bn_momentum=1.5)


def test_bad_model_arguments():
    with pytest.raises(ValueError, match=r"unknown model 'resnet19'; registered models: .*resnet18"):
        create_model("resnet19", 10, (32, 32, 3))
    with pytest.raises(ValueError, match="unknown option\\(s\\) alpah"):
        create_model("mobilenet_v2", 10, (32, 32, 3), alpah=0.5)
    with pytest.raises(ValueError, match="alpha must be one of"):
        create_model("mobilenet_v2", 10, (32, 32, 3), alpha=0.6)
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
        create_model("small_cnn", 1, (32, 32, 3))
    with pytest.raises(ValueError, match="has no 'imagenet' weights"):
        create_model("small_cnn", 10, (32, 32, 3), weights="imagenet")
    with pytest.raises(FileNotFoundError, match="weights file 'nope.keras' for model 'small_cnn' does not exist"):
        create_model("small_cnn", 10, (32, 32, 3), weights="nope.keras")


def test_mismatched_weights_file_is_explained(tmp_path):
    path = str(tmp_path / "ten.weights.h5")
    create_model("small_cnn", 10, (16, 16, 3)).save_weights(path)
    with pytest.raises(ValueError, match="does not fit model 'small_cnn'.*same architecture, num_classes"):
        create_model("small_cnn", 5, (16, 16, 3), weights=path)


def test_weights_of_a_network_run_at_another_size_are_refused(tmp_path):
    path = str(tmp_path / "at48.keras")
    create_model("resnet18", 10, (32, 32, 3), width=0.125, small_input=False, image_size=48).save(path)
    with pytest.raises(ValueError, match=r"runs at 48x48 px, but model 'resnet18' runs at 32x32; set image_size=48"):
        create_model("resnet18", 10, (32, 32, 3), width=0.125, small_input=False, weights=path)
    with pytest.raises(ValueError, match=r"runs at 48x48 px, but model 'resnet18' runs at 64x64; set image_size=48"):
        create_model("resnet18", 10, (64, 64, 3), width=0.125, small_input=False, weights=path)
    same = create_model("resnet18", 10, (24, 24, 3), width=0.125, small_input=False, image_size=48, weights=path)
    assert same.get_layer("resize").get_config()["height"] == 48  # another input size, same network: loads


def _hub_name(layer: str, index: int) -> str:
    """The bit_tf2 / TF-Hub variable path of one of our BiT weights (inverse of the loader's table)."""
    gn = "gamma" if index == 0 else "beta"
    if layer == "root_conv":
        return "resnet/root_block/standardized_conv2d/kernel"
    if layer == "pre_head_gn":
        return f"resnet/group_norm/{gn}"
    block, unit, part = layer.split("_", 2)
    prefix = f"resnet/{block}/{unit}"
    return {"proj": f"{prefix}/a/proj/standardized_conv2d/kernel",
            "conv1": f"{prefix}/a/standardized_conv2d/kernel", "preact_gn": f"{prefix}/a/group_norm/{gn}",
            "gn1": f"{prefix}/b/group_norm/{gn}", "conv2": f"{prefix}/b/standardized_conv2d/kernel",
            "gn2": f"{prefix}/c/group_norm/{gn}", "conv3": f"{prefix}/c/standardized_conv2d/kernel"}[part]


def test_bit_loads_a_tfhub_savedmodel_folder(tmp_path):
    """A SavedModel with bit_tf2 variable names (as TF-Hub's BiT-M) loads into the registry BiT, head excluded."""
    import tensorflow as tf

    source = create_model("bit_m_r50x1", 5, (32, 32, 3))
    rng = np.random.default_rng(0)
    hub = tf.Module()
    hub.vars, expected = [], {}
    for layer in source.layers:
        if not layer.weights or layer.name == "logits":
            continue
        for i, w in enumerate(layer.get_weights()):
            value = rng.normal(size=w.shape).astype("float32")
            hub.vars.append(tf.Variable(value, name=_hub_name(layer.name, i)))
            expected[(layer.name, i)] = value
    hub.vars.append(tf.Variable(np.zeros((2048, 21843), "float32"), name="resnet/head/conv2d/kernel"))
    tf.saved_model.save(hub, str(tmp_path / "bit_hub"))

    model = create_model("bit_m_r50x1", 5, (32, 32, 3), weights=str(tmp_path / "bit_hub"))
    for (name, i), value in expected.items():
        np.testing.assert_array_equal(model.get_layer(name).get_weights()[i], value)
    assert np.isfinite(model(np.zeros((1, 32, 32, 3), "float32")).numpy()).all()
    with pytest.raises(ValueError, match="only bit_m_r50x1, bit_resnet load a weights folder"):
        create_model("resnet18", 5, (32, 32, 3), weights=str(tmp_path / "bit_hub"))


def test_bit_resnet_is_a_smaller_bit_and_checks_its_width():
    model = create_model("bit_resnet", 10, (28, 28, 1))
    assert model.count_params() == 3_503_018  # R26x0.5, against R50x1's 23.5 M
    assert model.get_layer("block4_unit02_out").output.shape[-1] == 1024
    assert model(np.zeros((2, 28, 28, 1), "float32")).shape == (2, 10)
    deeper = create_model("bit_resnet", 10, (32, 32, 3), blocks=(1, 1, 1), width=1)
    assert deeper.get_layer("block3_out").output.shape[-1] == 1024 and "block4_out" not in [
        layer.name for layer in deeper.layers]
    with pytest.raises(ValueError, match=r"bit_resnet width must make 256 \* width a multiple of 128"):
        create_model("bit_resnet", 10, (32, 32, 3), width=0.3)
    with pytest.raises(ValueError, match="bit_resnet blocks must be 1 to 4 positive unit counts"):
        create_model("bit_resnet", 10, (32, 32, 3), blocks=(2, 0))


def test_basic_resnet_width_scales_every_stage_and_is_checked():
    half = create_model("resnet34", 10, (64, 64, 3), width=0.5, small_input=False)
    assert half.count_params() == 5_338_858  # ResNet-34 x0.5: the Tiny ImageNet subset's teacher
    assert [half.get_layer(f"stage{i}_out").output.shape[-1] for i in (1, 2, 3, 4)] == [32, 64, 128, 256]
    assert half.get_layer("stem_conv").kernel.shape == (7, 7, 3, 32)
    full = create_model("resnet18", 10, (64, 64, 3), small_input=False)
    assert full.count_params() == 11_191_242  # the default is still ResNet-18
    assert half(np.zeros((2, 64, 64, 3), "float32")).shape == (2, 10)
    with pytest.raises(ValueError, match=r"ResNet width must be in \(0, 4\], got 0"):
        create_model("resnet18", 10, (64, 64, 3), width=0)
