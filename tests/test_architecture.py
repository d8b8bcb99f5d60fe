"""The package's layers, read from the code: no import cycle, imports only point down, no private names
cross a module boundary, and the package docstring names every module (utils/__init__.py)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import utils

ROOT = Path(utils.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def layer(module: str) -> str:
    """``tools``, ``lessons``, ``exercises`` or ``pipeline`` (the top level: the course's nouns)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in {"tools", "lessons", "exercises"} else "pipeline"


def _imports(module: str) -> list[tuple[str, list[str], int]]:
    """Every ``utils`` import in ``module``, at any depth: (imported module, names taken, line)."""
    found = []
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names if a.name.split(".")[0] == "utils"]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{module}:{node.lineno}: use absolute imports (from utils.x import y)"
            if node.module and node.module.split(".")[0] == "utils":
                names = [a.name for a in node.names]
                submodules = [f"{node.module}.{n}" for n in names if f"{node.module}.{n}" in MODULES]
                if submodules:  # from utils import models, viz
                    found += [(s, [], node.lineno) for s in submodules]
                    names = [n for n in names if f"{node.module}.{n}" not in MODULES]
                if names or not submodules:
                    found.append((node.module, names, node.lineno))
    return found


GRAPH = {m: {target for target, _, _ in _imports(m) if target != m and target in MODULES} for m in MODULES}


def test_the_package_has_its_layers():
    layers = {layer(m) for m in MODULES}
    assert layers == {"pipeline", "lessons", "tools", "exercises"}
    assert "utils.models" in MODULES and "utils.lessons.playground" in MODULES


def test_no_import_cycle():
    """Depth-first search over every utils import (also those inside functions)."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(GRAPH[module]):
            if state.get(target) == 1:
                cycle = path[path.index(target) :] + [target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(MODULES):
        if module not in state:
            visit(module)


# who may import whom: the pipeline only itself; a lesson the pipeline (never another lesson or a tool);
# exercises the pipeline and the lessons; tools anything but the exercises.
ALLOWED = {
    "pipeline": {"pipeline"},
    "lessons": {"pipeline"},
    "exercises": {"pipeline", "lessons"},
    "tools": {"pipeline", "lessons", "tools"},
}
PACKAGES = {"utils", "utils.lessons", "utils.tools", "utils.exercises"}


def _lesson(module: str) -> str:
    return ".".join(module.split(".")[:3])  # a lesson may be a package: utils.lessons.playground.views


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module):
    bad = []
    for target in sorted(GRAPH[module] - PACKAGES):
        own, theirs = layer(module), layer(target)
        if own == theirs == "lessons":
            if _lesson(module) != _lesson(target):
                bad.append(f"{target} (another lesson)")
        elif theirs not in ALLOWED[own] and not (own == theirs == "exercises"):
            bad.append(f"{target} ({theirs})")
    assert not bad, f"{module} ({layer(module)}) imports {', '.join(bad)}: move the shared part down to utils/"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_name_crosses_a_module(module):
    tree = ast.parse(MODULES[module].read_text())
    aliases = {}  # local name -> utils module, for "from utils import models" / "import utils.models as m"
    crossing = []
    for target, names, line in _imports(module):
        if target == module:
            continue
        crossing += [f"line {line}: from {target} import {n}" for n in names if n.startswith("_")]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "utils":
            for a in node.names:
                if f"{node.module}.{a.name}" in MODULES:
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            crossing.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
    assert not crossing, f"{module} uses another module's private names: {crossing}; make them public or move them"


def test_the_package_docstring_names_every_module():
    """The architecture section (utils/__init__.py) has one line per module: a new module must be added there."""
    doc = utils.__doc__ or ""
    missing = []
    for module in MODULES:
        if module in PACKAGES:
            continue
        short = module.removeprefix("utils.")
        short = "exercises" if short.startswith("exercises.") else short  # one line for nb01 ... nb08
        short = ".".join(short.split(".")[:2])  # a lesson package's line covers its own modules
        if not re.search(rf"``{re.escape(short)}``", doc):
            missing.append(short)
    assert not missing, f"utils/__init__.py's architecture section does not name: {missing}"
