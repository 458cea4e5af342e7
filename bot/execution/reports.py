"""Execution reports from devices (EA_PROTOCOL.md section 3): the body rules, as a pure parser.

``POST /api/v1/exec/ack|fill|error`` bodies become a :class:`Report`, or every problem at
once in :class:`InvalidReport.fields` (the 422 answer's ``fields``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

REPORT_ID_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
RECORD_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
DECIMAL_RE = re.compile(r"^-?[0-9]{1,18}(\.[0-9]{1,12})?$")
MAX_MESSAGE_CHARS = 500
MAX_TICKET = 2**63 - 1
INT_RANGE = (-(2**63), 2**63 - 1)


class ReportKind(StrEnum):
    ACK = "ack"
    FILL = "fill"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Report:
    kind: ReportKind
    report_id: str
    instruction_id: str
    ticket: int | None = None
    price: Decimal | None = None
    volume: Decimal | None = None
    profit: Decimal | None = None
    executed_at: datetime | None = None
    code: int | None = None
    message: str | None = None


class InvalidReport(Exception):
    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__(", ".join(f"{name}: {problem}" for name, problem in fields.items()))
        self.fields = fields


# kind → (required fields, optional fields)
_FIELDS: dict[ReportKind, tuple[tuple[str, ...], tuple[str, ...]]] = {
    ReportKind.ACK: (("report_id", "instruction_id"), ("ticket", "message")),
    ReportKind.FILL: (
        ("report_id", "instruction_id", "ticket", "price", "volume"),
        ("profit", "executed_at"),
    ),
    ReportKind.ERROR: (("report_id", "instruction_id", "code", "message"), ()),
}

_PROBLEMS = {
    "report_id": "must be 8-64 characters of [A-Za-z0-9_-]",
    "instruction_id": "must be an instruction id as received, e.g. ins_...",
    "ticket": "must be a whole number, 0 or more",
    "price": "must be a positive decimal string, at most 10 digits each side of the point, "
    'e.g. "1.08512"',
    "volume": "must be a positive decimal string, at most 10 digits before the point and 8 "
    'after, e.g. "0.10"',
    "profit": "must be a decimal string, at most 12 digits before the point and 8 after, "
    'e.g. "-12.50"',
    "executed_at": "must be an ISO 8601 time with a zone, e.g. 2026-01-01T12:00:00Z",
    "code": "must be an integer",
    "message": f"must be text of at most {MAX_MESSAGE_CHARS} characters",
}


def parse_report(kind: ReportKind, payload: Any) -> Report:
    """Check a decoded JSON body; raise :class:`InvalidReport` naming every bad field."""
    if not isinstance(payload, dict):
        raise InvalidReport({"body": "must be a JSON object"})
    required, optional = _FIELDS[kind]
    values: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for name in (*required, *optional):
        raw = payload.get(name)
        if raw is None:
            if name in required:
                problems[name] = "is required"
            continue
        value = _PARSERS[name](raw)
        if value is None:
            problems[name] = _PROBLEMS[name]
        else:
            values[name] = value
    if problems:
        raise InvalidReport(problems)
    return Report(kind=kind, **values)


def _match(pattern: re.Pattern[str]) -> Any:
    def parse(raw: Any) -> str | None:
        # fullmatch: "$" alone would take a trailing newline.
        return raw if isinstance(raw, str) and pattern.fullmatch(raw) else None

    return parse


def _integer(low: int, high: int) -> Any:
    def parse(raw: Any) -> int | None:
        if isinstance(raw, bool) or not isinstance(raw, int):
            return None
        return raw if low <= raw <= high else None

    return parse


def _decimal(*, positive: bool, whole: int, places: int) -> Any:
    """A decimal string that its column holds exactly: at most ``whole`` digits before the
    point and ``places`` after it (PostgreSQL refuses more whole digits and rounds more
    places; SQLite would keep either, so the two would store different reports)."""

    def parse(raw: Any) -> Decimal | None:
        if not isinstance(raw, str) or not DECIMAL_RE.fullmatch(raw):
            return None
        value = Decimal(raw)
        if positive and value <= 0:
            return None
        exponent = value.as_tuple().exponent
        assert isinstance(exponent, int)  # the pattern admits no NaN or infinity
        if -exponent > places or value.adjusted() >= whole:
            return None
        return value

    return parse


def _aware_time(raw: Any) -> datetime | None:
    if not isinstance(raw, str):
        return None
    try:
        value = datetime.fromisoformat(raw)
        # Stored and compared in UTC: 0001-01-01T00:00:00+01:00 has no UTC time.
        value.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    return value if value.tzinfo is not None else None


def _message(raw: Any) -> str | None:
    return raw if isinstance(raw, str) and len(raw) <= MAX_MESSAGE_CHARS else None


_PARSERS: dict[str, Any] = {
    "report_id": _match(REPORT_ID_RE),
    "instruction_id": _match(RECORD_ID_RE),
    "ticket": _integer(0, MAX_TICKET),
    # Within db/models.py's ExecutionRecord columns: Numeric(20, 10), (18, 8) and (20, 8).
    "price": _decimal(positive=True, whole=10, places=10),
    "volume": _decimal(positive=True, whole=10, places=8),
    "profit": _decimal(positive=False, whole=12, places=8),
    "executed_at": _aware_time,
    "code": _integer(*INT_RANGE),
    "message": _message,
}
