"""What wraps `Distiller.fit`: callbacks (atomic backups, NaN guard, logs), stopping between steps on a signal
(`interrupt`), precise BatchNorm statistics, mixed precision, and the optimizer, schedule and tf.distribute
strategy of a recipe (`optim`)."""

from kd_keras.training.precise_bn import PreciseBatchNorm, recalibrate_batchnorm
from kd_keras.training.precision import as_float32

__all__ = ["PreciseBatchNorm", "as_float32", "recalibrate_batchnorm"]
