"""Request bodies read as JSON, safely for any bytes (EA_PROTOCOL.md sections 3 and 4).

``json.loads`` alone lets a hostile body reach places that crash or store what cannot be
stored: nesting deep enough for a RecursionError, integers past Python's int-string limit,
``NaN``, lone surrogates (``"\\ud800"``: no UTF-8 encoder, log handler or PostgreSQL takes
them), NUL characters (PostgreSQL refuses them in text) and duplicate keys (which copy
counts?). :func:`parse_json` answers each before any field is judged:

- not JSON at all → :class:`NotJson` (the caller's ``400 invalid_json``): not UTF-8,
  nested deeper than :data:`MAX_DEPTH`, ``NaN``/``Infinity`` (not JSON), a syntax error;
- JSON, but a value no field can take → :attr:`JsonBody.problems`, per top-level field
  (the caller's ``422 invalid_request`` with ``fields``): a lone surrogate or NUL in a
  string, a key given twice.

Numbers: fractions are ``Decimal`` (exact, never a float) and integers of more than
:data:`MAX_INT_DIGITS` digits are ``Decimal`` too, so no field ever takes them as an
``int`` (every integer field is 64-bit) and Python's int-string limit is never reached.

The checks cost next to nothing on ordinary bodies: the depth scan runs only when the
body holds more brackets than :data:`MAX_DEPTH`, the string walk only when a ``\\u0000``
or ``\\uD800``-``\\uDFFF`` escape appears.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

MAX_DEPTH = 32
MAX_INT_DIGITS = 20  # 2**64 has 20 digits

_UNREADABLE_TEXT = "must be text without NUL characters or lone surrogates (\\uD800-\\uDFFF)"
_DUPLICATE = "is given more than once"

# A JSON string, escapes included, so brackets inside strings are not counted.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
# The only ways a lone surrogate or a NUL can enter a string of valid UTF-8 JSON.
_SUSPECT_ESCAPE = re.compile(r"\\u(?:[dD][89a-fA-F][0-9a-fA-F]{2}|0000)")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class NotJson(ValueError):
    """The body is not JSON; ``reason`` says why, fit for the error message."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class JsonBody:
    value: Any
    problems: dict[str, str] = field(default_factory=dict)


def parse_json(raw: bytes) -> JsonBody:
    """Decode ``raw`` (strict UTF-8, a leading BOM allowed) as JSON; see the module doc."""
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise NotJson("it is not UTF-8") from None
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and nesting_depth(raw) > MAX_DEPTH:
        raise NotJson(f"it is nested deeper than {MAX_DEPTH} levels")
    problems: dict[str, str] = {}
    try:
        try:
            value = _DECODER.decode(text)
        except _DuplicateKey:
            # Rare, so only then a decoder of its own that names every key given twice.
            value = _decoder(_object_hook(problems)).decode(text)
    except NotJson:
        raise
    except ValueError as exc:
        if isinstance(exc, json.JSONDecodeError):
            raise NotJson(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
        raise NotJson("it is not JSON") from None
    if _SUSPECT_ESCAPE.search(text):
        _find_unstorable(value, problems)
    return JsonBody(value, problems)


def nesting_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in ``raw``, brackets in strings ignored.

    Unbalanced input only has to give a number: it is not JSON either way.
    """
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    depth = deepest = 0
    for byte in brackets:
        if byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def field_name(name: str) -> str:
    """A key as it can be named in ``fields`` (and in any log): unstorable characters
    written as ``\\uXXXX`` escapes."""
    return _UNSTORABLE.sub(lambda match: f"\\u{ord(match.group()):04x}", name)


def _parse_int(digits: str) -> int | Decimal:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        return Decimal(digits)
    return int(digits)


def _reject_constant(name: str) -> Any:
    raise NotJson(f"{name} is not a JSON number")


class _DuplicateKey(Exception):
    pass


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _DuplicateKey
    return result


ObjectHook = Callable[[list[tuple[str, Any]]], dict[str, Any]]


def _decoder(object_hook: ObjectHook) -> json.JSONDecoder:
    return json.JSONDecoder(
        parse_float=Decimal,
        parse_int=_parse_int,
        parse_constant=_reject_constant,
        object_pairs_hook=object_hook,
    )


def _object_hook(problems: dict[str, str]) -> ObjectHook:
    def build(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result = dict(pairs)
        if len(result) != len(pairs):
            seen: set[str] = set()
            for name, _value in pairs:
                if name in seen:
                    problems.setdefault(field_name(name), _DUPLICATE)
                seen.add(name)
        return result

    return build


def _find_unstorable(value: Any, problems: dict[str, str]) -> None:
    if isinstance(value, dict):
        for name, item in value.items():
            if _UNSTORABLE.search(name) or _holds_unstorable(item):
                problems[field_name(name)] = _UNREADABLE_TEXT
    elif _holds_unstorable(value):
        problems["body"] = _UNREADABLE_TEXT


def _holds_unstorable(value: Any) -> bool:
    # Recursion is bounded: parse_json refused anything nested deeper than MAX_DEPTH.
    if isinstance(value, str):
        return _UNSTORABLE.search(value) is not None
    if isinstance(value, list):
        return any(_holds_unstorable(item) for item in value)
    if isinstance(value, dict):
        return any(_UNSTORABLE.search(k) or _holds_unstorable(v) for k, v in value.items())
    return False


# Built once: json.loads with any option builds a decoder per call, which costs more than
# decoding a report.
_DECODER = _decoder(_unique_object)
