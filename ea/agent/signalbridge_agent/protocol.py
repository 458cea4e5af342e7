"""The instructions of EA_PROTOCOL.md sections 3 and 5 (v1.1), read strictly, and the
bodies the agent sends: reports, position events (5.4) and the device state (5.1).

An instruction the agent cannot read is never traded: :func:`parse_instruction` raises
:class:`Unreadable` and the agent answers error 90008 (when it can name the instruction).
An ``open`` without the v1.1 fields (a v1 server) reads exactly as in v1.
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
    CLOSE_ALL = "close_all"


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


class SizingMode(StrEnum):
    FIXED = "fixed"
    RISK_PERCENT = "risk_percent"
    RISK_MONEY = "risk_money"


class RiskOf(StrEnum):
    BALANCE = "balance"
    EQUITY = "equity"


class TrailingStart(StrEnum):
    AT_OPEN = "at_open"
    AFTER_BREAKEVEN = "after_breakeven"


@dataclass(frozen=True, slots=True)
class Sizing:
    """``sizing`` of a v1.1 open (5.2): ``lots`` for fixed, ``percent`` of ``of`` or
    ``amount`` for the risk modes, capped by ``max_lots`` when given."""

    mode: SizingMode
    lots: Decimal | None = None
    percent: Decimal | None = None
    of: RiskOf = RiskOf.BALANCE
    amount: Decimal | None = None
    max_lots: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Leg:
    take_profit: Decimal
    share: Decimal


@dataclass(frozen=True, slots=True)
class Breakeven:
    after_leg: int
    offset_points: int


@dataclass(frozen=True, slots=True)
class Trailing:
    distance_points: int
    step_points: int
    start: TrailingStart


@dataclass(frozen=True, slots=True)
class Management:
    breakeven: Breakeven | None = None
    trailing: Trailing | None = None


@dataclass(frozen=True, slots=True)
class Guards:
    max_spread_points: int | None = None
    reference_price: Decimal | None = None
    max_distance_points: int | None = None


@dataclass(frozen=True, slots=True)
class Instruction:
    """Fields every action has."""

    id: str
    issued_at: datetime


@dataclass(frozen=True, slots=True)
class SignalInstruction(Instruction):
    """An instruction about one signal (every action but ``close_all``)."""

    signal_id: str
    symbol: str


@dataclass(frozen=True, slots=True)
class Open(SignalInstruction):
    side: Side
    order_type: OrderType
    entry: Decimal | None
    stop_loss: Decimal | None
    take_profit: tuple[Decimal, ...]
    volume: Decimal
    comment: str
    expires_at: datetime
    # v1.1 (5.2); all None from a v1 server.
    sizing: Sizing | None = None
    legs: tuple[Leg, ...] | None = None
    management: Management | None = None
    guards: Guards | None = None

    action: ClassVar[Action] = Action.OPEN

    @property
    def v11(self) -> bool:
        """Sent by a v1.1 server: its fills name their leg."""
        return any(
            part is not None for part in (self.sizing, self.legs, self.management, self.guards)
        )


@dataclass(frozen=True, slots=True)
class Modify(SignalInstruction):
    stop_loss: Decimal | None
    take_profit: tuple[Decimal, ...]

    action: ClassVar[Action] = Action.MODIFY


@dataclass(frozen=True, slots=True)
class Close(SignalInstruction):
    fraction: Decimal

    action: ClassVar[Action] = Action.CLOSE


@dataclass(frozen=True, slots=True)
class Cancel(SignalInstruction):
    action: ClassVar[Action] = Action.CANCEL


@dataclass(frozen=True, slots=True)
class CloseAll(Instruction):
    """5.3: close every position and delete every pending order this agent placed."""

    action: ClassVar[Action] = Action.CLOSE_ALL


AnyInstruction = Open | Modify | Close | Cancel | CloseAll


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
    if action is Action.CLOSE_ALL:
        return CloseAll(id=instruction_id, issued_at=read.time("issued_at"))
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
            sizing=_sizing(read),
            legs=_legs(read),
            management=_management(read),
            guards=_guards(read),
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


# ---------------------------------------------------------------------- v1.1 fields


def _part(read: _Reader, field: str) -> dict[str, Any] | None:
    """An optional object field: None when absent or null."""
    value = read.raw.get(field)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise read.fail(field, "must be an object")
    return value


def _whole(
    read: _Reader, table: dict[str, Any], field: str, *, low: int, required: bool
) -> int | None:
    value = table.get(field)
    if value is None:
        if required:
            raise read.fail(field, "is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise read.fail(field, f"must be a whole number, at least {low}")
    return value


def _amount(read: _Reader, table: dict[str, Any], field: str, *, required: bool) -> Decimal | None:
    value = table.get(field)
    if value is None:
        if required:
            raise read.fail(field, "is missing")
        return None
    return positive_decimal(value, lambda: read.fail(field, "must be a positive decimal string"))


def _sizing(read: _Reader) -> Sizing | None:
    table = _part(read, "sizing")
    if table is None:
        return None
    try:
        mode = SizingMode(str(table.get("mode")))
    except ValueError:
        allowed = ", ".join(m.value for m in SizingMode)
        raise read.fail("sizing.mode", f"must be one of {allowed}") from None
    max_lots = _amount(read, table, "max_lots", required=False)
    if mode is SizingMode.FIXED:
        return Sizing(mode, lots=_amount(read, table, "lots", required=True))
    if mode is SizingMode.RISK_MONEY:
        amount = _amount(read, table, "amount", required=True)
        return Sizing(mode, amount=amount, max_lots=max_lots)
    percent = _amount(read, table, "percent", required=True)
    assert percent is not None
    if percent > 100:
        raise read.fail("sizing.percent", "must be at most 100")
    try:
        of = RiskOf(table.get("of", RiskOf.BALANCE.value))
    except ValueError:
        raise read.fail("sizing.of", "must be balance or equity") from None
    return Sizing(mode, percent=percent, of=of, max_lots=max_lots)


def _legs(read: _Reader) -> tuple[Leg, ...] | None:
    value = read.raw.get("legs")
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise read.fail("legs", "must be a non-empty list")
    legs: list[Leg] = []
    for item in value:
        if not isinstance(item, dict):
            raise read.fail("legs", "must hold objects with take_profit and share")
        take_profit = _amount(read, item, "take_profit", required=True)
        share = _amount(read, item, "share", required=True)
        assert take_profit is not None and share is not None
        if share > 1:
            raise read.fail("legs.share", "must be at most 1")
        legs.append(Leg(take_profit, share))
    return tuple(legs)


def _management(read: _Reader) -> Management | None:
    table = _part(read, "management")
    if table is None:
        return None
    breakeven: Breakeven | None = None
    trailing: Trailing | None = None
    be = table.get("breakeven")
    if be is not None:
        if not isinstance(be, dict):
            raise read.fail("management.breakeven", "must be an object")
        after = _whole(read, be, "after_leg", low=0, required=True)
        offset = _whole(read, be, "offset_points", low=0, required=False)
        assert after is not None
        breakeven = Breakeven(after, offset or 0)
    trail = table.get("trailing")
    if trail is not None:
        if not isinstance(trail, dict):
            raise read.fail("management.trailing", "must be an object")
        distance = _whole(read, trail, "distance_points", low=1, required=True)
        step = _whole(read, trail, "step_points", low=0, required=False)
        assert distance is not None
        try:
            start = TrailingStart(trail.get("start", TrailingStart.AT_OPEN.value))
        except ValueError:
            raise read.fail(
                "management.trailing.start", "must be at_open or after_breakeven"
            ) from None
        trailing = Trailing(distance, step or 0, start)
    return Management(breakeven, trailing)


def _guards(read: _Reader) -> Guards | None:
    table = _part(read, "guards")
    if table is None:
        return None
    return Guards(
        max_spread_points=_whole(read, table, "max_spread_points", low=0, required=False),
        reference_price=_amount(read, table, "reference_price", required=False),
        max_distance_points=_whole(read, table, "max_distance_points", low=0, required=False),
    )


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
    leg: int | None = None,
) -> dict[str, Any]:
    """``leg`` only for a v1.1 open's positions (5.2): a v1 fill stays byte-equal."""
    body: dict[str, Any] = {
        "report_id": report_id(instruction_id, step),
        "instruction_id": instruction_id,
        "ticket": ticket,
        "price": wire_decimal(price),
        "volume": wire_decimal(volume),
    }
    if leg is not None:
        body["leg"] = leg
    if profit is not None:
        body["profit"] = wire_decimal(profit)
    if executed_at is not None:
        body["executed_at"] = wire_time(executed_at)
    return body


