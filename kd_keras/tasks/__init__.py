"""Per-task pieces (data, models, supervised loss, metrics) used by the one recipe runner."""

from kd_keras.tasks.base import Task
from kd_keras.tasks.classification import ClassificationTask
from kd_keras.tasks.edge_detection import EdgeDetectionTask
from kd_keras.tasks.super_resolution import SuperResolutionTask

TASKS = {"classification": ClassificationTask, "edge_detection": EdgeDetectionTask,
         "super_resolution": SuperResolutionTask}

__all__ = ["ClassificationTask", "EdgeDetectionTask", "SuperResolutionTask", "TASKS", "Task"]
