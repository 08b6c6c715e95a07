"""A tiny KD run under a tf.distribute strategy, printed as one JSON line.

Run as a script by test_distribute.py and test_multi_worker.py: strategies
must be set up before TensorFlow initialises, so each run is a fresh process.

    python tests/distributed_kd.py mirrored   # one device, then MirroredStrategy on 2 logical CPUs
    python tests/distributed_kd.py worker     # MultiWorkerMirroredStrategy from TF_CONFIG (one device without)
"""

import json
import os
import sys

import tensorflow as tf

MODE = sys.argv[1]
if MODE == "mirrored":
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    STRATEGIES = {"one": lambda: tf.distribute.get_strategy(),
                  "two": lambda: tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])}
else:
    multi = tf.distribute.MultiWorkerMirroredStrategy() if os.environ.get("TF_CONFIG") else None
    STRATEGIES = {"run": lambda: multi or tf.distribute.get_strategy()}

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conftest import tiny_classifier  # noqa: E402

from kd_keras import Distiller  # noqa: E402
from kd_keras.losses import KDLoss  # noqa: E402

rng = np.random.default_rng(0)
x = rng.uniform(0, 255, (64, 8, 8, 3)).astype("float32")
y = np.eye(3, dtype="float32")[rng.integers(0, 3, 64)]


def run(strategy):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        teacher = tiny_classifier(name="t", filters=8, bn=False)
        student = tiny_classifier(name="s", bn=False)
        d = Distiller(teacher, student, [KDLoss(2.0)], student_loss_weight=0.5)
        d.compile(keras.optimizers.SGD(0.1), keras.losses.CategoricalCrossentropy(from_logits=True))
    h = d.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(16), epochs=2, verbose=0, shuffle=False)
    return {"history": h.history, "weights": [w.tolist() for w in student.get_weights()]}


print("RESULT" + json.dumps({name: run(make()) for name, make in STRATEGIES.items()}))