def wire_time(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def error_body(instruction_id: str, code: int, message: str) -> dict[str, Any]:
    return {
        "report_id": report_id(instruction_id, Step.ERROR),
        "instruction_id": instruction_id,
        "code": int(code),
        "message": message[:MAX_MESSAGE_CHARS] or "error",
    }


# ---------------------------------------------------------------------- v1.1: events, state

PROTOCOL = "1.1"


class Event(StrEnum):
    CLOSED = "closed"
    SL_MOVED = "sl_moved"
    TP_MOVED = "tp_moved"


class CloseReason(StrEnum):
    TP = "tp"
    SL = "sl"
    STOP_OUT = "stop_out"
    MANUAL = "manual"
    CLOSE_ALL = "close_all"
    EXPERT = "expert"


def closed_event(
    instruction_id: str,
    *,
    leg: int | None,
    ticket: int,
    reason: CloseReason,
    price: Decimal,
    volume: Decimal,
    profit: Decimal,
    executed_at: datetime | None,
) -> dict[str, Any]:
    """A position gone (5.4); its id comes from the ticket, so it is sent once per position."""
    body: dict[str, Any] = {
        "report_id": report_id(instruction_id, f"closed-{ticket}"),
        "instruction_id": instruction_id,
        "ticket": ticket,
        "event": Event.CLOSED.value,
        "reason": reason.value,
        "price": wire_decimal(price),
        "volume": wire_decimal(volume),
        "profit": wire_decimal(profit),
    }
    if leg is not None:
        body["leg"] = leg
    if executed_at is not None:
        body["executed_at"] = wire_time(executed_at)
    return body


def sl_moved_event(
    instruction_id: str,
    *,
    leg: int | None,
    ticket: int,
    number: int,
    stop_loss: Decimal | None,
    executed_at: datetime,
) -> dict[str, Any]:
    """The ``number``-th stop-loss report of the position (numbered in the journal)."""
    body: dict[str, Any] = {
        "report_id": report_id(instruction_id, f"sl-{ticket}-{number}"),
        "instruction_id": instruction_id,
        "ticket": ticket,
        "event": Event.SL_MOVED.value,
        "stop_loss": None if stop_loss is None else wire_decimal(stop_loss),
        "executed_at": wire_time(executed_at),
    }
    if leg is not None:
        body["leg"] = leg
    return body
