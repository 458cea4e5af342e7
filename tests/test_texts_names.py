"""``bot.chat.texts`` gathers its modules by star imports: a name defined in two of them
would silently take the last one's words everywhere (the device menu's Resume button once
read "Resume today"). Every module-level name is defined in one module only."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

TEXTS = Path(__file__).resolve().parent.parent / "bot" / "chat" / "texts"


def _public_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {name for name in names if not name.startswith("_")}


def test_no_text_name_is_defined_twice() -> None:
    where: dict[str, list[str]] = defaultdict(list)
    modules = sorted(p for p in TEXTS.glob("*.py") if p.name != "__init__.py")
    assert len(modules) > 5
    for path in modules:
        for name in _public_names(path):
            where[name].append(path.name)
    assert {name: files for name, files in where.items() if len(files) > 1} == {}
