"""Every model and pipeline of a run on one batch, before anything is deleted or trained.

A setting that cannot work (a crop padding larger than the images, an image
size the teacher's weights do not run at, an adapter the teacher's graph
refuses) would otherwise fail minutes in, after `--overwrite` had removed
the earlier run. `preflight` builds each training pipeline and takes its
first batch, then runs the teacher and every student on two of its images;
a failure is one line that names the settings involved.
"""

from __future__ import annotations

import re

import numpy as np

from kd_keras.config import ModelConfig, find_file
from kd_keras.models.registry import pretrained_weights


def preflight(runner) -> None:
    """Runs the recipe's pipelines and models on one batch.

    Args:
        runner: the `Runner`, with its splits and datasets loaded and its
            teacher file (if any) opened.

    Raises:
        ValueError: one line naming the pipeline or model that fails and
            the settings to check.
    """
    cfg, task = runner.cfg, runner.task
    sides = [d for d in tuple(runner.splits.input_shape)[:2] if d]
    side = min(sides) if sides else 0  # 0: images of any size (the dense tasks crop patches)
    _check_padding(cfg.data.augment, side, "data.augment")
    x = _first_batch(runner.train_ds, "data.image_size, data.augment")
    for d, _ in runner.plans:
        data = d.data_config(cfg.data)
        if data != cfg.data:  # a KD student with its own augmentation
            _check_padding(data.augment, side, f"[[distill]] {d.name!r} augment")
            ds = task.pipelines(runner.splits, data, cfg.train.seed)[0]
            _first_batch(ds, f"[[distill]] {d.name!r} augment")
    x = np.asarray(x)[:2]
    if runner.file_teacher is not None:
        _forward(runner.file_teacher.model, x, "the teacher", "teacher.adapter")
    else:
        tc = cfg.teacher
        weights = None
        if tc.weights and tc.weights != "imagenet" and tc.weights not in pretrained_weights(tc.model):
            path = find_file(tc.weights)
            weights = str(path) if path.exists() else ""
        model = _build(runner, tc, weights, "teacher")
        _forward(model, x, "the teacher", "teacher.options and data.image_size")
    seen = set()
    for d, _ in runner.plans or [(None, None)]:
        m = ModelConfig(**d.student) if d is not None and d.student else cfg.student
        key = repr(m)
        if key in seen:
            continue
        seen.add(key)
        where = f"[[distill]] {d.name!r} student" if d is not None and d.student else "student"
        _forward(_build(runner, m, None, where), x, f"the {where}", f"{where}.options and data.image_size")


def _check_padding(augment, side: int, where: str) -> None:
    """Reflect padding needs fewer pixels than the image's side."""
    pad = getattr(augment, "crop_padding", 0)
    if pad and side and pad >= side:
        raise ValueError(f"{where}.crop_padding = {pad} needs images larger than {pad} px, and the images are {side} "
                         f"px (data.image_size); set {where}.crop_padding below {side}, or a larger "
                         f"data.image_size.")


def _first_batch(ds, keys: str):
    try:
        batch = next(iter(ds))
    except (ValueError, FileNotFoundError):
        raise
    except Exception as e:  # TensorFlow raises its own error types from inside the pipeline
        raise ValueError(f"the training pipeline fails on its first batch ({_first_line(e)}); check {keys} "
                         f"against the images.") from None
    return batch[0] if isinstance(batch, tuple) else batch


def _build(runner, m, weights, where: str):
    try:
        return runner._new_model(m, runner.cfg.train.seed, weights=weights) if weights is not None else \
            runner._new_model(m, runner.cfg.train.seed)
    except (ValueError, FileNotFoundError):
        raise
    except Exception as e:  # a factory's own errors on shapes it cannot take
        raise ValueError(f"the {where} {m.model!r} cannot be built for images {tuple(runner.splits.input_shape)} "
                         f"({_first_line(e)}); check {where}.options and data.image_size.") from None


def _forward(model, x, what: str, keys: str) -> None:
    try:
        model(x, training=False)
    except (ValueError, FileNotFoundError):
        raise
    except Exception as e:  # TensorFlow and the runtimes raise their own error types
        raise ValueError(f"{what} fails on a batch of the data's images {tuple(x.shape[1:])} ({_first_line(e)}); "
                         f"check {keys}.") from None


def _first_line(e: Exception) -> str:
    """The error's own words: TensorFlow's message without its graph-node and iterator prefixes."""
    text = re.sub(r"\{\{[^}]*\}\}", "", str(getattr(e, "message", e)))
    lines = [line.strip() for line in text.strip().splitlines() if line.strip() and not line.strip().startswith("[[")]
    line = lines[0] if lines else ""
    line = re.split(r"Iterator::[\w:]+: ", line)[-1]
    return f"{type(e).__name__}: {line[:200]}" if line else type(e).__name__
