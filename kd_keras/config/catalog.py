"""The shipped recipes, found by name from an installed package as from a clone.

The repository keeps its recipes in `recipes/*.toml`, where a reader looks.
Building a wheel copies them into the package as `kd_keras/recipe_files/`
(`setup.py`; one source, no copies kept by hand), so after
`pip install kd_keras` `--config cifar10_small` finds the same file. In a
clone (or an editable install) the `recipes/` folder itself is read.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from kd_keras.config import REPO_ROOT

PACKAGED = Path(__file__).resolve().parents[1] / "recipe_files"


def recipes_dir() -> Path:
    """`kd_keras/recipe_files` in an installed wheel, else the clone's `recipes/` folder."""
    return PACKAGED if PACKAGED.is_dir() else REPO_ROOT / "recipes"


def shipped() -> dict[str, Path]:
    """Every shipped recipe: name (the file's stem) -> path."""
    folder = recipes_dir()
    return {p.stem: p for p in sorted(folder.glob("*.toml"))} if folder.is_dir() else {}


def summary(path: Path) -> tuple[str, str]:
    """A recipe's task and one-line description."""
    with open(path, "rb") as f:
        data = tomllib.load(f)
    return data.get("task", "classification"), data.get("description", "")


def resolve(config: str, log=print) -> str:
    """The recipe file that `--config` names: a path to a TOML file, or a shipped recipe's name.

    A path that exists wins, with a note when a shipped recipe has the same
    bare name; `recipes/NAME.toml` from outside a clone is the shipped NAME.

    Raises:
        ValueError: a name that no shipped recipe has (the names are listed).
        FileNotFoundError: a path with folders that does not exist.
    """
    p = Path(config).expanduser()
    names = shipped()
    stem = p.stem if p.suffix == ".toml" else p.name
    bare = len(p.parts) == 1
    if p.is_file():
        if bare and stem in names and p.resolve() != names[stem].resolve():
            log(f"note: --config {config}: using the file {p} here, not the shipped recipe {stem!r} (give "
                f"{names[stem]} to use that one).")
        return str(p)
    if stem in names and (bare or p.parent.name == "recipes"):
        return str(names[stem])
    if bare:
        raise ValueError(f"unknown recipe {config!r}: no such file here and no shipped recipe of that name; shipped "
                         f"recipes: {', '.join(names) or '(none found)'} (--list describes them).")
    raise FileNotFoundError(f"config file {config!r} does not exist; give a TOML file's path or a shipped recipe's "
                            f"name (--list shows them).")


def listing(task: str) -> str:
    """The shipped recipes of `task`, one per line with its description, for `--list`."""
    rows = [(name, *summary(path)) for name, path in shipped().items()]
    mine = [(n, d) for n, t, d in rows if t == task]
    width = max((len(n) for n, _ in mine), default=0)
    lines = [f"shipped {task} recipes ({recipes_dir()}):"]
    lines += [f"  {n.ljust(width)}  {d}" for n, d in mine]
    others = sorted({t for _, t, _ in rows if t != task})
    if others:
        lines.append("other tasks: " + ", ".join(f"python -m kd_keras.recipes.{t} --list" for t in others))
    lines.append(f"run one with: python -m kd_keras.recipes.{task} --config NAME")
    return "\n".join(lines)
