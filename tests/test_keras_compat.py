"""kd_keras.Distiller as a drop-in for keras.distillation.Distiller: Keras' own tests, subclassed models, both loss kinds."""

import types
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import tiny_classifier

import kd_keras
from kd_keras import Distiller
from kd_keras.losses import FitNetsLoss, KDLoss

KERAS_TEST = Path(keras.__file__).parent / "src" / "distillation" / "distiller_test.py"
KERAS_IMPORT = "from keras.src.distillation.distiller import Distiller\n"


def _keras_distiller_tests():
    """Keras' distiller_test.py with only its import of the class under test swapped for kd_keras.Distiller."""
    if not KERAS_TEST.exists():
        return None
    source = KERAS_TEST.read_text()
    if KERAS_IMPORT not in source:
        raise AssertionError(f"{KERAS_TEST} no longer imports the class under test as {KERAS_IMPORT.strip()!r}; "
                             f"update KERAS_IMPORT in this file.")
    module = types.ModuleType("keras_distiller_test_on_kd_keras")
    module.__file__ = str(KERAS_TEST)
    exec(compile(source.replace(KERAS_IMPORT, "from kd_keras import Distiller\n"), str(KERAS_TEST), "exec"),
         module.__dict__)
    assert module.Distiller is kd_keras.Distiller
    return module.TestDistiller


_KerasTests = _keras_distiller_tests()
if _KerasTests is not None:
    class TestKerasOwnDistillerTests(_KerasTests):
        """All of Keras' own Distiller tests, run against kd_keras.Distiller."""
    del _KerasTests  # collected once, under the name above
else:
    def test_keras_own_distiller_tests():
        pytest.skip(f"the installed Keras ({keras.__version__}) has no {KERAS_TEST}")


@keras.saving.register_keras_serializable(package="kd_keras_tests")
class SubclassedNet(keras.Model):
    """A model written the most common way: layers in __init__, a call method, no symbolic outputs."""

    def __init__(self, classes=3, width=8, **kwargs):
        super().__init__(**kwargs)
        self.classes, self.width = classes, width
        self.conv = keras.layers.Conv2D(width, 3, padding="same", activation="relu")
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.head = keras.layers.Dense(classes)

    def call(self, inputs, training=None):
        return self.head(self.pool(self.conv(inputs / 255.0)))

    def get_config(self):
        return {**super().get_config(), "classes": self.classes, "width": self.width}


def test_subclassed_teacher_and_student_train_evaluate_save_and_reload(toy_data, tmp_path):
    x, y = toy_data
    keras.utils.set_random_seed(0)
    teacher, student = SubclassedNet(width=16, name="teacher"), SubclassedNet(width=4, name="student")
    d = Distiller(teacher=teacher, student=student, distillation_losses="kd", student_loss_weight=0.5)
    d.compile("adam", keras.losses.CategoricalCrossentropy(from_logits=True), metrics=["categorical_accuracy"])
    before = [w.numpy().copy() for w in teacher.weights]
    history = d.fit(x, y, batch_size=16, epochs=2, verbose=0)
    assert {"loss", "total_loss", "student_loss", "distillation_loss"} <= set(history.history)
    assert history.history["distillation_loss"][-1] > 0
    assert all(np.array_equal(a, b.numpy()) for a, b in zip(before, teacher.weights))  # the teacher stays frozen
    logs = d.evaluate(x, y, verbose=0, return_dict=True)
    assert np.isfinite(logs["total_loss"]) and 0.0 <= logs["categorical_accuracy"] <= 1.0
    path = tmp_path / "student.keras"
    d.student.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), student.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    d.save(tmp_path / "distiller.keras")
    reloaded = keras.models.load_model(tmp_path / "distiller.keras")
    assert isinstance(reloaded, Distiller) and reloaded.student_loss_weight == 0.5
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), student.predict(x, verbose=0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_sequential_and_functional_models_distil_with_a_feature_loss(toy_data, kind):
    x, y = toy_data

    def net(width, name):
        layers = [keras.Input((8, 8, 3)), keras.layers.Conv2D(width, 3, padding="same", name="feat"),
                  keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, name="logits")]
        if kind == "sequential":
            return keras.Sequential(layers, name=name)
        out = layers[0]
        for layer in layers[1:]:
            out = layer(out)
        return keras.Model(layers[0], out, name=name)

    d = Distiller(teacher=net(8, "t"), student=net(4, "s"),
                  distillation_losses=[KDLoss(4.0), FitNetsLoss("feat", "feat")], distillation_loss_weights=[1.0, 0.5])
    d.compile("adam", keras.losses.CategoricalCrossentropy(from_logits=True))
    history = d.fit(x, y, batch_size=32, epochs=1, verbose=0)
    assert np.isfinite(history.history["total_loss"][0]) and history.history["distillation_loss"][0] > 0


