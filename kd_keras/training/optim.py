"""The optimizer, schedule and tf.distribute strategy of a recipe's `[train]` table, and where each worker writes."""

from __future__ import annotations

import os

import keras
import tensorflow as tf


def make_optimizer(t, learning_rate: float, epochs: int, steps_per_epoch: int):
    """Optimizer and schedule from a `TrainConfig`."""
    lr = learning_rate
    if t.schedule == "cosine":
        warm = t.warmup_epochs * steps_per_epoch
        total = max(epochs * steps_per_epoch - warm, 1)
        lr = keras.optimizers.schedules.CosineDecay(0.0 if warm else learning_rate, total,
                                                    warmup_target=learning_rate if warm else None, warmup_steps=warm)
    wd = t.weight_decay or None
    if t.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=0.9, nesterov=True, weight_decay=wd)
    if t.optimizer == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=t.weight_decay or 1e-4)
    return keras.optimizers.Adam(lr, weight_decay=wd)


def make_strategy(name: str):
    """The `tf.distribute` strategy of `train.strategy`.

    Raises:
        ValueError: "multi_worker" without a `TF_CONFIG` environment variable.
    """
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            raise ValueError("train.strategy = \"multi_worker\" needs the TF_CONFIG environment variable on every "
                             "worker (cluster and task); see docs/performance.md, multi-worker.")
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def worker_out_dir(out_dir: str, strategy) -> str:
    """Where this process writes: `out_dir` on the chief, a private sub-folder on other workers."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type or (resolver.task_type == "chief") or (
            resolver.task_type == "worker" and resolver.task_id == 0
            and "chief" not in resolver.cluster_spec().as_dict()):
        return out_dir
    return os.path.join(out_dir, f".{resolver.task_type}{resolver.task_id}")
