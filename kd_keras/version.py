"""The version of kd_keras, written once: `kd_keras.__version__`, pyproject.toml and every results.json read it."""

__version__ = "0.2.0"
