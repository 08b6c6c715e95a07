"""Recipe configs: the schema (`schema`), TOML and `--set` parsing (`parse`, on the generic `fields`), the shipped
recipe files (`catalog`) and the DATASPEC that export and benchmark read (`dataspec`).

Import the schema and the parser from here: `from kd_keras.config import Config, load_config`.
"""

from kd_keras.config.fields import from_dict, to_dict
from kd_keras.config.parse import REPO_ROOT, apply_override, find_file, load_config, parse_value, quote
from kd_keras.config.schema import (
    PATH_SOURCES,
    AdapterConfig,
    AugmentConfig,
    Config,
    DataConfig,
    DistillConfig,
    LossConfig,
    ModelConfig,
    ReportConfig,
    TeacherConfig,
    TrainConfig,
)

__all__ = ["REPO_ROOT", "PATH_SOURCES", "AdapterConfig", "AugmentConfig", "Config", "DataConfig", "DistillConfig",
           "LossConfig", "ModelConfig", "ReportConfig", "TeacherConfig", "TrainConfig", "apply_override",
           "find_file", "from_dict", "load_config", "parse_value", "quote", "to_dict"]
