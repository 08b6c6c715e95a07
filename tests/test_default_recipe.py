"""The default recipe: the embedded Fashion-MNIST subset, the shipped teacher, paired students, the int8 export."""

import json
import re
import shutil

import numpy as np
import pytest

from kd_keras import assets
from kd_keras.config import REPO_ROOT
from kd_keras.recipes.cli import main

DEFAULT = str(REPO_ROOT / "recipes" / "fashion_mnist_small.toml")


def run_cli(capsys, *argv, config=DEFAULT):
    code = main("classification", config, list(argv))
    captured = capsys.readouterr()
    return code, captured.err.strip()


def test_the_default_command_runs_the_fashion_recipe():
    from kd_keras.recipes import classification

    assert classification.DEFAULT == "fashion_mnist_small.toml"


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """The default command in smoke mode (3 pairs, int8 export), each fit recording its student's first weights
    and the label order of one pass over its batches."""
    from kd_keras.distiller import Distiller

    seen = {}
    fit = Distiller.fit

    def recording_fit(self, x=None, *args, **kwargs):
        ys = [np.asarray(batch[1]) for batch in x]
        labels = np.concatenate([y.argmax(-1) if y.ndim == 2 else y for y in ys])
        seen[self.name.removesuffix("_distiller")] = (self.student.get_weights()[0].copy(), labels)
        return fit(self, x, *args, **kwargs)

    out = tmp_path_factory.mktemp("default") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Distiller, "fit", recording_fit)
        code = main("classification", DEFAULT, ["--smoke", "--out", str(out)])
    assert code == 0
    return out, seen


def test_pairs_share_initial_weights_and_batches_and_differ_between_pairs(smoke_run):
    _, seen = smoke_run
    assert set(seen) == {"baseline", "kd", "baseline_pair2", "kd_pair2", "baseline_pair3", "kd_pair3"}
    for a, b in (("baseline", "kd"), ("baseline_pair2", "kd_pair2"), ("baseline_pair3", "kd_pair3")):
        np.testing.assert_array_equal(seen[a][0], seen[b][0])  # the same initial weights
        np.testing.assert_array_equal(seen[a][1], seen[b][1])  # the same images in the same order
    assert not np.array_equal(seen["baseline"][0], seen["baseline_pair2"][0])
    assert not np.array_equal(seen["baseline"][1], seen["baseline_pair2"][1])


def test_default_smoke_run_summarises_pairs_and_exports_int8_with_parity(smoke_run):
    out = smoke_run[0]
    results = json.loads((out / "results.json").read_text())
    s = results["summary"]
    assert s["pairs"] == 3 and s["entry"] == "kd"
    rows = {m["name"]: m for m in results["models"]}
    assert set(rows) == {"teacher", "baseline", "kd", "baseline_pair2", "kd_pair2", "baseline_pair3", "kd_pair3"}
    base = [rows[n]["accuracy"] for n in ("baseline", "baseline_pair2", "baseline_pair3")]
    kd = [rows[n]["accuracy"] for n in ("kd", "kd_pair2", "kd_pair3")]
    assert s["baseline_mean"] == pytest.approx(np.mean(base)) and s["kd_mean"] == pytest.approx(np.mean(kd))
    assert s["kd_minus_baseline"] == pytest.approx(np.mean(kd) - np.mean(base))
    assert s["wins"] == sum(k > b for k, b in zip(kd, base))
    gap = rows["teacher"]["accuracy"] - np.mean(base)
    assert s["gap_recovered"] == (pytest.approx((np.mean(kd) - np.mean(base)) / gap) if gap > 0 else None)
    assert [p["seed"] for p in s["per_pair"]] == [0, 1, 2]
    assert results["data"]["num_train"] == 4 * 10  # smoke: 4 labelled images per class
    md = (out / "results.md").read_text()
    assert "## Paired runs" in md and "kd vs baseline over 3 pairs" in md
    exported = results["exported"]
    assert [e["name"] for e in exported] == ["teacher.fp32.tflite", "kd.int8.tflite"]
    from kd_keras.export.parity import check

    assert all("error" not in e and not check("classification", e["quantize"], e["parity"]) for e in exported), exported
    assert (out / "kd.int8.tflite").stat().st_size < rows["teacher"]["size_bytes"]
    from PIL import Image

    width, height = Image.open(out / "results.png").size
    assert width > 2 * height  # three panels: bubbles, the pairs, the curves


def test_one_pair_is_a_quick_look(tmp_path, capsys):
    out = tmp_path / "run"
    code, err = run_cli(capsys, "--smoke", "--pairs", "1", "--out", str(out), "--set", "report.export=false")
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    assert results["summary"]["pairs"] == 1 and results["summary"]["kd_std"] is None
    assert [m["name"] for m in results["models"]] == ["teacher", "baseline", "kd"]


