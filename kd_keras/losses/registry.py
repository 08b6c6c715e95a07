"""Registry of distillation methods: one loss class per name.

Example:
    >>> from kd_keras.losses import create_loss, list_losses
    >>> list_losses()
    ['at', 'dkd', 'fitnets', 'kd']
    >>> loss = create_loss("kd", temperature=4.0)
"""

from __future__ import annotations

import inspect

_LOSSES: dict[str, type] = {}


def register_loss(name: str):
    """Class decorator that registers a distillation loss under `name`."""

    def wrap(cls):
        if name in _LOSSES:
            raise ValueError(f"distillation loss {name!r} is already registered.")
        _LOSSES[name] = cls
        cls.registry_name = name
        return cls

    return wrap


def list_losses() -> list[str]:
    """Returns the registered method names, sorted."""
    return sorted(_LOSSES)


def get_loss_class(name: str) -> type:
    if name not in _LOSSES:
        raise ValueError(
            f"unknown distillation method {name!r}; registered methods: {', '.join(list_losses())}."
        )
    return _LOSSES[name]


def create_loss(name: str, **kwargs):
    """Creates the loss registered as `name` with its keyword arguments.

    Raises:
        ValueError: for an unknown name or an argument the loss does not take.
    """
    cls = get_loss_class(name)
    params = inspect.signature(cls.__init__).parameters
    valid = [p for p in params if p != "self"]
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ValueError(
            f"distillation method {name!r} got unknown argument(s) {', '.join(unknown)}; "
            f"valid arguments: {', '.join(valid)}."
        )
    return cls(**kwargs)
