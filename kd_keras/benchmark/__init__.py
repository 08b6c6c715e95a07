"""Benchmark exported and Keras models: size, metric, latency, throughput, memory.

`python -m kd_keras.benchmark MODEL [MODEL ...] --data DATASPEC`; see
`kd_keras.benchmark.bench.benchmark` for the Python API.
"""

from kd_keras.benchmark.bench import benchmark, time_model

__all__ = ["benchmark", "time_model"]
