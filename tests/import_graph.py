"""Our modules' import graph, read with ``ast`` (nothing is imported): edges and cycles.

Every ``import`` and ``from ... import`` counts wherever it stands: at module level, under
``if TYPE_CHECKING:``, or inside a function (an import moved into a function to dodge a
cycle is still the cycle). tests/test_architecture.py checks the graph.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def find_modules(root: Path, tops: Iterable[str]) -> dict[str, Path]:
    """Module name → file, for the packages (folders) and single modules (``x.py``) named."""
    modules: dict[str, Path] = {}
    for top in tops:
        path = root / top
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in files:
            modules[module_name(root, file)] = file
    return modules


def _resolve(current: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = current.split(".") if is_package else current.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _ours(name: str, modules: Mapping[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is one of our modules."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def imported_names(source: str, path: Path, module: str) -> Iterator[tuple[str, int]]:
    """Every absolute name imported in ``source``, with its line: ``import a.b`` gives
    "a.b", ``from a.b import c`` gives "a.b.c" (a module when c is a submodule, else a
    name in a.b)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(source, filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node)
            for alias in node.names:
                yield (base if alias.name == "*" else f"{base}.{alias.name}"), node.lineno


def import_edges(modules: Mapping[str, Path]) -> list[Edge]:
    """Every import of one of our modules by another (``from pkg import mod`` is an edge
    to ``pkg.mod``; ``from pkg.mod import name`` too), or of a library (the edge's target
    is then the library's dotted name, e.g. "aiogram.types")."""
    edges: dict[tuple[str, str], Edge] = {}
    for module, path in modules.items():
        for name, line in imported_names(path.read_text(encoding="utf-8"), path, module):
            target = _ours(name, modules) or name
            if target != module:
                edges.setdefault((module, target), Edge(module, target, line))
    return list(edges.values())


def find_cycles(edges: Iterable[Edge]) -> list[list[str]]:
    """One cycle per strongly connected component that has one, as a path a → ... → a."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.source, set()).add(edge.target)
        graph.setdefault(edge.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: set[str] = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [_cycle_in(component, graph) for component in components]


def _cycle_in(component: set[str], graph: Mapping[str, set[str]]) -> list[str]:
    """A shortest way from the component's first member back to itself."""
    start = min(component)
    paths: dict[str, list[str]] = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(graph[node] & component):
            if nxt == start:
                return [*paths[node], start]
            if nxt not in paths:
                paths[nxt] = [*paths[node], nxt]
                queue.append(nxt)
    raise AssertionError(f"{sorted(component)} is not a cycle")