def test_shipped_teacher_scores_what_its_card_says():
    from kd_keras.data import load
    from kd_keras.models import create_model

    card = (assets.FOLDER / "fashion_mnist_small_resnet20.md").read_text()
    claimed = float(re.search(r"test accuracy: ([0-9.]+)%", card).group(1))
    splits = load("fashion_mnist_small")
    model = create_model("resnet20", 10, (28, 28, 1), weights="fashion_mnist_small")
    x, y = zip(*splits.test.as_numpy_iterator())
    logits = model.predict(np.stack(x), batch_size=256, verbose=0)
    accuracy = 100 * float(np.mean(np.argmax(logits, -1) == np.array(y)))
    assert accuracy == pytest.approx(claimed, abs=0.1)


@pytest.fixture
def assets_copy(tmp_path, monkeypatch):
    """The shipped files in a folder of their own, which a test may damage."""
    folder = tmp_path / "assets"
    shutil.copytree(assets.FOLDER, folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    monkeypatch.setattr(assets, "FOLDER", folder)
    return folder


@pytest.mark.parametrize("damage", ["missing", "changed"])
def test_a_missing_or_changed_shipped_teacher_is_one_line(damage, assets_copy, tmp_path, capsys):
    path = assets_copy / "fashion_mnist_small_resnet20.keras"
    if damage == "missing":
        path.unlink()
    else:
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    out = tmp_path / "out"
    code, err = run_cli(capsys, "--smoke", "--out", str(out))
    assert code == 2 and err.startswith("error: ") and "\n" not in err, err
    assert ("is missing" if damage == "missing" else "is corrupt or changed") in err
    assert "resnet20 weights 'fashion_mnist_small'" in err and "teacher.weights" in err
    assert not out.exists()


def test_a_corrupt_embedded_data_file_is_one_line(assets_copy, tmp_path, capsys):
    path = assets_copy / "fashion_mnist_small.npz"
    path.write_bytes(path.read_bytes()[:100_000])  # cut short, as a broken download would
    out = tmp_path / "out"
    code, err = run_cli(capsys, "--smoke", "--out", str(out))
    assert code == 2 and err.startswith("error: ") and "\n" not in err, err
    assert "the embedded data file" in err and "is corrupt or changed" in err and "reinstall" in err
    assert not out.exists()


@pytest.mark.parametrize("value", ["0", "-1"])
def test_pairs_below_one_is_one_line(value, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = run_cli(capsys, "--smoke", "--pairs", value, "--out", str(out))
    assert code == 2 and "\n" not in err and "train.pairs (--pairs) must be an integer >= 1" in err
    assert f"got {value}" in err and not out.exists()


def test_labels_per_class_above_a_class_size_is_one_line(tmp_path, capsys):
    out = tmp_path / "out"
    code, err = run_cli(capsys, "--smoke", "--set", "data.labels_per_class=1000", "--set", "data.limit=0",
                        "--out", str(out))
    assert code == 2 and "\n" not in err and "data.labels_per_class = 1000, but class" in err, err


def test_labelled_subset_draws_per_class_with_its_seed():
    from kd_keras.data import load
    from kd_keras.data.subsets import labelled_subset

    splits = load("digits")
    labels = lambda s: np.array([int(y) for _, y in s.train.as_numpy_iterator()])  # noqa: E731
    a, b, again = (labelled_subset(splits, 5, seed) for seed in (0, 1, 0))
    assert a.num_train == 50 and np.bincount(labels(a)).tolist() == [5] * 10
    first = lambda s: np.stack([x for x, _ in s.train.as_numpy_iterator()])  # noqa: E731
    np.testing.assert_array_equal(first(a), first(again))  # the same seed, the same images
    assert not np.array_equal(first(a), first(b))
    assert a.num_val == splits.num_val and a.num_test == splits.num_test
    with pytest.raises(ValueError, match="data.labels_per_class = 500, but class '0' has"):
        labelled_subset(splits, 500, 0)


def test_own_data_on_the_default_keeps_every_label_trains_a_teacher_and_one_pair(tmp_path):
    from kd_keras.config import load_config
    from kd_keras.recipes.cli import flag_overrides, parser

    (tmp_path / "imgs").mkdir()

    def config(*argv):
        args = parser("classification", DEFAULT).parse_args(list(argv))
        args.config = DEFAULT
        return load_config(DEFAULT, flag_overrides(args, "classification", [], DEFAULT))

    own = config("--data", str(tmp_path / "imgs"))
    assert (own.data.source, own.data.labels_per_class, own.train.pairs, own.teacher.weights) == ("folder", 0, 1, "")
    assert own.name == "imgs"
    assert config("--data", str(tmp_path / "imgs"), "--pairs", "3").train.pairs == 3
    same = config("--data", "fashion_mnist_small")  # the default's own data: the default as it is
    assert (same.data.labels_per_class, same.train.pairs, same.teacher.weights) == (100, 3, "fashion_mnist_small")
