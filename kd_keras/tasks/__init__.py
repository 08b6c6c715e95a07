"""Per-task pieces (data, hard loss, metric) used by the one recipe runner."""

from kd_keras.tasks.classification import ClassificationTask

TASKS = {"classification": ClassificationTask}

__all__ = ["ClassificationTask", "TASKS"]
