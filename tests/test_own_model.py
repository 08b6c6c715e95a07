"""Distil your own model: a .keras teacher of any architecture, a student file, a folder of images, the library call."""

import hashlib
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image

import kd_keras
from kd_keras.config import REPO_ROOT
from kd_keras.losses import KDLoss
from kd_keras.recipes.cli import main
from kd_keras.teachers.cache import FINAL
from kd_keras.teachers.keras_file import load_keras_teacher

SHARED = REPO_ROOT.parent / "shared" / "data"
CIFAR = SHARED / "cifar10_small.npz"
DIGITS = ("classification", str(REPO_ROOT / "recipes" / "digits.toml"))
CLASSES = {0: "airplane", 1: "automobile", 6: "frog"}
needs_shared = pytest.mark.skipif(not CIFAR.exists(), reason="shared CIFAR-10 subset not present (../shared/data)")


def write_folder(root, per_class=24, test_per_class=8):
    """Real CIFAR-10 images of three classes as train/ and test/ class folders, half JPEG, half PNG."""
    d = np.load(CIFAR)
    for split, x, y, n in (("train", d["x_train"], d["y_train"], per_class),
                           ("test", d["x_test"], d["y_test"], test_per_class)):
        for c, name in CLASSES.items():
            os.makedirs(root / split / name, exist_ok=True)
            for i, img in enumerate(x[y == c][:n]):
                Image.fromarray(img).save(root / split / name / f"{i:03d}.{'png' if i % 2 else 'jpg'}")
    return root


def small_model(classes, shape=(32, 32, 3), softmax=False, name="m", rescale=False):
    inputs = keras.Input(shape)
    x = keras.layers.Rescaling(1 / 255)(inputs) if rescale else inputs
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(x))
    return keras.Model(inputs, keras.layers.Dense(classes, activation="softmax" if softmax else None)(x), name=name)


def run_cli(capsys, *argv):
    code = main(*DIGITS, list(argv))
    captured = capsys.readouterr()
    return code, captured.err.strip(), captured.out


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    if not CIFAR.exists():
        pytest.skip("shared CIFAR-10 subset not present (../shared/data)")
    return write_folder(tmp_path_factory.mktemp("own") / "images")


# ------------------------------------------------------------------------------------------------ end to end
def mobilenet_teacher(root, out):
    """keras.applications' MobileNetV2 as a user has it: a softmax ending, its preprocessing ([-1, 1]) inside, 64x64
    input (not the images' 32x32), trained for a few steps (eagerly: tracing its training graph takes longer)."""
    keras.utils.set_random_seed(0)
    net = keras.applications.MobileNetV2(input_shape=(64, 64, 3), alpha=0.35, weights=None, classes=3)
    inputs = keras.Input((64, 64, 3))
    teacher = keras.Model(inputs, net(keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)), name="my_mobilenet")
    files = sorted((root / "train").rglob("*.*"))
    classes = sorted(p.name for p in (root / "train").iterdir())
    x = np.stack([np.asarray(Image.open(f).convert("RGB").resize((64, 64)), "float32") for f in files])
    y = np.array([classes.index(f.parent.name) for f in files])
    teacher.compile("adam", "sparse_categorical_crossentropy", run_eagerly=True)
    teacher.fit(x, y, epochs=1, batch_size=16, verbose=0)
    teacher.save(out)


