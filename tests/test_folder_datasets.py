"""Tiny ImageNet and MHIST in their official layouts, on tiny folders made here; binary F1/AUC."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import WNIDS, make_mhist, make_tiny_imagenet

from kd_keras.data import load
from kd_keras.data.prepare import main as prepare_main
from kd_keras.tasks import ClassificationTask


def test_tiny_imagenet_loads_official_layout_with_grayscale_as_rgb(tmp_path):
    root = make_tiny_imagenet(tmp_path / "tin")
    splits = load("tiny_imagenet", path=str(root), val_fraction=0.0)
    assert splits.num_classes == 2 and splits.class_names == WNIDS
    assert splits.num_train == 6 and splits.num_test == 4 and splits.input_shape == (64, 64, 3)
    test = list(splits.test.as_numpy_iterator())
    assert [int(label) for _, label in test] == [0, 1, 0, 1]  # from val_annotations.txt
    train = list(splits.train.as_numpy_iterator())
    grey = [x for x, _ in train if np.array_equal(x[..., 0], x[..., 1]) and np.array_equal(x[..., 1], x[..., 2])]
    assert len(grey) == 2  # one grayscale image per class, now RGB


def test_tiny_imagenet_missing_annotations_names_the_file(tmp_path):
    root = make_tiny_imagenet(tmp_path / "tin")
    (root / "val" / "val_annotations.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"has no val/val_annotations.txt; expected the official layout"):
        load("tiny_imagenet", path=str(root))


def test_tiny_imagenet_unknown_wnid_names_the_line(tmp_path):
    root = make_tiny_imagenet(tmp_path / "tin")
    with open(root / "val" / "val_annotations.txt", "a") as f:
        f.write("val_0.JPEG\tn99999999\t0\t0\t1\t1\n")
    with pytest.raises(ValueError, match=r"val_annotations.txt line 5: expected"):
        load("tiny_imagenet", path=str(root))


def test_a_corrupt_image_is_refused_by_name_or_skipped_and_counted(tmp_path, capsys):
    root = make_tiny_imagenet(tmp_path / "tin")
    (root / "train" / WNIDS[1] / "images" / f"{WNIDS[1]}_2.JPEG").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(ValueError, match=rf"Tiny ImageNet folder: 1 of 10 image files cannot be used "
                                         rf"\({WNIDS[1]}_2.JPEG \(corrupt: .*--skip-bad-images"):
        load("tiny_imagenet", path=str(root), val_fraction=0.0)
    splits = load("tiny_imagenet", path=str(root), val_fraction=0.0, skip_bad_images=True)
    assert splits.num_train == 5 and splits.skipped == 1
    assert f"left out 1 bad Tiny ImageNet image file(s), e.g. {WNIDS[1]}_2.JPEG" in capsys.readouterr().out
    assert prepare_main(["tiny_imagenet", str(root)]) == 0
    assert "train: 6 images, 2 grayscale, 1 unreadable" in capsys.readouterr().out


def test_prepare_writes_an_index_and_refuses_to_overwrite(tmp_path, capsys):
    root = make_tiny_imagenet(tmp_path / "tin")
    out = tmp_path / "index.json"
    assert prepare_main(["tiny_imagenet", str(root), "--out", str(out)]) == 0
    import json

    index = json.loads(out.read_text())
    assert index["classes"] == WNIDS and len(index["train"]) == 6 and len(index["test"]) == 4
    assert prepare_main(["tiny_imagenet", str(root), "--out", str(out)]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert prepare_main(["mhist", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "MHIST folder" in err and "does not exist" in err


def test_mhist_uses_the_csv_partition_and_labels(tmp_path):
    root = make_mhist(tmp_path / "mhist")
    splits = load("mhist", path=str(root), val_fraction=0.0)
    assert splits.class_names == ["HP", "SSA"] and splits.num_classes == 2
    assert splits.num_train == 5 and splits.num_test == 3 and splits.input_shape == (32, 32, 3)
    assert [int(label) for _, label in splits.test.as_numpy_iterator()] == [0, 1, 0]  # images 5, 6 (SSA), 7


@pytest.mark.parametrize("column", ["Partition", "Majority Vote Label"])
def test_mhist_missing_column_is_named(tmp_path, column):
    root = make_mhist(tmp_path / "mhist")
    lines = (root / "annotations.csv").read_text().splitlines()
    header = lines[0].split(",")
    drop = header.index(column)
    rows = [",".join(c for i, c in enumerate(line.split(",")) if i != drop) for line in lines]
    (root / "annotations.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError, match=rf"lacks column\(s\) '{column}'"):
        load("mhist", path=str(root))


def test_binary_task_reports_f1_and_auc():
    task = ClassificationTask()
    task.binary = True
    y = np.array([1, 1, 0, 0, 1])
    logits = np.array([[0.0, 2.0], [0.0, -1.0], [0.0, -3.0], [0.0, 0.5], [0.0, 1.0]], np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((logits, np.eye(2, dtype="float32")[y])).batch(2)

    def runtime(x):
        return x  # the "model" returns its input as logits

    out = task.evaluate(runtime, dataset)
    # predictions 1, 0, 0, 1, 1: TP 2, FP 1, FN 1 -> F1 = 2/3; accuracy 3/5
    assert out["accuracy"] == pytest.approx(0.6) and out["f1"] == pytest.approx(2 / 3)
    # positive scores 2, -1, 1 vs negative -3, 0.5: 5 of 6 pairs ordered -> AUC 5/6
    assert out["auc"] == pytest.approx(5 / 6)
    assert [c[1] for c in task.columns()] == ["accuracy", "f1", "auc"]
