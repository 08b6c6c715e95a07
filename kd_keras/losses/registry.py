"""Registry of losses: one class per name.

Two kinds share it: distillation methods (`"distill"`, teacher vs student,
passed to the `Distiller`) and supervised losses (`"supervised"`, labels vs
student, the loss given to `compile()`).

Example:
    >>> from kd_keras.losses import create_loss, list_losses
    >>> list_losses()[:4]
    ['at', 'dist', 'dkd', 'edge_kd']
    >>> loss = create_loss("kd", temperature=4.0)
"""

from __future__ import annotations

import inspect

_LOSSES: dict[str, type] = {}
_KINDS: dict[str, str] = {}
KINDS = ("distill", "supervised")


def register_loss(name: str, kind: str = "distill"):
    """Class decorator that registers a loss under `name`.

    Args:
        name: the registry name used in configs.
        kind: "distill" (teacher vs student) or "supervised" (labels vs student).
    """
    if kind not in KINDS:
        raise ValueError(f"loss kind must be one of {', '.join(KINDS)}, got {kind!r}.")

    def wrap(cls):
        if name in _LOSSES:
            raise ValueError(f"loss {name!r} is already registered.")
        _LOSSES[name] = cls
        _KINDS[name] = kind
        cls.registry_name = name
        return cls

    return wrap


def list_losses(kind: str = "distill") -> list[str]:
    """Returns the registered names of one kind ("distill" or "supervised"), sorted."""
    return sorted(n for n in _LOSSES if _KINDS[n] == kind)


def get_loss_class(name: str, kind: str | None = None) -> type:
    if name not in _LOSSES or (kind is not None and _KINDS[name] != kind):
        what, plural = {"distill": ("distillation method", "methods"),
                        "supervised": ("supervised loss", "losses")}.get(kind, ("loss", "losses"))
        names = list_losses(kind) if kind else sorted(_LOSSES)
        raise ValueError(f"unknown {what} {name!r}; registered {plural}: {', '.join(names)}.")
    return _LOSSES[name]


def create_loss(name: str, kind: str | None = None, **kwargs):
    """Creates the loss registered as `name` with its keyword arguments.

    Args:
        name: a registered name.
        kind: if given, `name` must be of this kind.
        **kwargs: the loss's arguments.

    Raises:
        ValueError: for an unknown name or an argument the loss does not take.
    """
    cls = get_loss_class(name, kind)
    params = inspect.signature(cls.__init__).parameters
    valid = [p for p in params if p not in ("self", "kwargs")]
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ValueError(
            f"loss {name!r} got unknown argument(s) {', '.join(unknown)}; "
            f"valid arguments: {', '.join(valid)}."
        )
    return cls(**kwargs)
