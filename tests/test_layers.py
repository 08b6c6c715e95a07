"""The package's layering, read from docs/architecture.md and held against every import in kd_keras (lazy ones too):
no module imports a layer above its own, nor a neighbour in its own layer, and no import circle exists."""

import ast
import re
import shutil
from pathlib import Path

from kd_keras.config import REPO_ROOT

PACKAGE = REPO_ROOT / "kd_keras"
ARCHITECTURE = REPO_ROOT / "docs" / "architecture.md"


def layers_table(text: str) -> dict:
    """`{unit: (layer, row)}` from the rows `| N | `unit/` or `unit.py` | ... |` of the architecture page's table.

    The units of one row (`distiller.py`, `distiller_args.py`) are one unit: they may import each other."""
    units = {}
    for row, (layer, cells) in enumerate(re.findall(r"^\|\s*(\d+)\s*\|([^|]*)\|", text, re.M)):
        for name in re.findall(r"`([\w]+)(?:/|\.py)`", cells):
            units[name] = (int(layer), row)
    return units


def unit_of(module: str) -> str:
    """The folder (or loose module) of `kd_keras.X...`; `kd_keras` itself is the public API, `__init__`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(root: Path, module: str, name: str | None = None) -> str:
    """`from module import name` names the submodule `module.name` where one exists, else `module`."""
    if name:
        base = root.parent.joinpath(*f"{module}.{name}".split("."))
        if base.with_suffix(".py").exists() or (base / "__init__.py").exists():
            return f"{module}.{name}"
    return module


def imports(root: Path) -> dict:
    """`{module: {(imported kd_keras module, line)}}` for every module under `root`, lazy imports included."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        module = module_name(path, root)
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                edges |= {(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "kd_keras"}
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "kd_keras":
                edges |= {(resolve(root, node.module, a.name), node.lineno) for a in node.names}
        found[module] = edges
    return found


def layering_problems(root: Path, table: dict) -> list[str]:
    """Every import that goes up a layer or sideways to a neighbour, every unit the table leaves out, every circle."""
    problems = []
    graph = imports(root)
    for module, edges in graph.items():
        unit = unit_of(module)
        if unit not in table:
            problems.append(f"{module}: its folder {unit!r} is not in the layers table of docs/architecture.md")
            continue
        for target, line in sorted(edges):
            other = unit_of(target)
            if other == unit or other not in table:
                continue
            (mine, my_row), (theirs, their_row) = table[unit], table[other]
            if theirs > mine:
                problems.append(f"{module}:{line} imports {target}, a layer above ({other} {theirs} > {unit} {mine})")
            elif theirs == mine and their_row != my_row:
                problems.append(f"{module}:{line} imports {target}, a neighbour in its own layer {mine}")
    problems += [f"import circle: {' -> '.join(c)}" for c in circles({m: {t for t, _ in e} for m, e in graph.items()})]
    return problems


def circles(graph: dict) -> list[list[str]]:
    """The import circles of `graph` (each strongly connected set of two or more modules, or a self-import)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1 or v in graph.get(v, ()):
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_import_keeps_to_the_layers_of_the_architecture_page():
    table = layers_table(ARCHITECTURE.read_text())
    assert {"cli", "config", "data", "models", "teachers", "distiller", "training", "tasks", "recipes"} <= set(table)
    assert layering_problems(PACKAGE, table) == []


def test_the_tree_shows_the_architecture():
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(loose) <= 4, loose  # the rest lives in folders named for what they hold
    table = layers_table(ARCHITECTURE.read_text())
    folders = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists())
    assert [f for f in folders if f not in table] == []  # every folder has its row on the page
    assert [u for u in table if u != "__init__" and u not in folders and f"{u}.py" not in loose] == []


def test_the_check_fails_on_a_planted_upward_import_and_a_planted_circle(tmp_path):
    table = layers_table(ARCHITECTURE.read_text())
    copy = tmp_path / "kd_keras"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "recipe_files"))
    assert layering_problems(copy, table) == []
    small = copy / "models" / "small_cnn.py"
    line = len(small.read_text().splitlines()) + 4
    small.write_text(small.read_text() + "\n\ndef planted():\n    from kd_keras.recipes.runner import run\n")
    problems = layering_problems(copy, table)  # the upward import, and the circle it closes through the runner
    assert problems[0] == f"kd_keras.models.small_cnn:{line} imports kd_keras.recipes.runner, a layer above " \
                          f"(recipes 8 > models 1)", problems
    assert [p for p in problems[1:] if not p.startswith("import circle: ")] == []
    small.write_text(small.read_text().split("\n\ndef planted")[0])
    assert layering_problems(copy, table) == []
    heads = copy / "models" / "heads.py"
    heads.write_text(heads.read_text() + "\n\ndef planted():\n    from kd_keras.models.small_cnn import small_cnn\n")
    problems = layering_problems(copy, table)
    assert "import circle: kd_keras.models.heads -> kd_keras.models.small_cnn" in problems, problems


def test_the_0_1_import_paths_still_import_the_moved_modules_with_a_warning():
    import importlib
    import sys

    import pytest

    from kd_keras.cli.moved import MOVED

    for old, new in MOVED.items():
        sys.modules.pop(old, None)
        with pytest.warns(DeprecationWarning, match=f"{re.escape(old)} moved to {re.escape(new)} in kd_keras 0.2"):
            module = importlib.import_module(old)
        assert module is importlib.import_module(new) and module.__spec__.name == new
    with pytest.warns(DeprecationWarning, match="kd_keras.cli.report_user_errors moved to kd_keras.cli.errors"):
        from kd_keras.cli import report_user_errors
    from kd_keras.cli.errors import report_user_errors as current
    assert report_user_errors is current
    from kd_keras.config import Config, from_dict, load_config, to_dict  # the 0.1 module's names, from the package

    assert from_dict(Config, to_dict(load_config(None))) == load_config(None)


def test_every_task_keeps_the_one_contract_and_refuses_targets_it_does_not_take():
    import inspect

    import pytest

    from kd_keras.tasks import TASKS
    from kd_keras.tasks.base import Task
    from kd_keras.teachers.targets import TeacherTargets

    def shape(method):  # names, kinds and defaults (the annotations are the base's to state)
        return [(p.name, p.kind, p.default) for p in inspect.signature(method).parameters.values()]

    for cls in TASKS.values():
        assert shape(cls.pipelines) == shape(Task.pipelines), cls.__name__
        task = cls()
        for kind in ("outputs", "views", "maps"):
            if kind not in task.accepts:  # refused before the splits are read
                with pytest.raises(ValueError, match=f"{task.name} training takes no stored teacher {kind}"):
                    task.pipelines(None, None, 0, TeacherTargets(kind, []))
    with pytest.raises(ValueError, match="teacher targets kind must be one of outputs, views, maps, got 'logits'"):
        TeacherTargets("logits", [])
