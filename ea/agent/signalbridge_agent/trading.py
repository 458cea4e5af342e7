"""What an executor does and answers: the interface between the agent and a broker.

Executors are synchronous (the MetaTrader5 package is); the agent calls them from one
trade thread. Every method acts only on what the executor itself placed (its magic number
or its own book) and raises :class:`TradeError` with the trade server's return code or
one of the EA's own codes (EA_PROTOCOL.md 5.5).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from signalbridge_agent.protocol import CloseReason, OrderType, Side

T = TypeVar("T")


class TradeCall(Protocol):
    """Runs an executor call on the agent's one trade thread and awaits its result."""

    def __call__(self, fn: Callable[..., T], /, *args: Any) -> Awaitable[T]: ...


class TradeError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    volume_min: Decimal
    volume_step: Decimal
    volume_max: Decimal


@dataclass(frozen=True, slots=True)
class Quote:
    bid: Decimal
    ask: Decimal


@dataclass(frozen=True, slots=True)
class SymbolData:
    """What sizing and management need of a symbol (5.1's ``symbols``, plus the point):
    ``tick_value`` is the account-currency value of one ``tick_size`` move for one lot;
    distances in the instructions are whole ``point``s."""

    name: str
    spec: SymbolSpec
    tick_size: Decimal
    tick_value: Decimal
    point: Decimal


@dataclass(frozen=True, slots=True)
class Account:
    """5.1's ``account``: never the account number."""

    currency: str
    balance: Decimal
    equity: Decimal
    margin_free: Decimal
    leverage: int
    trade_allowed: bool
    company: str | None = None
    server: str | None = None


@dataclass(frozen=True, slots=True)
class Exit:
    """How a position ended without an instruction of ours: the broker's closing deal(s)."""

    ticket: int
    reason: CloseReason
    price: Decimal
    volume: Decimal
    profit: Decimal
    executed_at: datetime | None


def round_volume(volume: Decimal, spec: SymbolSpec) -> Decimal | None:
    """``volume`` rounded down to the volume step, at most the maximum (itself rounded
    down to the step); None when that is below the minimum."""
    step = spec.volume_step
    if step <= 0:
        raise ValueError("volume step must be positive")
    steps = (volume / step).to_integral_value(rounding=ROUND_DOWN)
    most = (spec.volume_max / step).to_integral_value(rounding=ROUND_DOWN)
    rounded = min(steps, most) * step
    if rounded < spec.volume_min or rounded <= 0:
        return None
    return rounded.quantize(step)


def tag_of(instruction_id: str, leg: int = 0) -> str:
    """The comment on every order the agent sends for an instruction: how it finds its own
    trades again after a restart (MetaTrader keeps 31 characters of a comment). Leg 0 (and
    a v1 open's one position) is ``sb:<id>``, leg i ``sb:<id>:<i>``."""
    suffix = f":{leg}" if leg else ""
    return f"sb:{instruction_id}"[: 31 - len(suffix)] + suffix


class HoldingKind(StrEnum):
    POSITION = "position"
    ORDER = "order"  # a pending order not triggered yet


@dataclass(frozen=True, slots=True)
class Holding:
    """A position or pending order of the executor's own, as the broker has it now."""

    ticket: int
    kind: HoldingKind
    symbol: str
    side: Side
    volume: Decimal
    price: Decimal  # open price, or the pending order's price
    stop_loss: Decimal | None
    take_profit: Decimal | None
    tag: str
    is_open: bool = True  # False: a trace in history only (closed or deleted since)
    profit: Decimal = Decimal(0)  # a position's floating profit, in the account currency


@dataclass(frozen=True, slots=True)
class OpenOrder:
    tag: str
    symbol: str
    side: Side
    order_type: OrderType
    entry: Decimal | None
    stop_loss: Decimal | None
    take_profit: Decimal | None
    volume: Decimal


@dataclass(frozen=True, slots=True)
class Closed:
    """The part of a position that a close took."""

    ticket: int
    price: Decimal
    volume: Decimal
    profit: Decimal
    executed_at: datetime | None  # None: the broker's time is not known in UTC


class Executor(Protocol):
    name: str

    def start(self) -> None:
        """Connect (MetaTrader 5: initialize the terminal); raises TradeError."""

    def stop(self) -> None: ...

    def symbol_spec(self, symbol: str) -> SymbolSpec:
        """The symbol's volume limits, selecting it where needed; TradeError 90002 when
        the account has no such symbol."""
        ...

    def symbol_data(self, symbol: str) -> SymbolData:
        """Volume limits, tick size and value, point; TradeError 90002 as above."""
        ...

    def quote(self, symbol: str) -> Quote:
        """The current bid and ask; TradeError 90002 when the symbol has no price."""
        ...

    def account(self) -> Account: ...

    def build(self) -> int | None:
        """The platform's build number, where it has one (MetaTrader 5's terminal)."""
        ...

    def open(self, order: OpenOrder) -> Holding:
        """A market position, or a pending order for limit and stop."""
        ...

    def modify(
        self, holding: Holding, stop_loss: Decimal | None, take_profit: Decimal | None
    ) -> None: ...

    def close(self, holding: Holding, volume: Decimal, tag: str) -> Closed: ...

    def cancel(self, holding: Holding) -> None: ...

    def holding(self, ticket: int) -> Holding | None:
        """The current state of an own ticket; a pending order that triggered comes back
        as a position (same ticket); None when it is gone."""
        ...

    def find_by_tag(self, tag: str, since: datetime) -> Holding | None:
        """Any trace (open, or in history since ``since``) of an order sent with ``tag``:
        how recovery learns whether an open was executed before a crash."""
        ...

    def closed_part(self, ticket: int, tag: str, since: datetime) -> Closed | None:
        """The close of ``ticket`` sent with ``tag``, from history, if it happened."""
        ...

    def exit_of(self, ticket: int, since: datetime) -> Exit | None:
        """How an own position that is no longer open was closed (broker-side take profit
        or stop loss, stop-out, by hand), from history; None when history has no trace."""
        ...
