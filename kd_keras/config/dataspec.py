"""DATASPEC: the real data that `kd_keras.export` and `kd_keras.benchmark` read.

A DATASPEC is one of:
- `recipes/NAME.toml`: the `[data]` table of a recipe (source, path or
  `path_env`, image size, scale, sets), exactly as the recipe trained;
- `SOURCE`: a source that ships with its libraries: `digits`
  (classification), `shapes` (edges, SYNTHETIC), `skimage` (super-resolution);
- `SOURCE:PATH`: `npz:FILE`, `folder:DIR`, `tfds:NAME`, `tiny_imagenet:DIR`,
  `mhist:DIR` (classification),
  `bsds:DIR` (edges), `folder:DIR` (super-resolution sets, e.g.
  `folder:../shared/data/sr`).

The task comes from the model, so `folder:` means class folders for a
classifier and HR image sets for a super-resolution network.
"""

from __future__ import annotations

import os

from kd_keras.config import load_config, quote

EXAMPLES = "recipes/NAME.toml, digits, npz:FILE, shapes, bsds:DIR, skimage or folder:DIR"


def parse(spec: str, task, scale: int | None = None, overrides=()):
    """The recipe `Config` that a DATASPEC stands for.

    Args:
        spec: the DATASPEC text.
        task: the task object of the model.
        scale: the model's super-resolution factor, if any; a recipe that
            says another scale is an error.
        overrides: `key=value` config overrides (e.g. `report.edge_max_images=10`).

    Raises:
        ValueError: an empty spec or a source the task does not know.
        FileNotFoundError: a recipe file that does not exist.
    """
    if not spec:
        raise ValueError(f"empty data spec; pass one of {EXAMPLES}.")
    if spec.endswith(".toml"):
        from kd_keras.config.catalog import resolve

        cfg = load_config(resolve(spec), overrides)  # recipes/NAME.toml is found in an installed package too
        if cfg.task != task.name:
            raise ValueError(f"{spec} is a {cfg.task} recipe, but the model is a {task.name} model; "
                             f"pass a data spec for {task.name}.")
        if scale and task.name == "super_resolution" and cfg.data.scale != scale:
            raise ValueError(f"the model upscales x{scale} but {spec} has data.scale={cfg.data.scale}; "
                             f"use a recipe or data spec for x{scale}.")
    else:
        source, _, path = spec.partition(":")
        if source not in task.sources:
            raise ValueError(f"unknown data source {source!r} in data spec {spec!r} for a {task.name} model; "
                             f"valid sources: {', '.join(task.sources)} (or a recipe .toml).")
        key = "name" if source == "tfds" else "path"
        sets = [f"data.{key}={quote(path)}"] if path else []
        if scale:
            sets.append(f"data.scale={scale}")
        cfg = load_config(None, [f"data.source={source}", *sets, *overrides])
    task.check_source(cfg.data.source)
    return cfg


def load(spec: str, task, scale: int | None = None, overrides=()):
    """Parses a DATASPEC and loads its splits; returns `(cfg, splits)`."""
    cfg = parse(spec, task, scale, overrides)
    return cfg, task.load(cfg.data, cfg.train.seed)


def run_config(model_path: str):
    """The recipe `Config` of the run whose folder holds `model_path` (its `results.json`, or the progress record
    of an unfinished run), else None: a model is exported and checked on its own run's data."""
    import json

    from kd_keras.config.fields import from_dict
    from kd_keras.config.schema import Config

    folder = os.path.dirname(os.path.abspath(model_path))
    for name in ("results.json", os.path.join(".progress", "config.json")):
        path = os.path.join(folder, name)
        try:
            with open(path) as f:
                saved = json.load(f)
        except (OSError, ValueError):
            continue
        saved = saved.get("config", saved) if isinstance(saved, dict) else None
        try:
            return from_dict(Config, saved)
        except (ValueError, TypeError):
            continue
    return None
