"""Losses: one class per method, registered by name (distillation and supervised)."""

from kd_keras.losses.base import DistillLoss
from kd_keras.losses.dense import (BalancedBCELoss, ChannelWiseLoss, EdgeKDLoss, FAKDLoss, L1Loss, OutputL1Loss,
                                  SideOutputKDLoss)
from kd_keras.losses.features import ATLoss, FitNetsLoss
from kd_keras.losses.labelled import LabelledAccuracy, LabelledCrossentropy
from kd_keras.losses.logits import DISTLoss, DKDLoss, KDLoss, MLKDLoss, standardize_logits
from kd_keras.losses.registry import create_loss, get_loss_class, list_losses, register_loss

__all__ = [
    "ATLoss",
    "BalancedBCELoss",
    "ChannelWiseLoss",
    "DISTLoss",
    "DKDLoss",
    "DistillLoss",
    "EdgeKDLoss",
    "FAKDLoss",
    "FitNetsLoss",
    "KDLoss",
    "L1Loss",
    "LabelledAccuracy",
    "LabelledCrossentropy",
    "MLKDLoss",
    "OutputL1Loss",
    "SideOutputKDLoss",
    "create_loss",
    "get_loss_class",
    "list_losses",
    "register_loss",
    "standardize_logits",
]
