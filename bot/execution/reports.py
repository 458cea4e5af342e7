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
# Legs of one open at most (EA_PROTOCOL 5.2: one per take profit).
MAX_LEG = 9
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
    # The leg of a split open (EA_PROTOCOL 5.2) a fill is of; None for one position.
    leg: int | None = None


class InvalidReport(Exception):
    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__(", ".join(f"{name}: {problem}" for name, problem in fields.items()))
        self.fields = fields


# kind → (required fields, optional fields)
_FIELDS: dict[ReportKind, tuple[tuple[str, ...], tuple[str, ...]]] = {
    ReportKind.ACK: (("report_id", "instruction_id"), ("ticket", "message")),
    ReportKind.FILL: (
        ("report_id", "instruction_id", "ticket", "price", "volume"),
        ("profit", "executed_at", "leg"),
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
    "leg": f"must be a whole number from 0 to {MAX_LEG}",
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


def match_parser(pattern: re.Pattern[str]) -> Any:
    def parse(raw: Any) -> str | None:
        # fullmatch: "$" alone would take a trailing newline.
        return raw if isinstance(raw, str) and pattern.fullmatch(raw) else None

    return parse


def integer_parser(low: int, high: int) -> Any:
    def parse(raw: Any) -> int | None:
        if isinstance(raw, bool) or not isinstance(raw, int):
            return None
        return raw if low <= raw <= high else None

    return parse


def decimal_parser(*, positive: bool, whole: int, places: int) -> Any:
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


def aware_time(raw: Any) -> datetime | None:
    if not isinstance(raw, str):
        return None
    try:
        value = datetime.fromisoformat(raw)
        # Stored and compared in UTC: 0001-01-01T00:00:00+01:00 has no UTC time.
        value.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    return value if value.tzinfo is not None else None


def message_parser(raw: Any) -> str | None:
    return raw if isinstance(raw, str) and len(raw) <= MAX_MESSAGE_CHARS else None


_PARSERS: dict[str, Any] = {
    "report_id": match_parser(REPORT_ID_RE),
    "instruction_id": match_parser(RECORD_ID_RE),
    "ticket": integer_parser(0, MAX_TICKET),
    # Within db/models.py's ExecutionRecord columns: Numeric(20, 10), (18, 8) and (20, 8).
    "price": decimal_parser(positive=True, whole=10, places=10),
    "volume": decimal_parser(positive=True, whole=10, places=8),
    "profit": decimal_parser(positive=False, whole=12, places=8),
    "executed_at": aware_time,
    "code": integer_parser(*INT_RANGE),
    "message": message_parser,
    "leg": integer_parser(0, MAX_LEG),
}


# --- position events (EA_PROTOCOL 5.4) ---


class EventKind(StrEnum):
    CLOSED = "closed"
    SL_MOVED = "sl_moved"
    TP_MOVED = "tp_moved"


CLOSE_REASONS = ("tp", "sl", "stop_out", "manual", "close_all", "expert")


@dataclass(frozen=True, slots=True)
class PositionEventReport:
    """``POST /api/v1/exec/event``: what became of one position of an ``open``.

    ``stop_loss`` / ``take_profit`` of a move may be None: the level was removed."""

    report_id: str
    instruction_id: str
    ticket: int
    event: EventKind
    leg: int | None = None
    reason: str | None = None
    price: Decimal | None = None
    volume: Decimal | None = None
    profit: Decimal | None = None
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    executed_at: datetime | None = None


_EVENT_REQUIRED: dict[EventKind, tuple[str, ...]] = {
    EventKind.CLOSED: ("reason", "price", "volume", "profit"),
    EventKind.SL_MOVED: (),
    EventKind.TP_MOVED: (),
}
# A move names its new level, null when it was removed: the key must be there.
_EVENT_LEVEL = {EventKind.SL_MOVED: "stop_loss", EventKind.TP_MOVED: "take_profit"}
_EVENT_PARSERS: dict[str, Any] = {
    "report_id": _PARSERS["report_id"],
    "instruction_id": _PARSERS["instruction_id"],
    "ticket": _PARSERS["ticket"],
    "leg": _PARSERS["leg"],
    "reason": lambda raw: raw if raw in CLOSE_REASONS else None,
    "price": _PARSERS["price"],
    "volume": _PARSERS["volume"],
    "profit": _PARSERS["profit"],
    "stop_loss": _PARSERS["price"],
    "take_profit": _PARSERS["price"],
    "executed_at": aware_time,
}
_EVENT_PROBLEMS = {
    **_PROBLEMS,
    "reason": f"must be one of {', '.join(CLOSE_REASONS)}",
    "stop_loss": _PROBLEMS["price"],
    "take_profit": _PROBLEMS["price"],
    "event": f"must be one of {', '.join(kind.value for kind in EventKind)}",
}


def parse_event(payload: Any) -> PositionEventReport:
    """Check a decoded event body; raise :class:`InvalidReport` naming every bad field."""
    if not isinstance(payload, dict):
        raise InvalidReport({"body": "must be a JSON object"})
    problems: dict[str, str] = {}
    raw_event = payload.get("event")
    event = EventKind(raw_event) if raw_event in tuple(EventKind) else None
    if event is None:
        problems["event"] = "is required" if raw_event is None else _EVENT_PROBLEMS["event"]
    required = {"report_id", "instruction_id", "ticket"}
    if event is not None:
        required.update(_EVENT_REQUIRED[event])
    values: dict[str, Any] = {}
    for name, parse in _EVENT_PARSERS.items():
        raw = payload.get(name)
        if raw is None:
            if name in required:
                problems[name] = "is required"
            continue
        value = parse(raw)
        if value is None:
            problems[name] = _EVENT_PROBLEMS[name]
        else:
            values[name] = value
    level = _EVENT_LEVEL.get(event) if event is not None else None
    if level is not None and level not in payload:
        problems.setdefault(level, "is required (null when it was removed)")
    if problems:
        raise InvalidReport(problems)
    assert event is not None
    return PositionEventReport(event=event, **values)
