"""Model registry. Importing this package registers every model family."""

from kd_keras.models import bit, cifar_resnet, edges, mlp, mobile, resnet, small_cnn, sr  # noqa: F401  (registration)
from kd_keras.models.registry import create_model, list_models, load_weights, model_role, model_task, register_model

__all__ = ["create_model", "list_models", "load_weights", "model_role", "model_task", "register_model"]
