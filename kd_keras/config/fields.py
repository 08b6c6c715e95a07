"""Typed dataclasses from TOML tables and back, knowing no schema: the schema's classes declare what they need.

A field whose value is a list of tables names their class in its metadata (`{"items": DistillConfig}`), a field
with a closed set of values names them (`{"choices": ("adam", "adamw", "sgd")}`: declared and checked in one place,
the schema); a class whose table holds keys beside its fields folds them in with a `normalize_table(data)` static
method.
"""

from __future__ import annotations

import dataclasses
import typing


def from_dict(cls, data: dict, where: str = ""):
    """Builds dataclass `cls` from a dict, checking keys and value types."""
    if not isinstance(data, dict):
        raise ValueError(f"{where or 'config'} must be a table, got {data!r}.")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    normalize = getattr(cls, "normalize_table", None)
    if normalize is not None:  # a table whose keys are not all fields (LossConfig: method options beside method)
        data = normalize(data)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(
            f"unknown config key(s) {', '.join(where + k for k in unknown)}; "
            f"valid keys{' in ' + where.rstrip('.') if where else ''}: {', '.join(fields)}."
        )
    kwargs = {}
    for key, value in data.items():
        hint, path = hints[key], f"{where}{key}"
        item_cls = fields[key].metadata.get("items")
        if item_cls is not None:
            if not isinstance(value, (list, tuple)):
                raise ValueError(f"{path} must be a list of tables, got {value!r}.")
            kwargs[key] = tuple(from_dict(item_cls, v, f"{path}.{i}.") for i, v in enumerate(value))
        elif dataclasses.is_dataclass(hint):
            kwargs[key] = from_dict(hint, value, f"{path}.")
        else:
            kwargs[key] = _check_choice(fields[key], _check_type(value, hint, path), path)
    return cls(**kwargs)


def check_choices(cfg, where: str = "") -> None:
    """Every field of a built dataclass (and of those inside it) against its declared `choices`, as `from_dict`
    checks a table: for configs built in Python rather than read from TOML."""
    for f in dataclasses.fields(cfg):
        value, path = getattr(cfg, f.name), f"{where}{f.name}"
        _check_choice(f, value, path)
        if dataclasses.is_dataclass(value):
            check_choices(value, f"{path}.")
        elif isinstance(value, tuple):  # a list of tables
            for i, item in enumerate(value):
                if dataclasses.is_dataclass(item):
                    check_choices(item, f"{path}.{i}.")


def _check_choice(field, value, path):
    """`value` if the field declares no `choices` or `value` is one of them; else a one-line error naming both."""
    choices = field.metadata.get("choices")
    if choices and value not in choices:
        raise ValueError(f"{path} must be one of {', '.join(choices)}, got {value!r}.")
    return value


def _check_type(value, hint, path):
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif hint is str:
        ok = isinstance(value, str)
    elif hint is dict:
        ok = isinstance(value, dict)
    elif hint is list:
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
        value = list(value) if ok else value
    elif hint == list[float]:
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                       for v in value)
        value = [float(v) for v in value] if ok else value
    else:
        ok = True
    if not ok:
        kind = "list of strings" if hint is list else "list of numbers" if hint == list[float] else hint.__name__
        raise ValueError(f"config key {path} must be of type {kind}, got {value!r}.")
    return value


def to_dict(cfg) -> dict:
    """The config as plain TOML-able data (what results.json records)."""
    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if dataclasses.is_dataclass(v):
            v = to_dict(v)
        elif isinstance(v, tuple):
            v = [to_dict(x) if dataclasses.is_dataclass(x) else x for x in v]
        out[f.name] = v
    return out
