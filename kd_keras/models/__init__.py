"""Model registry. Importing this package registers every model family."""

from kd_keras.models import (  # noqa: F401  (registration)
    bit,
    cifar_resnet,
    edges,
    hed_vgg16,
    mlp,
    mobile,
    resnet,
    small_cnn,
    sr,
)
from kd_keras.models.registry import (
    create_model,
    list_models,
    load_weights,
    model_role,
    model_task,
    pretrained_weights,
    register_model,
)

__all__ = ["create_model", "list_models", "load_weights", "model_role", "model_task", "pretrained_weights",
           "register_model"]
