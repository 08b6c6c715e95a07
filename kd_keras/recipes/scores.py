"""Stored test scores of a loaded teacher, so that a later run does not score the same teacher again.

A teacher loaded as it is (published weights or a file; not trained or
fine-tuned by the run) scores the same on the same test data every time.
For edge detection that scoring (the BSDS benchmark on a VGG-16's maps)
takes longer than training the student, and it is repeated by every run
that tunes or re-seeds a student. The scores are kept as JSON in the
teacher-cache folder (`train.teacher_cache_dir`), keyed by the task, the
teacher's fingerprint (architecture and every weight), every test input and
label, and the report settings: any change gets a new key. Only the metrics
are reused; the teacher is timed again with the other models.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import tensorflow as tf

from kd_keras.benchmark import report
from kd_keras.config import to_dict
from kd_keras.teachers.cache import teacher_fingerprint


def _update(h, value) -> None:
    """Feeds every array, string and number of a nested test structure (or a dataset) into `h`, in order."""
    if isinstance(value, tf.data.Dataset):
        for element in value.as_numpy_iterator():
            _update(h, element)
    elif isinstance(value, dict):
        for k in sorted(value):
            h.update(str(k).encode())
            _update(h, value[k])
    elif isinstance(value, (list, tuple)):
        h.update(f"[{len(value)}".encode())
        for v in value:
            _update(h, v)
    elif isinstance(value, (str, bytes)):
        h.update(value.encode() if isinstance(value, str) else value)
    else:
        a = np.ascontiguousarray(np.asarray(value))
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())


def scores_key(task, model, test, report_cfg) -> str:
    """A hex key of the task, the model's fingerprint, the test data and the report settings."""
    h = hashlib.sha256()
    h.update(task.name.encode())
    h.update(teacher_fingerprint(model).encode())
    h.update(json.dumps(to_dict(report_cfg), sort_keys=True, default=str).encode())
    _update(h, test)
    return h.hexdigest()[:16]


def evaluate_stored(task, model, test, report_cfg, directory: str, log=print) -> dict:
    """`task.evaluate(model, test, report_cfg)`, read from `directory` when this key was scored before."""
    key = scores_key(task, model, test, report_cfg)
    path = os.path.join(directory, f"teacher_scores_{key}.json")
    if os.path.exists(path):
        with open(path) as f:
            metrics = json.load(f)
        log(f"   teacher: test scores reused from {path} (the same teacher, test data and report settings)")
        return metrics
    metrics = task.evaluate(model, test, report_cfg)
    os.makedirs(directory, exist_ok=True)
    report.write_json_atomic(path, metrics)
    return metrics
