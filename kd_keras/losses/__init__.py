"""Distillation losses: one class per method, registered by name."""

from kd_keras.losses.base import DistillLoss
from kd_keras.losses.features import ATLoss, FitNetsLoss
from kd_keras.losses.logits import DKDLoss, KDLoss
from kd_keras.losses.registry import create_loss, get_loss_class, list_losses, register_loss

__all__ = [
    "ATLoss",
    "DKDLoss",
    "DistillLoss",
    "FitNetsLoss",
    "KDLoss",
    "create_loss",
    "get_loss_class",
    "list_losses",
    "register_loss",
]