@needs_shared
def test_a_keras_applications_teacher_teaches_a_registered_student_on_a_folder_and_exports_int8(folder, tmp_path):
    teacher = tmp_path / "my_teacher.keras"
    mobilenet_teacher(folder, teacher)
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "kd_keras.recipes.classification", "--teacher", str(teacher),
                           "--data", str(folder), "--student", "small_cnn", "--smoke", "--set", "train.epochs=4",
                           "--set", "teacher.check_fit=false", "--export", "int8", "--out", str(out)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    printed = proc.stdout
    assert "3 classes (airplane, automobile, frog), images (32, 32, 3)" in printed
    assert "images resized 32x32 -> 64x64 inside the graph (the teacher's input size, inferred)" in printed
    assert "outputs probabilities (it ends in a softmax, inferred)" in printed
    assert "the teacher normalises them itself (Rescaling layer" in printed
    results = json.loads((out / "results.json").read_text())
    rows = {r["name"]: r for r in results["models"]}
    assert rows["teacher"]["arch"] == "my_mobilenet_adapted" and "probabilities" in rows["teacher"]["source"]
    assert rows["kd"]["arch"] == "small_cnn" and rows["kd"]["kd"]["teacher_outputs"].startswith("teacher outputs from")
    exported = {e["name"]: e for e in results["exported"]}
    int8 = exported["kd.int8.tflite"]
    assert "error" not in int8 and int8["parity"]["top1_agreement"] >= 0.98, int8
    assert (out / "kd.int8.tflite").stat().st_size > 0
    md = (out / "results.md").read_text()
    assert "outputs probabilities" in md and "resized 32x32 -> 64x64" in md


@needs_shared
def test_a_users_student_file_is_trained_not_replaced_and_its_saved_file_loads_back(folder, tmp_path, capsys):
    teacher, student = tmp_path / "t.keras", tmp_path / "my_student.keras"
    keras.utils.set_random_seed(1)
    small_model(3, rescale=True, name="t").save(teacher)
    own = small_model(3, name="my_student")
    own.save(student)
    digest = hashlib.sha256(student.read_bytes()).hexdigest()
    out = tmp_path / "run"
    code, err, printed = run_cli(capsys, "--teacher", str(teacher), "--data", str(folder), "--student", str(student),
                                 "--smoke", "--set", "teacher.check_fit=false", "--out", str(out))
    assert code == 0, err
    assert hashlib.sha256(student.read_bytes()).hexdigest() == digest  # the user's file is untouched
    for name in ("baseline", "kd"):
        trained = keras.saving.load_model(out / f"{name}.keras")
        assert trained.name == "my_student" and trained.count_params() == own.count_params()
        changed = [not np.allclose(a, b) for a, b in zip(trained.get_weights(), own.get_weights())]
        assert any(changed), f"{name} was not trained"
        x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
        assert trained.predict(x, verbose=0).shape == (2, 3)


# ------------------------------------------------------------------------------------------ what is inferred
def test_a_softmax_teacher_gives_the_kd_loss_of_its_logits_twin(tmp_path):
    keras.utils.set_random_seed(0)
    logits = small_model(5, rescale=True, name="twin")
    soft = keras.Model(logits.inputs, keras.layers.Softmax()(logits.outputs[0]), name="soft")
    soft.save(tmp_path / "soft.keras")
    teacher, notes, _ = load_keras_teacher(tmp_path / "soft.keras", (32, 32, 3))
    assert any("outputs probabilities (it ends in a softmax, inferred)" in n for n in notes)
    x = np.random.default_rng(0).uniform(0, 255, (16, 32, 32, 3)).astype("float32")
    student = np.random.default_rng(1).normal(size=(16, 5)).astype("float32")
    for t in (1.0, 4.0):
        kd = KDLoss(t)
        a = float(kd.compute_loss(teacher(x), student))
        b = float(kd.compute_loss(logits(x), student))
        assert abs(a - b) < 1e-5, (t, a, b)
    plain, notes, _ = load_keras_teacher(tmp_path / "soft.keras", (32, 32, 3), {"output": "logits"})
    assert not any("probabilities" in n for n in notes)  # declared: taken as said


