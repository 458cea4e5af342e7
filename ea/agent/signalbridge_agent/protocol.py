"""The instructions of EA_PROTOCOL.md section 3, read strictly, and the report bodies.

An instruction the agent cannot read is never traded: :func:`parse_instruction` raises
:class:`Unreadable` and the agent answers error 90008 (when it can name the instruction).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import IntEnum, StrEnum
from typing import Any, ClassVar, TypeVar


class Code(IntEnum):
    """The EA's own error codes (EA_PROTOCOL.md 5.5)."""

    STALE = 90001
    SYMBOL_UNAVAILABLE = 90002
    VOLUME_BELOW_MINIMUM = 90003
    SPREAD_TOO_WIDE = 90004
    PRICE_TOO_FAR = 90005
    TRADING_NOT_ALLOWED = 90006
    NOTHING_OF_OURS = 90007
    UNREADABLE = 90008
    MARKET_CLOSED = 90009


class Action(StrEnum):
    OPEN = "open"
    MODIFY = "modify"
    CLOSE = "close"
    CANCEL = "cancel"


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"


INSTRUCTION_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
REPORT_ID_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_SYMBOL_RE = re.compile(r"^[^\s\x00-\x1f]{1,64}$")
_E = TypeVar("_E", bound=StrEnum)
_DECIMAL_RE = re.compile(r"^-?[0-9]{1,18}(\.[0-9]{1,12})?$")
MAX_MESSAGE_CHARS = 500


@dataclass(frozen=True, slots=True)
class Instruction:
    """Fields every action has."""

    id: str
    signal_id: str
    symbol: str
    issued_at: datetime


@dataclass(frozen=True, slots=True)
class Open(Instruction):
    side: Side
    order_type: OrderType
    entry: Decimal | None
    stop_loss: Decimal | None
    take_profit: tuple[Decimal, ...]
    volume: Decimal
    comment: str
    expires_at: datetime

    action: ClassVar[Action] = Action.OPEN


@dataclass(frozen=True, slots=True)
class Modify(Instruction):
    stop_loss: Decimal | None
    take_profit: tuple[Decimal, ...]

    action: ClassVar[Action] = Action.MODIFY


@dataclass(frozen=True, slots=True)
class Close(Instruction):
    fraction: Decimal

    action: ClassVar[Action] = Action.CLOSE


@dataclass(frozen=True, slots=True)
class Cancel(Instruction):
    action: ClassVar[Action] = Action.CANCEL


AnyInstruction = Open | Modify | Close | Cancel


class Unreadable(Exception):
    """The instruction could not be read; ``instruction_id`` is None when not even its id."""

    def __init__(self, instruction_id: str | None, problem: str) -> None:
        super().__init__(problem)
        self.instruction_id = instruction_id
        self.problem = problem


def instruction_id_of(raw: Any) -> str | None:
    """The instruction's id if it has a usable one (to report on it), else None."""
    if isinstance(raw, dict):
        value = raw.get("id")
        if isinstance(value, str) and INSTRUCTION_ID_RE.match(value):
            return value
    return None


class _Reader:
    def __init__(self, raw: dict[str, Any], instruction_id: str) -> None:
        self.raw = raw
        self.id = instruction_id

    def fail(self, field: str, problem: str) -> Unreadable:
        return Unreadable(self.id, f"{field} {problem}")

    def text(self, field: str, pattern: re.Pattern[str] | None = None) -> str:
        value = self.raw.get(field)
        if not isinstance(value, str) or not value:
            raise self.fail(field, "is missing or not text")
        if pattern is not None and not pattern.match(value):
            raise self.fail(field, "is malformed")
        return value

    def price(self, field: str, *, nullable: bool) -> Decimal | None:
        value = self.raw.get(field)
        if value is None:
            if field in self.raw and nullable:
                return None
            raise self.fail(field, "is missing")
        return positive_decimal(
            value, lambda: self.fail(field, "must be a positive decimal string")
        )

    def prices(self, field: str) -> tuple[Decimal, ...]:
        value = self.raw.get(field)
        if not isinstance(value, list):
            raise self.fail(field, "must be a list of decimal strings")
        return tuple(
            positive_decimal(item, lambda: self.fail(field, "must hold positive decimal strings"))
            for item in value
        )

    def time(self, field: str) -> datetime:
        value = self.raw.get(field)
        if not isinstance(value, str):
            raise self.fail(field, "is missing")
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise self.fail(field, "is not an ISO 8601 time") from None
        if parsed.tzinfo is None:
            raise self.fail(field, "has no time zone")
        return parsed

    def choice(self, field: str, kind: type[_E]) -> _E:
        value = self.raw.get(field)
        try:
            if not isinstance(value, str):
                raise ValueError(field)
            return kind(value)
        except ValueError:
            allowed = ", ".join(member.value for member in kind)
            raise self.fail(field, f"must be one of {allowed}") from None


