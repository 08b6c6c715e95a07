"""Recipe configs: the dataclasses of `kd_keras.config.schema`, read from TOML, overridden by `--set`.

A recipe is one TOML file in `recipes/`. Every key has a default here, so a
file states only what differs. Unknown keys are errors that list the valid
ones, and values are type-checked, so a typo never silently falls back to a
default.

Example:
    >>> cfg = load_config("recipes/digits.toml", overrides=["train.epochs=3"])
    >>> cfg.train.epochs
    3
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from kd_keras.config.fields import from_dict
from kd_keras.config.schema import Config

REPO_ROOT = Path(__file__).resolve().parents[2]


def quote(text: str) -> str:
    """A string as a TOML value for `--set key=VALUE`."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_value(text: str):
    """Parses a `--set` value as TOML (`3`, `0.5`, `true`, `[1, 2]`, `{a = 1}`),
    falling back to a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_override(data: dict, assignment: str) -> None:
    """Applies `a.b.0.c=value` to nested dicts/lists in place."""
    if "=" not in assignment:
        raise ValueError(f"--set expects key=value, got {assignment!r}.")
    key, text = assignment.split("=", 1)
    parts = key.strip().split(".")
    node = data
    for i, part in enumerate(parts[:-1]):
        nxt = parts[i + 1]
        if not isinstance(node, (dict, list)):
            _below_a_value(parts[:i], node, key)
        if isinstance(node, list):
            node = _list_item(node, part, key)
            continue
        if part not in node:
            node[part] = [] if nxt.isdigit() else {}
        node = node[part]
    last = parts[-1]
    if not isinstance(node, (dict, list)):
        _below_a_value(parts[:-1], node, key)
    if isinstance(node, list):
        idx = int(last) if last.isdigit() else None
        if idx is None or idx >= len(node):
            raise ValueError(f"--set {key}: index {last!r} is out of range (list has {len(node)} items).")
        node[idx] = parse_value(text.strip())
    else:
        node[last] = parse_value(text.strip())


def _below_a_value(parent: list, value, key: str):
    name = ".".join(parent)
    raise ValueError(f"--set {key}: {name} is a value ({value!r}), not a table with keys; set it as a whole, e.g. "
                     f"--set {name}=...")


def _list_item(node: list, part: str, key: str):
    if not part.isdigit():
        raise ValueError(f"--set {key}: {part!r} must be a list index.")
    idx = int(part)
    if idx == len(node):
        node.append({})
    if idx >= len(node):
        raise ValueError(f"--set {key}: index {idx} is out of range (list has {len(node)} items).")
    return node[idx]


def find_file(path: str | os.PathLike) -> Path:
    """Resolves a path relative to the working directory, then to the repository."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p
    in_repo = REPO_ROOT / p
    return in_repo if in_repo.exists() else p


def load_config(path: str | os.PathLike | None, overrides=(), smoke: bool = False) -> Config:
    """Reads a TOML recipe, applies `key=value` overrides and the smoke switch.

    Args:
        path: a TOML file, or `None` for the built-in defaults.
        overrides: `key=value` strings, e.g. `"train.epochs=3"`.
        smoke: shrink the run to seconds (1 epoch, 256 examples, 20 timing
            runs) to check that a recipe works end to end. Explicit
            `overrides` are applied after it, so `--smoke --set
            train.epochs=3` trains 3 epochs.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: bad TOML, unknown keys, wrong types.
    """
    data: dict = {}
    if path is not None:
        p = find_file(path)
        if not p.is_file():
            raise FileNotFoundError(f"config file {os.fspath(path)!r} does not exist; give a TOML file's path or a "
                                    f"shipped recipe's name (python -m kd_keras.recipes.<task> --list).")
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except UnicodeDecodeError as e:
            raise ValueError(f"config file {os.fspath(p)!r} is not UTF-8 text (byte {e.start}: {e.object[e.start:e.start + 1]!r}); "
                             f"save it as UTF-8, as TOML requires.") from None
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"config file {os.fspath(p)!r} is not valid TOML: {e}.") from None
        if not data:
            raise ValueError(f"config file {os.fspath(p)!r} sets no key (it is empty or all comments); start from a "
                             f"shipped recipe: python -m kd_keras.recipes.<task> --list.")
    if smoke:
        data.setdefault("train", {}).update(epochs=1, warmup_epochs=0, teacher_views=2)
        data.setdefault("teacher", {}).update(epochs=1)
        data.setdefault("data", {})
        data["data"]["limit"] = min(data["data"].get("limit") or 256, 256)
        data["data"]["batch_size"] = min(data["data"].get("batch_size", 64), 32)
        if data["data"].get("labels_per_class"):  # 256 examples hold few of each class
            data["data"]["labels_per_class"] = min(data["data"]["labels_per_class"], 4)
        data.setdefault("report", {}).update(latency_runs=20, throughput_batch=8, rounds=1)
        for entry in data.get("distill", []):  # per-student schedules shrink with train.epochs
            if isinstance(entry, dict):
                entry.update(epochs=0, warmup_epochs=0)
    _options_in_one_place(data)  # a flat `temperature = 4.0` would otherwise win over an `--set ...options...`
    for assignment in overrides:  # after the smoke switch: an explicit `--set` wins
        apply_override(data, assignment)
    return from_dict(Config, data)


def _options_in_one_place(data: dict) -> None:
    """Each loss table's options (written beside `method` or in `options`) moved into `options`, in place.

    Then `--set distill.0.losses.0.temperature=2`, `...options.temperature=2` and
    `...options={ temperature = 2 }` all set the one value the loss reads.
    """
    from kd_keras.config.schema import LossConfig

    for entry in data.get("distill", []) if isinstance(data.get("distill"), list) else []:
        losses = entry.get("losses") if isinstance(entry, dict) else None
        for i, table in enumerate(losses if isinstance(losses, list) else []):
            if isinstance(table, dict) and isinstance(table.get("options", {}), dict):
                losses[i] = LossConfig.normalize_table(table)
