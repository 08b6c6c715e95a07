"""The `tfds` source: a TensorFlow Datasets name, its splits mapped to train / validation / test."""

from __future__ import annotations

import os

import tensorflow as tf

from kd_keras.data.splits import DataSplits, resize


TFDS_MISSING = ("data.source = \"tfds\" reads TensorFlow Datasets, which is not installed; install the extra: "
                "pip install \"kd_keras[tfds]\".")


def missing_tfds() -> str:
    """The one-line hint when tensorflow-datasets (the `tfds` extra) is not installed, else ""."""
    import importlib.util

    try:
        return "" if importlib.util.find_spec("tensorflow_datasets") is not None else TFDS_MISSING
    except (ImportError, ValueError):  # a broken or hidden install
        return TFDS_MISSING


def _online(timeout: float = 3.0) -> bool:
    """Whether the storage tfds downloads from answers within `timeout` seconds."""
    import socket

    try:
        socket.create_connection(("storage.googleapis.com", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _tfds(name, data_dir, image_size, val_fraction, limit, manual_dir=None):
    if missing_tfds():
        raise ValueError(TFDS_MISSING)
    import tensorflow_datasets as tfds

    if not name:
        raise ValueError("the tfds dataset name is not set; pass data.name=... (e.g. 'cifar10').")
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as e:
        raise ValueError(f"unknown tfds dataset {name!r} ({str(e).splitlines()[0][:120]}).") from None
    known = list(builder.info.splits)  # empty until prepared (or under tfds.testing.mock_data)
    if known and ("train" not in known or not {"test", "validation"} & set(known)):
        raise ValueError(f"tfds dataset {name!r} needs a 'train' and a 'test' or 'validation' split; has {known}.")
    test_split = "test" if not known or "test" in known else "validation"
    pct = int(round(val_fraction * 100))
    if test_split == "test" and "validation" in known:
        train_s, val_s = "train", "validation"
    else:
        train_s, val_s = f"train[{pct}%:]", f"train[:{pct}%]"
    mocked = getattr(tfds.core.DatasetBuilder.as_dataset, "__module__", "").startswith("tensorflow_datasets.testing")
    prepared = mocked or os.path.isdir(builder.data_dir)  # under tfds.testing.mock_data nothing is downloaded
    if not prepared and not manual_dir and not _online():  # tfds would retry its downloads for minutes first
        raise ValueError(f"tfds dataset {name!r} is not prepared in {builder.data_dir!r} and this machine cannot "
                         f"reach the internet to download it; download it where there is internet (python -c "
                         f"\"import tensorflow_datasets as tfds; tfds.load('{name}')\") and copy the folder, or set "
                         f"data.data_dir to a folder that holds it.")
    kwargs = {}
    if manual_dir:
        kwargs["download_and_prepare_kwargs"] = {
            "download_config": tfds.download.DownloadConfig(manual_dir=manual_dir)}
    try:
        tr, va, te = tfds.load(name, split=[train_s, val_s, test_split], data_dir=data_dir, as_supervised=True,
                               **kwargs)
    except Exception as e:
        files = "ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar" if name == "imagenet2012" else "its files"
        hint = (f"put {files} in data.manual_dir (tfds prepares them into data.data_dir)"
                if manual_dir or name == "imagenet2012" else
                "download it where there is internet, or set data.data_dir to a folder that holds it")
        first = (str(e).strip().splitlines() or [""])[0][:100]
        raise ValueError(f"could not load tfds dataset {name!r} ({type(e).__name__}: {first}); {hint}.") from None
    label = builder.info.features["label"]
    shape = tuple(builder.info.features["image"].shape)
    if image_size is None and None in shape[:2]:
        raise ValueError(f"tfds dataset {name!r} has images of varying size {shape}; set data.image_size.")
    out_shape = (image_size, image_size, shape[-1] or 3) if image_size else shape

    def prep(img, lab):
        return resize(tf.cast(img, tf.float32), image_size), tf.cast(lab, tf.int32)

    if limit:
        tr, va, te = tr.take(limit), va.take(limit), te.take(limit)
    tr, va, te = (d.map(prep, num_parallel_calls=tf.data.AUTOTUNE) for d in (tr, va, te))
    return DataSplits(
        train=tr, val=va, test=te, num_classes=label.num_classes, input_shape=out_shape,
        num_train=_count(tr), num_val=_count(va), num_test=_count(te), class_names=list(label.names),
        description=f"tfds {name}",
    )


def _count(ds: tf.data.Dataset) -> int:
    n = int(ds.cardinality())
    if n >= 0:
        return n
    return int(ds.reduce(0, lambda c, _: c + 1))  # one pass, only when tfds cannot tell
