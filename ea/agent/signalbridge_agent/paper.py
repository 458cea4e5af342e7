"""The paper executor: a small simulated broker whose book lives in the journal's file.

Market orders fill at the price source's ask (buy) or bid (sell). Limit and stop orders
wait on the book until the quote reaches their entry (buy limit: ask at or below it; buy
stop: ask at or above it; mirrored with the bid for a sell) and then fill at the entry; a
symbol the price source does not quote fills them at the entry at the first look. A
close fills at the bid (buy) or ask (sell); profit is the price difference × volume ×
contract size, in the quote currency (taken as the account's).

The book is checked whenever the agent looks at a ticket (:meth:`PaperExecutor.holding`):
that is the one place a later scripted price path, broker-side stop loss / take profit or
split legs will hook in, without changing the agent.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from signalbridge_agent.journal import connect
from signalbridge_agent.protocol import Code, OrderType, Side
from signalbridge_agent.trading import (
    Closed,
    Holding,
    HoldingKind,
    OpenOrder,
    SymbolSpec,
    TradeError,
)

FIRST_TICKET = 5_000_001
_CENT = Decimal("0.01")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS paper_book (
    ticket INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    order_type TEXT NOT NULL,
    volume TEXT NOT NULL,
    price TEXT NOT NULL,
    stop_loss TEXT,
    take_profit TEXT,
    tag TEXT NOT NULL,
    state TEXT NOT NULL,
    opened_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS paper_book_by_tag ON paper_book (tag);
CREATE TABLE IF NOT EXISTS paper_deals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket INTEGER NOT NULL,
    tag TEXT NOT NULL,
    volume TEXT NOT NULL,
    price TEXT NOT NULL,
    profit TEXT NOT NULL,
    executed_at TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Quote:
    bid: Decimal
    ask: Decimal


class PriceSource(Protocol):
    def quote(self, symbol: str) -> Quote | None:
        """The current bid and ask of ``symbol``, or None when it has no price."""
        ...


@dataclass
class QuoteTable:
    """A fixed table of quotes; tests and demos change it with :meth:`set` to script prices."""

    quotes: dict[str, Quote] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def set(self, symbol: str, bid: str | Decimal, ask: str | Decimal) -> None:
        with self._lock:
            self.quotes[symbol] = Quote(Decimal(bid), Decimal(ask))

    def quote(self, symbol: str) -> Quote | None:
        with self._lock:
            return self.quotes.get(symbol)


@dataclass(frozen=True, slots=True)
class PaperSymbol:
    spec: SymbolSpec
    contract_size: Decimal


DEFAULT_SYMBOL = PaperSymbol(
    SymbolSpec(Decimal("0.01"), Decimal("0.01"), Decimal("100")), Decimal("100000")
)


class PaperExecutor:
    name = "paper"

    def __init__(
        self,
        path: Path,
        prices: PriceSource,
        *,
        symbols: Mapping[str, PaperSymbol] | None = None,
        default_symbol: PaperSymbol | None = DEFAULT_SYMBOL,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """``symbols`` give volume limits and contract sizes; any other symbol trades
        with ``default_symbol`` (None: only the listed symbols exist, others are 90002)."""
        self.path = path
        self.prices = prices
        self.symbols = dict(symbols or {})
        self.default_symbol = default_symbol
        self.clock = clock or (lambda: datetime.now(UTC))
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        with self._lock:
            if self._db is None:
                self._db = connect(self.path)
                with self._db:
                    self._db.executescript(_SCHEMA)

    def stop(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise TradeError(int(Code.TRADING_NOT_ALLOWED), "the paper executor is not started")
        return self._db

    # ------------------------------------------------------------------ symbols

    def _symbol(self, symbol: str) -> PaperSymbol:
        found = self.symbols.get(symbol, self.default_symbol)
        if found is None:
            raise TradeError(int(Code.SYMBOL_UNAVAILABLE), f"paper account has no symbol {symbol}")
        return found

    def symbol_spec(self, symbol: str) -> SymbolSpec:
        return self._symbol(symbol).spec

    # ------------------------------------------------------------------ trading

    def open(self, order: OpenOrder) -> Holding:
        self._symbol(order.symbol)
        if order.order_type is OrderType.MARKET:
            quote = self._quote(order.symbol)
            price = quote.ask if order.side is Side.BUY else quote.bid
            kind = HoldingKind.POSITION
        else:
            assert order.entry is not None
            price = order.entry
            kind = HoldingKind.ORDER
        with self._lock:
            db = self._conn()
            with db:
                row = db.execute("SELECT MAX(ticket) FROM paper_book").fetchone()
                ticket = max(FIRST_TICKET, int(row[0] or 0) + 1)
                db.execute(
                    "INSERT INTO paper_book (ticket, kind, symbol, side, order_type, volume, "
                    "price, stop_loss, take_profit, tag, state, opened_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'open', ?)",
                    (
                        ticket,
                        kind.value,
                        order.symbol,
                        order.side.value,
                        order.order_type.value,
                        str(order.volume),
                        str(price),
                        _text(order.stop_loss),
                        _text(order.take_profit),
                        order.tag,
                        self.clock().isoformat(),
                    ),
                )
        found = self.holding(ticket)
        assert found is not None
        return found

    def modify(
        self, holding: Holding, stop_loss: Decimal | None, take_profit: Decimal | None
    ) -> None:
        with self._lock:
            db = self._conn()
            with db:
                changed = db.execute(
                    "UPDATE paper_book SET stop_loss = ?, take_profit = ? "
                    "WHERE ticket = ? AND state = 'open'",
                    (_text(stop_loss), _text(take_profit), holding.ticket),
                ).rowcount
        if not changed:
            raise TradeError(int(Code.NOTHING_OF_OURS), f"ticket {holding.ticket} is not open")

    def close(self, holding: Holding, volume: Decimal, tag: str) -> Closed:
        current = self.holding(holding.ticket)
        if current is None or current.kind is not HoldingKind.POSITION:
            raise TradeError(int(Code.NOTHING_OF_OURS), f"position {holding.ticket} is not open")
        if volume <= 0 or volume > current.volume:
            raise TradeError(10038, f"cannot close {volume} of {current.volume} lots")
        quote = self._quote(current.symbol)
        price = quote.bid if current.side is Side.BUY else quote.ask
        move = price - current.price if current.side is Side.BUY else current.price - price
        size = self._symbol(current.symbol).contract_size
        profit = (move * volume * size).quantize(_CENT)
        left = current.volume - volume
        at = self.clock()
        with self._lock:
            db = self._conn()
            with db:
                db.execute(
                    "UPDATE paper_book SET volume = ?, state = ? WHERE ticket = ?",
                    (str(left), "open" if left > 0 else "closed", current.ticket),
                )
                db.execute(
                    "INSERT INTO paper_deals (ticket, tag, volume, price, profit, executed_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (current.ticket, tag, str(volume), str(price), str(profit), at.isoformat()),
                )
        return Closed(current.ticket, price, volume, profit, at)

    def cancel(self, holding: Holding) -> None:
        with self._lock:
            db = self._conn()
            with db:
                changed = db.execute(
                    "UPDATE paper_book SET state = 'deleted' "
                    "WHERE ticket = ? AND kind = 'order' AND state = 'open'",
                    (holding.ticket,),
                ).rowcount
        if not changed:
            raise TradeError(
                int(Code.NOTHING_OF_OURS), f"no pending order {holding.ticket} to delete"
            )

    # ------------------------------------------------------------------ looking

    def holding(self, ticket: int) -> Holding | None:
        with self._lock:
            db = self._conn()
            row = db.execute(f"{_SELECT} WHERE ticket = ?", (ticket,)).fetchone()
            if row is None or row[10] != "open":
                return None
            if row[1] == HoldingKind.ORDER.value and self._triggered(row):
                with db:
                    db.execute(
                        "UPDATE paper_book SET kind = 'position', opened_at = ? WHERE ticket = ?",
                        (self.clock().isoformat(), ticket),
                    )
                row = db.execute(f"{_SELECT} WHERE ticket = ?", (ticket,)).fetchone()
        return _holding(row)

    def find_by_tag(self, tag: str, since: datetime) -> Holding | None:
        with self._lock:
            row = (
                self._conn()
                .execute(f"{_SELECT} WHERE tag = ? ORDER BY ticket LIMIT 1", (tag,))
                .fetchone()
            )
        if row is None:
            return None
        if row[10] == "open":
            return self.holding(int(row[0]))
        return _holding(row, is_open=False)

    def closed_part(self, ticket: int, tag: str, since: datetime) -> Closed | None:
        with self._lock:
            row = (
                self._conn()
                .execute(
                    "SELECT ticket, price, volume, profit, executed_at FROM paper_deals "
                    "WHERE ticket = ? AND tag = ? ORDER BY id DESC LIMIT 1",
                    (ticket, tag),
                )
                .fetchone()
            )
        if row is None:
            return None
        return Closed(
            int(row[0]),
            Decimal(row[1]),
            Decimal(row[2]),
            Decimal(row[3]),
            datetime.fromisoformat(row[4]),
        )

    # ------------------------------------------------------------------ prices

    def _quote(self, symbol: str) -> Quote:
        quote = self.prices.quote(symbol)
        if quote is None:
            raise TradeError(
                int(Code.SYMBOL_UNAVAILABLE), f"paper price source has no quote for {symbol}"
            )
        return quote

    def _triggered(self, row: Any) -> bool:
        quote = self.prices.quote(row[2])
        if quote is None:
            return True
        entry = Decimal(row[6])
        buy = row[3] == Side.BUY.value
        market = quote.ask if buy else quote.bid
        if row[4] == OrderType.LIMIT.value:
            return market <= entry if buy else market >= entry
        return market >= entry if buy else market <= entry


_SELECT = (
    "SELECT ticket, kind, symbol, side, order_type, volume, price, stop_loss, take_profit, "
    "tag, state FROM paper_book"
)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _holding(row: Any, *, is_open: bool = True) -> Holding:
    return Holding(
        ticket=int(row[0]),
        kind=HoldingKind(row[1]),
        symbol=row[2],
        side=Side(row[3]),
        volume=Decimal(row[5]),
        price=Decimal(row[6]),
        stop_loss=None if row[7] is None else Decimal(row[7]),
        take_profit=None if row[8] is None else Decimal(row[8]),
        tag=row[9],
        is_open=is_open,
    )
