"""kd_keras: knowledge distillation for Keras 3 / TensorFlow."""

import os as _os

_os.environ.setdefault("KERAS_BACKEND", "tensorflow")
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kd_keras.cli import quiet as _quiet  # noqa: E402
from kd_keras.cli.moved import install_moved_modules as _install_moved_modules  # noqa: E402

_install_moved_modules()  # 0.1 import paths (kd_keras.teacher_cache, ...) keep working through 0.2, with a warning

if _quiet.wanted():  # a kd_keras command line: filter TensorFlow's start-up lines before it is imported
    _quiet.install()
if _quiet.command_line():  # and Ctrl-C while it starts ends in one line
    _quiet.one_line_interrupt()

from kd_keras.distiller import Distiller  # noqa: E402
from kd_keras.losses import DistillLoss, create_loss, list_losses, register_loss  # noqa: E402
from kd_keras.models import create_model, list_models, register_model  # noqa: E402
from kd_keras.teachers.cache import TeacherOutputCache, teacher_fingerprint  # noqa: E402
from kd_keras.teachers.files import load_file_teacher  # noqa: E402
from kd_keras.teachers.load import load_teacher  # noqa: E402
from kd_keras.teachers.maps import TeacherMapsCache  # noqa: E402
from kd_keras.teachers.views import TeacherViewsCache  # noqa: E402
from kd_keras.training.precise_bn import PreciseBatchNorm, recalibrate_batchnorm  # noqa: E402
from kd_keras.training.precision import as_float32  # noqa: E402
from kd_keras.version import __version__  # noqa: E402

__all__ = [
    "__version__",
    "as_float32",
    "Distiller",
    "DistillLoss",
    "create_loss",
    "create_model",
    "list_losses",
    "load_file_teacher",
    "load_teacher",
    "list_models",
    "PreciseBatchNorm",
    "recalibrate_batchnorm",
    "register_loss",
    "register_model",
    "TeacherMapsCache",
    "TeacherOutputCache",
    "TeacherViewsCache",
    "teacher_fingerprint",
]