def test_kd_loss_and_keras_logits_distillation_go_through_either_distiller(toy_data):
    """Our KDLoss in Keras' Distiller, Keras' LogitsDistillation in ours: the same distillation term either way."""
    x, y = toy_data
    labels = y.argmax(-1)
    teacher, student = tiny_classifier(name="t", filters=8), tiny_classifier(name="s")
    ours = KDLoss(2.0)
    # Keras' LogitsDistillation given a KLDivergence instance (its "kl_divergence" string default skips the softmax).
    theirs = keras.distillation.LogitsDistillation(temperature=2.0, loss=keras.losses.KLDivergence())
    values, distillers = {}, []
    for name, cls, loss in [("keras+kd", keras.distillation.Distiller, ours),
                            ("ours+keras", Distiller, theirs), ("ours+kd", Distiller, ours)]:
        d = cls(teacher=teacher, student=student, distillation_losses=loss, student_loss_weight=0.0)
        d.compile("adam", loss="sparse_categorical_crossentropy" if cls is not Distiller
                  else keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        d.compute_loss(x[:16], labels[:16], student(x[:16]))
        values[name] = float(d.distillation_loss_tracker.result())
        distillers.append(d)
    for d in distillers:  # each trains too (after every value above was taken from the same student)
        assert np.isfinite(d.fit(x[:16], labels[:16], epochs=1, verbose=0).history["total_loss"][0])
    assert values["ours+kd"] > 0
    np.testing.assert_allclose(values["keras+kd"], values["ours+kd"], rtol=1e-5)
    # A KLDivergence instance makes Keras soften both sides and scale by T^2: Hinton's term, as ours.
    np.testing.assert_allclose(values["ours+keras"], values["ours+kd"], rtol=1e-4)


def test_parent_spellings_and_old_spellings_and_their_mistakes():
    t, s = tiny_classifier(name="t"), tiny_classifier(name="s")
    one = Distiller(teacher=t, student=s, distillation_losses=KDLoss(4.0))
    assert len(one.distillation_losses) == 1 and one.distillation_loss_weights == [1.0]
    old = Distiller(t, s, losses=["kd", "dist"], loss_weights=[1.0, 2.0])
    assert old.distillation_loss_weights == [1.0, 2.0] and old.get_config()["distillation_loss_weights"] == [1.0, 2.0]
    config = old.get_config()
    assert {"teacher", "student", "distillation_losses", "distillation_loss_weights", "student_loss_weight"} <= set(
        config)
    legacy = {**config, "losses": config.pop("distillation_losses"), "loss_weights": config.pop(
        "distillation_loss_weights")}
    assert Distiller.from_config(legacy).distillation_loss_weights == [1.0, 2.0]  # configs saved before the rename
    with pytest.raises(ValueError, match=r"^both distillation_losses and losses were given; pass distillation_losses "
                                         r"only \(losses is its older spelling\)\.$"):
        Distiller(teacher=t, student=s, distillation_losses="kd", losses=["kd"])
    with pytest.raises(ValueError, match=r"^distillation_loss_weights has 1 entries for 2 distillation losses; "
                                         r"give one weight per loss\.$"):
        Distiller(teacher=t, student=s, distillation_losses=["kd", "dist"], distillation_loss_weights=[1.0])
    with pytest.raises(ValueError, match=r"^no student given: Distiller takes the teacher first"):
        Distiller(s)  # kd_keras' old baseline spelling, student first


@pytest.mark.parametrize("role", ["teacher", "student"])
def test_a_feature_loss_on_a_subclassed_model_is_one_line(role):
    functional = tiny_classifier(name="f")
    sub = SubclassedNet(name="sub")
    sub(np.zeros((1, 8, 8, 3), "float32"))
    t, s = (sub, functional) if role == "teacher" else (functional, sub)
    with pytest.raises(ValueError) as e:
        Distiller(teacher=t, student=s, distillation_losses=[FitNetsLoss("feat", "feat")])
    message = str(e.value)
    assert "\n" not in message and message.startswith(f"FitNetsLoss reads layer 'feat' of the {role} 'sub'")
    assert "build the " + role + " as a Functional or Sequential model" in message


def test_library_mistakes_are_one_line_each(toy_data):
    import tensorflow as tf

    x, y = toy_data
    t, s = tiny_classifier(name="t"), tiny_classifier(name="s")
    with pytest.raises(ValueError, match=r"^teacher and student are the same model object \('t'\)"):
        Distiller(teacher=t, student=t, distillation_losses="kd")
    probs = keras.Model(t.input, keras.layers.Softmax(name="probs")(t.output), name="soft")
    with pytest.raises(ValueError, match=r"^the teacher 'soft' ends in a softmax \(layer 'probs'\)"):
        Distiller(teacher=probs, student=s, distillation_losses="kd")
    dense_soft = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(),
                                   keras.layers.Dense(3, activation="softmax", name="head")], name="seq")
    with pytest.raises(ValueError, match=r"^the student 'seq' ends in a softmax \(layer 'head'\)"):
        Distiller(teacher=t, student=dense_soft, distillation_losses="kd")
    d = Distiller(teacher=t, student=s, distillation_losses="kd")
    d.compile("adam", keras.losses.CategoricalCrossentropy(from_logits=True))
    dicts = tf.data.Dataset.from_tensor_slices({"image": x, "label": y}).batch(16)
    with pytest.raises(ValueError, match=r"training batches must be \(x, y\) or \(x, y, teacher_outputs\) tuples, "
                                         r"got one element with keys image, label and no labels"):
        d.fit(dicts, epochs=1, verbose=0)