def test_the_value_range_is_inferred_from_the_teachers_accuracy_and_a_declared_one_wins(tmp_path):
    # A teacher with no preprocessing layer that tells dark from bright images only on [-1, 1] inputs.
    inputs = keras.Input((8, 8, 1))
    mean = keras.layers.GlobalAveragePooling2D()(inputs)
    dense = keras.layers.Dense(2)
    model = keras.Model(inputs, dense(mean), name="range_teacher")
    dense.set_weights([np.array([[-1.0, 1.0]], "float32"), np.zeros(2, "float32")])
    model.save(tmp_path / "range.keras")
    x = np.concatenate([np.full((20, 8, 8, 1), 40.0), np.full((20, 8, 8, 1), 220.0)]).astype("float32")
    y = np.array([0] * 20 + [1] * 20)
    teacher, notes, _ = load_keras_teacher(tmp_path / "range.keras", (8, 8, 1), sample=(x, y))
    assert "value range [-1, 1] inferred" in notes[0] and "raw 0-255 50.0%" in notes[0], notes
    assert np.mean(np.argmax(teacher(x), -1) == y) == 1.0
    with pytest.raises(ValueError, match=r"no better than chance \(50.0%\) on 40 training images under the declared"):
        load_keras_teacher(tmp_path / "range.keras", (8, 8, 1), {"scale": 1 / 255}, sample=(x, y))
    _, notes, record = load_keras_teacher(tmp_path / "range.keras", (8, 8, 1), {"scale": 1 / 255}, sample=(x, y),
                                          check_fit=False)
    assert notes[0].startswith("value range declared: scale = 0.00392157"), notes
    assert record["declared"] == {"scale": 1 / 255} and "scale" not in record["inferred"]


def test_grey_images_are_repeated_for_an_rgb_teacher_and_resized_to_its_input(tmp_path):
    small_model(3, shape=(16, 16, 3), rescale=True, name="rgb16").save(tmp_path / "rgb.keras")
    teacher, notes, _ = load_keras_teacher(tmp_path / "rgb.keras", (8, 8, 1))
    assert teacher.input_shape == (None, 8, 8, 1) and teacher.output_shape == (None, 3)
    assert "grey images repeated to RGB (the teacher takes 3 channels)" in notes
    assert "images resized 8x8 -> 16x16 inside the graph (the teacher's input size, inferred)" in notes
    path = tmp_path / "adapted.keras"
    teacher.save(path)  # the adapter is a registered layer: the run's teacher.keras reloads in safe mode
    x = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(keras.saving.load_model(path)(x), teacher(x), atol=1e-6)


# --------------------------------------------------------------------------------------------- the library
class CountCalls(keras.layers.Layer):
    """Counts the images it sees: a teacher that says when it ran."""

    def build(self, shape):
        self.seen = self.add_weight(shape=(), initializer="zeros", trainable=False, name="seen")

    def call(self, x):
        self.seen.assign_add(keras.ops.cast(keras.ops.shape(x)[0], "float32"))
        return x


def counting_teacher():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((8, 8, 3))
    counter = CountCalls(name="count")
    x = keras.layers.Rescaling(1 / 255)(counter(inputs))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(6, 3, padding="same")(x))
    return keras.Model(inputs, keras.layers.Dense(3)(x), name="teacher"), counter


def student_copy(seed=5):
    keras.utils.set_random_seed(seed)
    return small_model(3, shape=(8, 8, 3), rescale=True, name="student")


def compiled(teacher, student):
    d = kd_keras.Distiller(teacher, student, "kd", student_loss_weight=0.1)
    d.compile(keras.optimizers.SGD(0.1), keras.losses.CategoricalCrossentropy(from_logits=True))
    return d


