"""The layout holds: no import cycle between our modules, and each layer imports only below it.

Read from the source with ``ast`` (tests/import_graph.py): an import inside a function or
under ``TYPE_CHECKING`` counts like any other, so a cycle cannot be hidden by moving an
import into a function. Dependencies point one way:

    webhook_server, bot.app, bot.factory, bot.container   (wiring: builds and holds services)
    bot.intake                                            (Telegram's updates in: the inbox)
    handlers, bot.chat, bot.web                           (Telegram and HTTP: parse, format)
    bot.execution, bot.domain                             (the EA side; business rules)
    bot.infra                                             (clock, outbox, sending, limits)
    db                                                    (models, engine, repositories)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.import_graph import Edge, find_cycles, find_modules, import_edges

REPO_ROOT = Path(__file__).resolve().parent.parent
OURS = ("bot", "handlers", "db", "webhook_server.py")

# Only the wiring may see the whole: a service that imports the container (or the app)
# can reach every other service behind its back, and sits in a cycle with it.
WIRING = ("bot.container", "bot.factory", "bot.app", "bot.__main__", "webhook_server")

# Layer (module prefix) → what no module in it may import (prefixes, ours or libraries').
FORBIDDEN: dict[str, tuple[str, ...]] = {
    # Business rules return data and raise errors; the chat layer and the side server
    # format them, so the rules run (and are tested) without Telegram or HTTP.
    "bot.domain": ("bot.chat", "bot.intake", "handlers", "bot.web", "aiogram", "aiohttp", *WIRING),
    "bot.execution": ("bot.chat", "bot.intake", "handlers", "bot.web", *WIRING),
    "bot.infra": (
        *("bot.chat", "bot.intake", "bot.domain", "bot.execution", "handlers", "bot.web"),
        *WIRING,
    ),
    # The database layer knows nothing of the bot (times come in as arguments).
    "db": ("bot", "handlers", "webhook_server"),
    # Views get their services from typed app keys (bot/web/keys.py), never from the
    # module that builds the app.
    "bot.web": ("webhook_server", "bot.app", "bot.factory", "bot.container", "handlers"),
    "bot.chat": ("handlers", "bot.intake", "bot.web", "bot.app", "bot.factory", "webhook_server"),
    # Updates in: stored, fed to the dispatcher (handlers arrive through it, not imports).
    "bot.intake": ("handlers", "bot.web", "bot.app", "bot.factory", "webhook_server"),
    "handlers": ("bot.web", "bot.app", "bot.factory", "webhook_server"),
}

# Known offenders, each with the work that removes it; empty when no such work is open.
KNOWN_OFFENDERS: frozenset[tuple[str, str]] = frozenset()


def _matches(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def layering_violations(edges: list[Edge], forbidden: dict[str, tuple[str, ...]]) -> list[Edge]:
    return [
        edge
        for edge in edges
        for layer, banned in forbidden.items()
        if _matches(edge.source, layer) and any(_matches(edge.target, b) for b in banned)
    ]


def _describe(edge: Edge) -> str:
    return f"{edge.source} (line {edge.line}) imports {edge.target}"


@pytest.fixture(scope="module")
def edges() -> list[Edge]:
    return import_edges(find_modules(REPO_ROOT, OURS))


def test_no_import_cycles(edges: list[Edge]) -> None:
    known = [e for e in edges if (e.source, e.target) not in KNOWN_OFFENDERS]
    cycles = find_cycles(known)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_each_layer_imports_only_below_it(edges: list[Edge]) -> None:
    found = layering_violations(edges, FORBIDDEN)
    unexpected = [e for e in found if (e.source, e.target) not in KNOWN_OFFENDERS]
    assert not unexpected, "imports against the layering:\n" + "\n".join(
        _describe(e) for e in unexpected
    )


def test_the_known_offenders_are_still_there(edges: list[Edge]) -> None:
    """An entry whose import is gone must leave the list, so the list cannot go stale."""
    present = {(e.source, e.target) for e in layering_violations(edges, FORBIDDEN)}
    assert sorted(KNOWN_OFFENDERS - present) == []


def test_every_module_opens_with_a_docstring_saying_its_job() -> None:
    missing = [
        str(path.relative_to(REPO_ROOT))
        for path in find_modules(REPO_ROOT, OURS).values()
        if not ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert missing == []


def test_the_walk_covers_the_whole_tree(edges: list[Edge]) -> None:
    modules = find_modules(REPO_ROOT, OURS)
    assert {"webhook_server", "bot.app", "bot.domain.users", "db.repositories.users"} <= set(
        modules
    )
    assert any(e.source.startswith("handlers.") for e in edges)


# ------------------------------------------------------------------ the walker itself


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_a_cycle_through_a_function_level_import_is_found(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pkg/__init__.py": '"""Package."""\n',
            "pkg/low.py": "def late():\n    from pkg.high import thing\n    return thing\n",
            "pkg/high.py": "from . import low\nthing = low\n",
            "pkg/alone.py": "import pkg.low\n",
            "single.py": "from pkg.alone import pkg\n",
        },
    )
    edges = import_edges(find_modules(tmp_path, ("pkg", "single.py")))
    assert find_cycles(edges) == [["pkg.high", "pkg.low", "pkg.high"]]


def test_a_cycle_under_type_checking_is_found(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "app/__init__.py": "",
            "app/a.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from app.b import B\n"
            ),
            "app/b.py": "from app.c import C\n",
            "app/c.py": "import app.a\n",
        },
    )
    edges = import_edges(find_modules(tmp_path, ("app",)))
    assert find_cycles(edges) == [["app.a", "app.b", "app.c", "app.a"]]


def test_a_layering_violation_is_found(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "core/__init__.py": "",
            "core/rules.py": "import aiohttp.web\nfrom ui import views\n",
            "ui/__init__.py": "",
            "ui/views.py": "from core.rules import x\n",
        },
    )
    edges = import_edges(find_modules(tmp_path, ("core", "ui")))
    found = layering_violations(edges, {"core": ("ui", "aiohttp")})
    assert sorted(_describe(e) for e in found) == [
        "core.rules (line 1) imports aiohttp.web",
        "core.rules (line 2) imports ui.views",
    ]
    assert find_cycles(edges) == [["core.rules", "ui.views", "core.rules"]]
