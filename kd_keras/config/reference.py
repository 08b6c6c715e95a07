"""The config reference, `docs/config.md`, written from the schema: every key with its type, default and meaning.

`python -m kd_keras.config.reference > docs/config.md` writes it. The meanings are the schema classes' docstrings
(their `Attributes:`), so a key cannot be added without a sentence: `markdown()` raises for an undocumented key,
and a test checks that `docs/config.md` is what this prints.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys

HEADER = """# Config reference

Every key of a recipe (a TOML file, `--config`), with its type, default and meaning. Any key can be changed on the
command line: `--set train.epochs=3`, `--set distill.0.losses.0.temperature=2.0` (a loss's options: beside `method`, or under `options`, one value either way). Written from the
schema (`kd_keras/config/schema.py`) by `python -m kd_keras.config.reference > docs/config.md`; a test fails when
this page and the schema differ. How recipes are used: [recipes.md](recipes.md).
"""


def descriptions(cls) -> dict[str, str]:
    """`{field: meaning}` from the `Attributes:` (or `Args:`) blocks of `cls` and its bases' docstrings."""
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        doc = inspect.getdoc(klass) or ""
        block = re.search(r"^(?:Attributes|Args):\n(.*?)(?:\n\S|\Z)", doc, re.S | re.M)
        if not block:
            continue
        current = None
        for line in block.group(1).splitlines():
            head = re.match(r"^    ([a-z_][\w, ]*?): (.*)$", line)
            if head:
                current = [n.strip() for n in head.group(1).split(",")]
                for name in current:
                    out[name] = head.group(2).strip()
            elif current and line.startswith("        "):
                for name in current:
                    out[name] += " " + line.strip()
    return out


def _type(f) -> str:
    t = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    return {"object": "any", "tuple": "list of tables", "dict": "table", "list": "list"}.get(t, t)


def _default(f) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "(required)"
    if dataclasses.is_dataclass(value):
        return "(a table)"
    if isinstance(value, tuple) and value and dataclasses.is_dataclass(value[0]):
        return "one entry, all defaults"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, int) and value >= 100_000:
        return f"`{value:_}`"
    return f"`{value!r}`".replace("'", '"')


def _tables(cls, prefix: str):
    """(table name, class) of `cls` and the tables inside it, depth first."""
    yield prefix, cls
    for f in dataclasses.fields(cls):
        if f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(f.default_factory):
            yield from _tables(f.default_factory, f"{prefix}.{f.name}" if prefix else f.name)
        elif f.metadata.get("items") is not None:
            yield from _tables(f.metadata["items"], f"{prefix}.{f.name}[]" if prefix else f"{f.name}[]")


def markdown() -> str:
    """The reference page. Raises ValueError naming any key without a meaning in its class's docstring."""
    from kd_keras.config.schema import Config

    parts, missing = [HEADER], []
    for name, cls in _tables(Config, ""):
        meaning = descriptions(cls)
        title = "top level" if not name else name
        array = f"entries of the `{name.rsplit('.', 1)[-1][:-2]}` list" if name.endswith("[]") else ""
        summary = (inspect.getdoc(cls) or "").splitlines()[0]
        parts.append(f"\n## {title}\n\n{array + ': ' + summary[0].lower() + summary[1:] if array else summary}\n")
        parts.append("| key | type | default | meaning |\n|---|---|---|---|")
        for f in dataclasses.fields(cls):
            sub = f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(f.default_factory)
            if sub or f.metadata.get("items") is not None:
                where = f"{name}.{f.name}" if name else f.name
                text = meaning.get(f.name) or f"see `{where}` below"
            else:
                text = meaning.get(f.name, "")
            if not text:
                missing.append(f"{name}.{f.name}" if name else f.name)
            choices = f.metadata.get("choices")
            if choices:
                text += " One of " + ", ".join(f'`"{c}"`' for c in choices) + "."
            parts.append(f"| `{f.name}` | {_type(f)} | {_default(f)} | {text.replace('|', '/')} |")
    if missing:
        raise ValueError(f"config key(s) without a meaning in the schema's docstrings: {', '.join(missing)}; "
                         f"describe them under Attributes: in kd_keras/config/schema.py.")
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    from kd_keras.cli.args import command_parser
    from kd_keras.version import __version__

    prog = "python -m kd_keras.config.reference"
    command_parser(prog, "Print the config reference (docs/config.md) from the schema.",
                   [f"{prog} > docs/config.md"], __version__).parse_args()
    sys.stdout.write(markdown())
