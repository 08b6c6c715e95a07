"""Data sources and tf.data pipelines."""

from kd_keras.data.augment import AugmentConfig
from kd_keras.data.pipeline import classification_pipeline
from kd_keras.data.sources import SOURCES, DataSplits, load

__all__ = ["AugmentConfig", "DataSplits", "SOURCES", "classification_pipeline", "load"]
