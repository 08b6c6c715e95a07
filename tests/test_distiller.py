"""The one training loop: freezing, baseline parity, cached teacher outputs, config."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_classifier

from kd_keras import Distiller
from kd_keras.losses import ATLoss, FitNetsLoss, KDLoss

CE = keras.losses.CategoricalCrossentropy(from_logits=True)


def compiled(distiller, lr=0.05):
    distiller.compile(keras.optimizers.SGD(lr), CE, metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
    return distiller


def weights_of(model):
    return [w.numpy().copy() for w in model.weights]


def test_teacher_is_frozen_and_runs_in_inference_mode(toy_data):
    x, y = toy_data
    keras.utils.set_random_seed(0)
    teacher = tiny_classifier(dropout=0.5, name="teacher")
    before = weights_of(teacher)
    bn = teacher.get_layer("bn1")
    mean_before = bn.moving_mean.numpy().copy()
    student = tiny_classifier(name="student")
    student_before = weights_of(student)
    d = compiled(Distiller(teacher, student, [KDLoss(2.0)]))
    d.fit(x, y, batch_size=16, epochs=2, verbose=0)
    for a, b in zip(before, weights_of(teacher)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(mean_before, bn.moving_mean.numpy())
    assert not teacher.trainable
    assert not any(np.array_equal(a, b) for a, b in zip(student_before, weights_of(student)) if a.ndim == 4)
    # Only student (and loss-layer) variables train.
    assert {id(v) for v in d.trainable_variables} == {id(v) for v in student.trainable_variables}


def test_teacher_bn_uses_moving_statistics(toy_data):
    """The distillation term must equal KD against teacher(x, training=False)."""
    x, y = toy_data
    teacher = tiny_classifier(dropout=0.5, name="teacher")
    teacher.get_layer("bn1").moving_mean.assign(np.full(4, 3.0, "float32"))  # far from batch stats
    student = tiny_classifier(name="student")
    d = compiled(Distiller(teacher, student, [KDLoss(2.0)], student_loss_weight=0.0))
    loss = d.compute_loss(x, y, student(x, training=True))
    expected = KDLoss(2.0).compute_loss(teacher(x, training=False), student(x, training=True))
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)


def test_baseline_through_distiller_matches_plain_fit(toy_data):
    x, y = toy_data
    keras.utils.set_random_seed(1)
    a = tiny_classifier(name="a")
    b = keras.models.clone_model(a)
    b.set_weights(a.get_weights())
    h1 = compiled(Distiller(student=a)).fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    b.compile(keras.optimizers.SGD(0.05), CE, metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
    h2 = b.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h1.history["loss"], h2.history["loss"], rtol=1e-5)
    assert h1.history["distillation_loss"] == [0.0, 0.0]


def test_teacher_outputs_from_batch_equal_live_teacher(toy_data):
    x, y = toy_data
    keras.utils.set_random_seed(2)
    teacher = tiny_classifier(name="teacher", filters=8)
    s1 = tiny_classifier(name="s1")
    s2 = keras.models.clone_model(s1)
    s2.set_weights(s1.get_weights())
    live = compiled(Distiller(teacher, s1, [KDLoss(3.0)]))
    cached = compiled(Distiller(teacher, s2, [KDLoss(3.0)]))
    t_out = teacher.predict(x, verbose=0)
    assert float(live.compute_loss(x, y, s1(x))) == pytest.approx(
        float(cached.compute_loss(x, y, s2(x), teacher_outputs=t_out)), rel=1e-6)
    ds_live = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    ds_cached = tf.data.Dataset.from_tensor_slices((x, y, t_out)).batch(16)
    h1 = live.fit(ds_live, epochs=2, verbose=0)
    h2 = cached.fit(ds_cached, epochs=2, verbose=0)
    np.testing.assert_allclose(h1.history["loss"], h2.history["loss"], rtol=1e-5)
    for a, b in zip(s1.get_weights(), s2.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_loss_is_weighted_sum(toy_data):
    x, y = toy_data
    teacher, student = tiny_classifier(name="t", filters=8), tiny_classifier(name="s")
    d = compiled(Distiller(teacher, student, [KDLoss(2.0), KDLoss(5.0)], [0.3, 2.0], student_loss_weight=0.25))
    pred = student(x)
    t = teacher(x, training=False)
    ce = float(CE(y, pred))
    distill = 0.3 * float(KDLoss(2.0).compute_loss(t, pred)) + 2.0 * float(KDLoss(5.0).compute_loss(t, pred))
    assert float(d.compute_loss(x, y, pred)) == pytest.approx(0.25 * ce + 0.75 * distill, rel=1e-5)


def test_metrics_and_evaluate_measure_student_alone(toy_data):
    x, y = toy_data
    teacher, student = tiny_classifier(name="t", filters=8), tiny_classifier(name="s")
    d = compiled(Distiller(teacher, student, [KDLoss(2.0)]))
    h = d.fit(x, y, batch_size=16, epochs=1, validation_data=(x, y), verbose=0)
    assert {"loss", "student_loss", "distillation_loss", "accuracy", "val_loss", "val_accuracy"} <= set(h.history)
    assert h.history["distillation_loss"][0] > 0
    result = d.evaluate(x, y, verbose=0, return_dict=True)
    assert "distillation_loss" not in result
    acc = np.mean(np.argmax(student.predict(x, verbose=0), -1) == np.argmax(y, -1))
    assert result["accuracy"] == pytest.approx(acc, abs=1e-6)
    assert result["loss"] == pytest.approx(float(CE(y, student(x, training=False))), rel=1e-4)


def test_feature_losses_train_adapter_outside_student(toy_data):
    x, y = toy_data
    teacher = tiny_classifier(name="t", filters=8)
    student = tiny_classifier(name="s", filters=4)
    fit = FitNetsLoss("feat", "feat")
    d = compiled(Distiller(teacher, student, [KDLoss(2.0), fit, ATLoss("feat", "feat")], [1.0, 1.0, 10.0]))
    adapter_before = fit.adapter.get_weights()[0].copy()
    d.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert fit.adapter.kernel.shape == (1, 1, 4, 8)
    assert not np.allclose(adapter_before, fit.adapter.get_weights()[0])
    assert all("fitnets" not in w.path for w in student.weights)
    assert len(d.trainable_variables) == len(student.trainable_variables) + 1


def test_config_round_trip_and_student_saves_alone(toy_data, tmp_path):
    x, y = toy_data
    teacher, student = tiny_classifier(name="t", filters=8), tiny_classifier(name="s")
    d = Distiller(teacher, student, [KDLoss(3.0), ATLoss("feat", "feat", p=1.0)], [0.5, 100.0], 0.2)
    clone = Distiller.from_config(d.get_config())
    assert clone.student_loss_weight == 0.2
    assert clone.distillation_loss_weights == [0.5, 100.0]
    assert [l.get_config() for l in clone.distillation_losses] == [l.get_config() for l in d.distillation_losses]
    assert clone.teacher.name == "t" and clone.student.name == "s"
    compiled(d).fit(x, y, epochs=1, verbose=0)
    path = str(tmp_path / "student.keras")
    d.student.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), student.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    baseline = Distiller.from_config(Distiller(student=tiny_classifier(name="b")).get_config())
    assert baseline.teacher is None and baseline.student_loss_weight == 1.0


def test_bad_arguments_are_explained():
    t, s = tiny_classifier(4, name="t"), tiny_classifier(3, name="s")
    with pytest.raises(ValueError, match="teacher 't' has 4 classes, student 's' has 3; build both with the same"):
        Distiller(t, s, ["kd"])
    t3 = tiny_classifier(3, name="t3")
    with pytest.raises(ValueError, match="between 0.0 and 1.0, got 1.5"):
        Distiller(t3, s, ["kd"], student_loss_weight=1.5)
    with pytest.raises(ValueError, match="without a teacher trains the baseline"):
        Distiller(None, s, ["kd"])
    with pytest.raises(ValueError, match="no distillation losses"):
        Distiller(t3, s, [])
    with pytest.raises(ValueError, match="unknown distillation method 'nope'"):
        Distiller(t3, s, ["nope"])
    with pytest.raises(ValueError, match="student model 's' has no layer 'nope'"):
        Distiller(t3, s, [FitNetsLoss("feat", "nope")])
    with pytest.raises(ValueError, match="distillation_loss_weights has 2 entries for 1 distillation losses"):
        Distiller(t3, s, ["kd"], [1.0, 2.0])
    with pytest.raises(ValueError, match="student_loss_weight=0 trains the student on the teacher's outputs alone, "
                                         "but no teacher was given"):
        Distiller(None, s, student_loss_weight=0.0)
    with pytest.raises(ValueError, match="distill_warmup_steps must be an integer >= 0.*got -3"):
        Distiller(t3, s, ["kd"], distill_warmup_steps=-3)


def test_distillation_warmup_scales_the_term_by_the_optimizer_step(toy_data):
    x, y = toy_data
    teacher, student = tiny_classifier(name="t", filters=8), tiny_classifier(name="s")
    d = compiled(Distiller(teacher, student, [KDLoss(2.0)], student_loss_weight=0.5, distill_warmup_steps=4))
    d.optimizer.build(d.trainable_variables)
    pred = student(x)
    ce, kd = float(CE(y, pred)), float(KDLoss(2.0).compute_loss(teacher(x, training=False), pred))
    for step, factor in ((0, 0.25), (1, 0.5), (3, 1.0), (50, 1.0)):
        d.optimizer.iterations.assign(step)
        assert float(d.compute_loss(x, y, pred)) == pytest.approx(0.5 * ce + 0.5 * factor * kd, rel=1e-5)
    assert Distiller.from_config(d.get_config()).distill_warmup_steps == 4


def test_function_matching_trains_on_the_teacher_alone(toy_data):
    x, y = toy_data
    teacher, student = tiny_classifier(name="t", filters=8), tiny_classifier(name="s")
    d = compiled(Distiller(teacher, student, [KDLoss(1.0)], student_loss_weight=0.0), lr=0.2)
    pred = student(x)
    kd = float(KDLoss(1.0).compute_loss(teacher(x, training=False), pred))
    assert float(d.compute_loss(x, y, pred)) == pytest.approx(kd, rel=1e-5)  # no label term at all
    wrong = np.roll(y, 1, axis=0)  # labels play no part: any labels give the same student
    s2 = tiny_classifier(name="s2")
    s2.set_weights(student.get_weights())
    d2 = compiled(Distiller(teacher, s2, [KDLoss(1.0)], student_loss_weight=0.0), lr=0.2)
    h = d.fit(x, y, batch_size=16, epochs=3, verbose=0, shuffle=False)
    d2.fit(x, wrong, batch_size=16, epochs=3, verbose=0, shuffle=False)
    assert h.history["distillation_loss"][-1] < h.history["distillation_loss"][0]
    for a, b in zip(student.get_weights(), s2.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