def positive_decimal(value: Any, error: Any) -> Decimal:
    """``value`` as a positive Decimal; a decimal *string* only (never a JSON number)."""
    if not isinstance(value, str) or not _DECIMAL_RE.match(value):
        raise error()
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise error() from None
    if number <= 0:
        raise error()
    return number


def parse_instruction(raw: Any) -> AnyInstruction:
    """One instruction of a poll's answer; raises :class:`Unreadable`."""
    instruction_id = instruction_id_of(raw)
    if instruction_id is None:
        raise Unreadable(None, "the instruction has no usable id")
    assert isinstance(raw, dict)
    read = _Reader(raw, instruction_id)
    action = read.choice("action", Action)
    signal_id = read.text("signal_id", INSTRUCTION_ID_RE)
    symbol = read.text("symbol", _SYMBOL_RE)
    issued_at = read.time("issued_at")
    if action is Action.OPEN:
        order_type = read.choice("order_type", OrderType)
        entry = read.price("entry", nullable=True)
        if order_type is OrderType.MARKET and entry is not None:
            raise read.fail("entry", "must be null for a market order")
        if order_type is not OrderType.MARKET and entry is None:
            raise read.fail("entry", f"is required for a {order_type.value} order")
        comment = raw.get("comment")
        if comment is not None and not isinstance(comment, str):
            raise read.fail("comment", "must be text or null")
        volume = read.price("volume", nullable=False)
        assert volume is not None
        return Open(
            id=instruction_id,
            signal_id=signal_id,
            symbol=symbol,
            issued_at=issued_at,
            side=read.choice("side", Side),
            order_type=order_type,
            entry=entry,
            stop_loss=read.price("stop_loss", nullable=True),
            take_profit=read.prices("take_profit"),
            volume=volume,
            comment=comment or "",
            expires_at=read.time("expires_at"),
        )
    if action is Action.MODIFY:
        return Modify(
            id=instruction_id,
            signal_id=signal_id,
            symbol=symbol,
            issued_at=issued_at,
            stop_loss=read.price("stop_loss", nullable=True),
            take_profit=read.prices("take_profit"),
        )
    if action is Action.CLOSE:
        fraction = read.price("fraction", nullable=False)
        assert fraction is not None
        if fraction > 1:
            raise read.fail("fraction", "must be at most 1")
        return Close(
            id=instruction_id,
            signal_id=signal_id,
            symbol=symbol,
            issued_at=issued_at,
            fraction=fraction,
        )
    return Cancel(id=instruction_id, signal_id=signal_id, symbol=symbol, issued_at=issued_at)


# ---------------------------------------------------------------------- reports


class Step(StrEnum):
    """What a report says about its instruction; with the instruction id, its report id."""

    ACK = "ack"  # received and journaled
    PLACED = "placed"  # a pending order is on the book (an ack with its ticket)
    DONE = "done"  # a modify or cancel was carried out (an ack with the ticket)
    FILL = "fill"  # an open filled, or a part closed
    ERROR = "error"


def report_id(instruction_id: str, step: str) -> str:
    """The same instruction and step always give the same id, so a resend is a duplicate.

    ``<instruction id>-<step>`` when that fits the contract's 8-64 characters, else a
    digest of both (still deterministic).
    """
    readable = f"{instruction_id}-{step}"
    if REPORT_ID_RE.match(readable):
        return readable
    digest = hashlib.sha256(f"{instruction_id}\n{step}".encode()).hexdigest()[:40]
    return f"r-{digest}-{step}"[:64]


def wire_decimal(value: Decimal) -> str:
    """A decimal string as the contract wants it: plain notation, never an exponent."""
    return format(value, "f")


def ack_body(
    instruction_id: str, step: str, ticket: int | None, message: str | None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "report_id": report_id(instruction_id, step),
        "instruction_id": instruction_id,
    }
    if ticket is not None:
        body["ticket"] = ticket
    if message:
        body["message"] = message[:MAX_MESSAGE_CHARS]
    return body


def fill_body(
    instruction_id: str,
    step: str,
    *,
    ticket: int,
    price: Decimal,
    volume: Decimal,
    profit: Decimal | None,
    executed_at: datetime | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "report_id": report_id(instruction_id, step),
        "instruction_id": instruction_id,
        "ticket": ticket,
        "price": wire_decimal(price),
        "volume": wire_decimal(volume),
    }
    if profit is not None:
        body["profit"] = wire_decimal(profit)
    if executed_at is not None:
        body["executed_at"] = executed_at.isoformat().replace("+00:00", "Z")
    return body


def error_body(instruction_id: str, code: int, message: str) -> dict[str, Any]:
    return {
        "report_id": report_id(instruction_id, Step.ERROR),
        "instruction_id": instruction_id,
        "code": int(code),
        "message": message[:MAX_MESSAGE_CHARS] or "error",
    }
