"""The import graph of ``hashmesh``: layers flow one way, and no module imports itself back.

The layers, top to bottom (``node/__init__.py`` explains each)::

    interop -> cli -> api -> {service, reporting} -> {cases, federation, matching} -> store
        -> {config, runtime} -> protocol

A module may import any layer below its own, and modules of its own package; never a layer
above, nor a sibling package of the same rank. Every import counts: those under
``TYPE_CHECKING`` and those inside functions too, since each is a dependency a reader must
follow. The graph is read with ``ast`` from the files, so nothing is imported to check it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE_DIRS = {"hashmesh.protocol": ROOT / "protocol", "hashmesh.node": ROOT / "node"}

RANKS = {
    "hashmesh.protocol": 0,
    "hashmesh.node.config": 1,
    "hashmesh.node.runtime": 1,
    "hashmesh.node.store": 2,
    "hashmesh.node.cases": 3,
    "hashmesh.node.federation": 3,
    "hashmesh.node.matching": 3,
    "hashmesh.node.service": 4,
    "hashmesh.node.reporting": 4,
    "hashmesh.node.api": 5,
    "hashmesh.node.cli": 6,
    "hashmesh.node.interop": 7,
}


def module_files() -> dict[str, Path]:
    found = {}
    for package, directory in SOURCE_DIRS.items():
        for path in directory.rglob("*.py"):
            parts = path.relative_to(directory).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


def imported_names(path: Path, module: str) -> list[tuple[int, str]]:
    """Every module that ``path`` imports, resolved to an absolute dotted name."""
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[:len(base) - node.level + (1 if is_package else 0)]
                name = ".".join([*base, *([node.module] if node.module else [])])
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            # ``from package import module`` imports the module too
            found += [(node.lineno, f"{name}.{alias.name}") for alias in node.names]
    return found


def layer_of(module: str) -> str | None:
    for layer in sorted(RANKS, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


def project_graph() -> tuple[dict[str, set[str]], list[str]]:
    files = module_files()
    graph: dict[str, set[str]] = {name: set() for name in files}
    stray = []
    for module, path in files.items():
        for line, name in imported_names(path, module):
            if name.split(".")[0] in {"node", "protocol"}:
                stray.append(f"{path.relative_to(ROOT)}:{line}: import {name}")
            if name in files and name != module:
                graph[module].add(name)
    return graph, stray


def test_every_module_belongs_to_a_layer() -> None:
    lost = [m for m in module_files() if m not in {"hashmesh.node"} and layer_of(m) is None]
    assert lost == [], "give each new subpackage a rank in RANKS (and node/__init__.py)"


def test_nothing_imports_the_repository_folders_by_their_bare_names() -> None:
    _, stray = project_graph()
    assert stray == []


def test_imports_flow_down_the_layers() -> None:
    graph, _ = project_graph()
    upward = []
    for module, targets in graph.items():
        source = layer_of(module)
        for target in targets:
            destination = layer_of(target)
            if source is None or destination is None or source == destination:
                continue
            if RANKS[destination] >= RANKS[source]:
                upward.append(f"{module} ({source}) imports {target} ({destination})")
    assert sorted(upward) == []


def test_there_is_no_import_cycle() -> None:
    graph, _ = project_graph()
    assert find_cycle(graph) is None


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                return [*stack[stack.index(target):], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            return cycle
    return None


@pytest.mark.parametrize("graph, expected", [
    ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
])
def test_the_cycle_finder_finds_cycles(graph: dict[str, set[str]],
                                       expected: list[str] | None) -> None:
    assert find_cycle(graph) == expected


def test_the_import_reader_resolves_relative_and_from_imports(tmp_path: Path) -> None:
    sample = tmp_path / "mod.py"
    sample.write_text("from . import sibling\nfrom ..store.sqlite import Store\n"
                      "if TYPE_CHECKING:\n    from hashmesh.node.api import routes\n")
    names = {name for _, name in imported_names(sample, "hashmesh.node.service.mod")}
    assert {"hashmesh.node.service.sibling", "hashmesh.node.store.sqlite",
            "hashmesh.node.api.routes"} <= names