def test_fit_with_stored_views_runs_no_teacher_in_the_training_step_and_matches_a_live_teacher():
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 255, (48, 8, 8, 3)).astype("float32"), rng.integers(0, 3, 48)
    teacher, counter = counting_teacher()
    distiller = compiled(teacher, student_copy())
    augment = {"flip": True, "crop_padding": 2}
    from kd_keras.teachers.fit_data import training_batches

    ds, info = training_batches(distiller, x, y, 16, augment, "views", teacher_views=4, seed=7)
    assert info["mode"] == "views" and counter.seen.numpy() == 48 * 4  # one pass over 4 views of 48 images
    batches = list(ds.as_numpy_iterator())  # one epoch of fixed views: (images, labels, teacher outputs)
    for bx, _, t in batches:  # the stored outputs are the teacher's on the very views the student sees
        np.testing.assert_allclose(t[FINAL], teacher(bx), atol=1e-5)
    seen = counter.seen.numpy()
    stored = compiled(teacher, student_copy())
    stored.fit(iter_batches(batches, teacher_outputs=True), epochs=1, verbose=0)
    assert counter.seen.numpy() == seen, "the teacher ran inside the training step"
    live = compiled(teacher, student_copy())
    live.fit(iter_batches(batches, teacher_outputs=False), epochs=1, verbose=0)
    assert counter.seen.numpy() > seen  # the live twin did run it
    for a, b in zip(stored.student.get_weights(), live.student.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5)

    # the one call of the README: the same, from arrays
    counter.seen.assign(0.0)
    distiller = compiled(teacher, student_copy())
    history = distiller.fit(x, y, batch_size=16, epochs=2, augment=augment, teacher_cache="views", teacher_views=4,
                            validation_data=(x[:16], y[:16]), verbose=0)
    assert counter.seen.numpy() == 48 * 4 and distiller.teacher_cache_info["mode"] == "views"
    assert len(history.history["val_accuracy" if "val_accuracy" in history.history else "val_loss"]) == 2


def iter_batches(batches, teacher_outputs: bool):
    import tensorflow as tf

    def gen():
        for bx, by, t in batches:
            yield (bx, by, t) if teacher_outputs else (bx, by)

    spec = (tf.TensorSpec((None, 8, 8, 3), tf.float32), tf.TensorSpec((None, 3), tf.float32))
    if teacher_outputs:
        spec += ({FINAL: tf.TensorSpec((None, 3), tf.float32)},)
    return tf.data.Dataset.from_generator(gen, output_signature=spec)


@pytest.mark.parametrize("kwargs, message", [
    ({"teacher_cache": "views"}, "there is no random augmentation to store views of; use teacher_cache=\"outputs\""),
    ({"teacher_cache": "outputs", "augment": {"flip": True}}, "needs fixed inputs, but augment is on (flip)"),
    ({"teacher_cache": "disk"}, "teacher_cache must be one of auto, views, outputs, off, got 'disk'"),
    ({"augment": {"flipp": True}}, "augment got unknown field(s) flipp"),
    ({"teacher_cache": "auto", "y": np.full(48, 7)}, "y has labels from 7 to 7, but the student has 3 outputs"),
])
def test_fit_from_arrays_refuses_what_it_cannot_serve(kwargs, message):
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 255, (48, 8, 8, 3)).astype("float32"), kwargs.pop("y", rng.integers(0, 3, 48))
    teacher, _ = counting_teacher()
    with pytest.raises(ValueError, match=None) as e:
        compiled(teacher, student_copy()).fit(x, y, **kwargs)
    assert message in str(e.value), str(e.value)


def test_fit_auto_uses_stored_outputs_for_fixed_inputs():
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 255, (32, 8, 8, 3)).astype("float32"), rng.integers(0, 3, 32)
    teacher, counter = counting_teacher()
    distiller = compiled(teacher, student_copy())
    distiller.fit(x, np.eye(3)[y], batch_size=8, epochs=2, teacher_cache="auto", verbose=0)  # one-hot labels too
    assert distiller.teacher_cache_info["mode"] == "outputs"
    assert 32 <= counter.seen.numpy() <= 33  # one pass (and the size estimate's one image), not two epochs of steps


# ----------------------------------------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    small_model(4, rescale=True, name="four").save(root / "four.keras")
    small_model(3, shape=(32, 32, 1), rescale=True, name="grey").save(root / "grey.keras")
    small_model(5, name="student5").save(root / "student5.keras")
    small_model(3, rescale=True, name="ok").save(root / "ok.keras")
    (root / "text.keras").write_text("not a model")

    @keras.saving.register_keras_serializable("kd_keras_tests_unregistered")
    class Doubled(keras.layers.Layer):
        def call(self, x):
            return 2 * x

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(Doubled()(inputs))
    keras.Model(inputs, keras.layers.Dense(3)(x)).save(root / "custom.keras")
    keras.saving.get_custom_objects().pop("kd_keras_tests_unregistered>Doubled")  # as in a fresh process
    os.makedirs(root / "one" / "cat")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "one" / "cat" / "a.png")
    os.makedirs(root / "empty" / "cat")
    os.makedirs(root / "empty" / "dog")
    return root


