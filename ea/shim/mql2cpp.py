"""The mechanical rewrite that lets g++ compile SignalBridge's MQL files, and nothing more.

MQL's dynamic arrays (``uchar data[]``, ``const uchar &data[]``) are not C++; they become
``MqlArray<uchar> data`` / ``const MqlArray<uchar> &data`` (ea/shim/mql_shim.hpp).
``#property`` lines are dropped and ``input``/``sinput`` become plain globals. Every other
line reaches g++ exactly as MetaEditor sees it, so the tests compile the files that ship.

Usage: ``python ea/shim/mql2cpp.py SOURCE_DIR TARGET_DIR`` rewrites every .mqh, .mq5 and
.mq4 under SOURCE_DIR into the same place under TARGET_DIR.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

# A declaration of a dynamic array: a type, an optional &, a name, empty brackets.
_DYNAMIC_ARRAY = re.compile(r"\b([A-Za-z_]\w*)(\s+&\s*|\s*&\s+|\s+)([A-Za-z_]\w*)\s*\[\s*\]")
_INPUT = re.compile(r"^(\s*)(?:input|sinput)\s+")
_PROPERTY = re.compile(r"^\s*#property\b")
SUFFIXES = (".mqh", ".mq5", ".mq4")


def _array(match: re.Match[str]) -> str:
    kind, space, name = match.groups()
    reference = "&" if "&" in space else ""
    return f"MqlArray<{kind}> {reference}{name}"


def translate_line(line: str) -> str:
    if _PROPERTY.match(line):
        return ""
    line = _INPUT.sub(r"\1", line)
    return _DYNAMIC_ARRAY.sub(_array, line)


def translate(source: str) -> str:
    """The C++ text of one MQL file; line numbers are kept (dropped lines become empty)."""
    return "\n".join(translate_line(line) for line in source.split("\n"))


def translate_tree(source: Path, target: Path) -> list[Path]:
    written = []
    for path in sorted(source.rglob("*")):
        if path.suffix not in SUFFIXES or not path.is_file():
            continue
        out = target / path.relative_to(source)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(translate(path.read_text(encoding="utf-8")), encoding="utf-8")
        written.append(out)
    return written


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    for path in translate_tree(Path(argv[1]), Path(argv[2])):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
