"""Our code uses other objects' public APIs only: no ``x._name`` on anything but ourselves.

A library's private attributes change between minor versions without notice (aiogram's
and aiosqlite's did), and another class's private attributes are its own business. The
test walks our Python sources and fails on every attribute access ``x._name`` (one or
two leading underscores, not a dunder) where ``x`` is not ``self`` or ``cls``, and on
the same name given as a string to ``getattr``/``setattr``/``hasattr``/``delattr`` or a
``monkeypatch.setattr``. A class that wants others (its tests included) to read or
replace something gives it a public name or a method.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = (
    "bot",
    "handlers",
    "db",
    "migrations",
    "webhook_server.py",
    "bench",
    "tests",
    "ea/agent",
)
OURSELVES = frozenset({"self", "cls"})
# A named tuple's own methods start with an underscore only so that they never clash with
# its fields; they are its documented public API.
NAMED_TUPLE_API = frozenset({"_replace", "_asdict", "_fields", "_field_defaults", "_make"})
ATTRIBUTE_FUNCTIONS = frozenset({"getattr", "setattr", "hasattr", "delattr"})


def is_private(name: str) -> bool:
    dunder = name.startswith("__") and name.endswith("__")
    return name.startswith("_") and not dunder and name not in NAMED_TUPLE_API


def is_ourselves(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id in OURSELVES


def _function_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def private_uses(source: str, filename: str = "<snippet>") -> Iterator[str]:
    """``line: expression`` for every private attribute of another object in ``source``,
    in the order they appear."""
    nodes = sorted(
        (node for node in ast.walk(ast.parse(source, filename)) if _uses_private(node)),
        key=lambda node: (getattr(node, "lineno", 0), getattr(node, "col_offset", 0)),
    )
    for node in nodes:
        yield f"{getattr(node, 'lineno', 0)}: {ast.unparse(node)}"


def _uses_private(node: ast.AST) -> bool:
    if isinstance(node, ast.Attribute):
        return is_private(node.attr) and not is_ourselves(node.value)
    if not isinstance(node, ast.Call) or _function_name(node.func) not in ATTRIBUTE_FUNCTIONS:
        return False
    if len(node.args) < 2 or is_ourselves(node.args[0]):
        return False
    name = node.args[1]
    return isinstance(name, ast.Constant) and isinstance(name.value, str) and is_private(name.value)


def python_files() -> Iterator[Path]:
    for name in SOURCES:
        path = ROOT / name
        if path.is_file():
            yield path
        else:
            yield from sorted(p for p in path.rglob("*.py") if ".venv" not in p.parts)


def test_no_private_attribute_of_another_object_is_used() -> None:
    files = list(python_files())
    assert len(files) > 100  # the walk found our sources
    found = [
        f"{path.relative_to(ROOT)}:{use}"
        for path in files
        for use in private_uses(path.read_text(encoding="utf-8"), str(path))
    ]
    assert found == [], "\n".join(found)


def test_the_check_finds_what_it_is_for() -> None:
    snippet = """
class Ours:
    def __init__(self):
        self._mine = 1
        self.__mangled = 2
    @classmethod
    def make(cls):
        return cls._factory()

def peek(router, session, monkeypatch, point):
    router._parent_router = None
    session.sync_session._private.clear()
    getattr(router, "_handler", None)
    monkeypatch.setattr(session, "_load", None)
    super()._dumps_json
    other.__secret
    router.__class__, router.__dict__, point._replace(x=1), point._asdict()
    getattr(router, "name"), setattr(self, "_mine", 3)
"""
    assert list(private_uses(snippet)) == [
        "11: router._parent_router",
        "12: session.sync_session._private",
        "13: getattr(router, '_handler', None)",
        "14: monkeypatch.setattr(session, '_load', None)",
        "15: super()._dumps_json",
        "16: other.__secret",
    ]