@needs_shared
@pytest.mark.parametrize("case", [
    ("four.keras", None, None, "gives 4 scores per image, but the data has 3 classes (airplane, automobile, frog)"),
    ("text.keras", None, None, "is corrupt or not a Keras model (a .keras file saved by model.save is a zip "
                               "archive; this is not one)"),
    ("custom.keras", None, None, "needs the custom object 'Doubled' (saved from module 'test_own_model'), which "
                                 "is not registered; pass --custom-objects MODULE"),
    ("ok.keras", "one", None, "has one class, 'cat'; a classifier needs at least two"),
    ("ok.keras", "empty", None, "has no images (.jpg, .jpeg, .png, .bmp, .gif, .tif, .tiff, .webp) in 2 sub-folders"),
    ("grey.keras", None, None, "takes 1-channel images, but the data's images have 3 channels"),
    ("ok.keras", None, "student5.keras", "gives outputs of shape (5,) per image, but the data has 3 classes"),
    ("missing.keras", None, None, "teacher model file"),
], ids=["classes", "not a model", "custom layer", "one class", "no images", "channels", "student outputs",
        "missing"])
def test_bad_own_model_input_is_one_line_exit_2_before_training(folder, bad_files, tmp_path, capsys, case):
    teacher, data, student, message = case
    out = tmp_path / "run"
    argv = ["--teacher", str(bad_files / teacher), "--data", str(bad_files / data if data else folder), "--smoke",
            "--out", str(out)]
    if student:
        argv += ["--student", str(bad_files / student)]
    before = sorted(p.name for p in bad_files.iterdir())
    code, err, printed = run_cli(capsys, *argv)
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert "Traceback" not in err and "Epoch" not in printed and "training" not in printed
    assert not out.exists()  # nothing half-written
    assert sorted(p.name for p in bad_files.iterdir()) == before


def test_the_image_size_comes_from_a_student_file_else_is_capped_at_the_teachers_input(tmp_path):
    from kd_keras.config import load_config, quote
    from kd_keras.tasks.classification import ClassificationTask

    for c in ("a", "b"):
        os.makedirs(tmp_path / "big" / c)
        Image.fromarray(np.zeros((40, 48, 3), np.uint8)).save(tmp_path / "big" / c / "0.png")
    small_model(2, shape=(32, 32, 3), name="t32").save(tmp_path / "t32.keras")
    small_model(2, shape=(64, 64, 3), name="t64").save(tmp_path / "t64.keras")
    small_model(2, shape=(24, 24, 3), name="s24").save(tmp_path / "s24.keras")

    def size(*sets):
        sets = ["data.source=\"folder\"", f"data.path={quote(str(tmp_path / 'big'))}", *sets]
        return ClassificationTask().inferred_image_size(load_config(DIGITS[1], sets))

    assert size(f"teacher.model={quote(str(tmp_path / 't32.keras'))}", "teacher.options={}") == \
        (32, "the images are 48 px, larger than the teacher's 32x32 input")
    assert size(f"teacher.model={quote(str(tmp_path / 't64.keras'))}", "teacher.options={}") == (0, "")  # their own
    assert size(f"teacher.model={quote(str(tmp_path / 't32.keras'))}", "teacher.options={}",
                f"student.model={quote(str(tmp_path / 's24.keras'))}", "student.options={}")[0] == 24
    assert size(f"teacher.model={quote(str(tmp_path / 't32.keras'))}", "teacher.options={}",
                "data.image_size=40") == (0, "")  # declared: kept
