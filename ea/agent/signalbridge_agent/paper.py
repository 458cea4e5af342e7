"""The paper executor: a small simulated broker whose book lives in the journal's file.

Market orders fill at the price source's ask (buy) or bid (sell). Limit and stop orders
wait on the book until a tick reaches their entry (buy limit: ask at or below it; buy
stop: ask at or above it; mirrored with the bid for a sell) and then fill at the entry; a
symbol the price source does not quote fills them at the entry at the first look. A
close fills at the bid (buy) or ask (sell); profit is the price difference / tick size ×
tick value × volume, in the account currency (tick value: contract size × tick size
unless the symbol sets its own).

Prices are ticks: every :meth:`QuoteTable.set` is one, and a :class:`PricePath` plays a
scripted list of them. Whenever the executor is called it first plays the ticks since its
last call against its book, in order: pending orders trigger, and a position's stop loss
or take profit closes it when a tick reaches it (a buy's at the bid, a sell's at the ask,
filled at that tick's price), as a broker would between the agent's looks. The balance
(``paper_account``) moves with every close; equity is the balance plus open profit.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from signalbridge_agent.journal import connect
from signalbridge_agent.protocol import CloseReason, Code, OrderType, Side
from signalbridge_agent.trading import (
    Account,
    Closed,
    Exit,
    Holding,
    HoldingKind,
    OpenOrder,
    Quote,
    SymbolData,
    SymbolSpec,
    TradeError,
)

__all__ = ["PaperExecutor", "PaperSymbol", "PricePath", "Quote", "QuoteTable"]

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
CREATE TABLE IF NOT EXISTS paper_account (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
# Added since 1.0: how a deal outside an instruction came about (tp, sl, manual).
_DEAL_REASON = "ALTER TABLE paper_deals ADD COLUMN reason TEXT"
# Ticks kept per symbol for the executors that have not played them yet.
_KEPT_TICKS = 10_000


class PriceSource(Protocol):
    def quote(self, symbol: str) -> Quote | None:
        """The current bid and ask of ``symbol``, or None when it has no price."""
        ...

    def ticks(self, symbol: str, after: int) -> list[tuple[int, Quote]]:
        """The ticks of ``symbol`` numbered above ``after``, oldest first."""
        ...

    def last_tick(self) -> int:
        """The number of the latest tick of any symbol (0: none yet)."""
        ...


@dataclass
class QuoteTable:
    """The current quotes; each :meth:`set` is a tick (tests and demos script prices so)."""

    quotes: dict[str, Quote] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _ticks: dict[str, list[tuple[int, Quote]]] = field(default_factory=dict, repr=False)
    _count: int = field(default=0, repr=False)

    def set(self, symbol: str, bid: str | Decimal, ask: str | Decimal) -> None:
        quote = Quote(Decimal(bid), Decimal(ask))
        with self._lock:
            self.quotes[symbol] = quote
            self._count += 1
            kept = self._ticks.setdefault(symbol, [])
            kept.append((self._count, quote))
            del kept[:-_KEPT_TICKS]

    def quote(self, symbol: str) -> Quote | None:
        with self._lock:
            return self.quotes.get(symbol)

    def ticks(self, symbol: str, after: int) -> list[tuple[int, Quote]]:
        with self._lock:
            return [tick for tick in self._ticks.get(symbol, ()) if tick[0] > after]

    def last_tick(self) -> int:
        with self._lock:
            return self._count


Tick = tuple[str | Decimal, str | Decimal]


class PricePath(QuoteTable):
    """A scripted price path: per symbol a list of (bid, ask) ticks (or bids and a spread,
    or a function of the tick's number), the first one current from the start, each
    :meth:`advance` playing the next."""

    def __init__(self, paths: Mapping[str, Sequence[Tick]]) -> None:
        super().__init__()
        self._paths = {symbol: list(ticks) for symbol, ticks in paths.items()}
        self._next: dict[str, int] = {}
        for symbol, ticks in self._paths.items():
            if not ticks:
                raise ValueError(f"the price path of {symbol} has no ticks")
            self.set(symbol, *ticks[0])
            self._next[symbol] = 1

    @classmethod
    def with_spread(
        cls, symbol: str, bids: Iterable[str | Decimal], spread: str | Decimal
    ) -> PricePath:
        """Ticks from bids alone, each ask ``spread`` (a price difference) above its bid."""
        gap = Decimal(spread)
        return cls({symbol: [(Decimal(bid), Decimal(bid) + gap) for bid in bids]})

    @classmethod
    def generated(cls, symbol: str, count: int, tick: Callable[[int], Tick]) -> PricePath:
        """``count`` ticks made by a function of the tick's number (0 first)."""
        return cls({symbol: [tick(number) for number in range(count)]})

    def advance(self, symbol: str | None = None, steps: int = 1) -> bool:
        """Play the next ``steps`` ticks of ``symbol`` (of every symbol when None); False
        once a path has no tick left to play."""
        played = True
        for name in [symbol] if symbol is not None else list(self._paths):
            for _ in range(steps):
                index = self._next[name]
                if index >= len(self._paths[name]):
                    played = False
                    break
                self.set(name, *self._paths[name][index])
                self._next[name] = index + 1
        return played

    def left(self, symbol: str) -> int:
        """Ticks of ``symbol`` not played yet."""
        return len(self._paths[symbol]) - self._next[symbol]


@dataclass(frozen=True, slots=True)
class PaperSymbol:
    """Volume limits and contract size; tick size (default 0.00001), tick value (default
    contract size × tick size) and point (default the tick size)."""

    spec: SymbolSpec
    contract_size: Decimal
    tick_size: Decimal = Decimal("0.00001")
    tick_value: Decimal | None = None
    point: Decimal | None = None

    def data(self, name: str) -> SymbolData:
        return SymbolData(
            name=name,
            spec=self.spec,
            tick_size=self.tick_size,
            tick_value=self.value_of_tick,
            point=self.point or self.tick_size,
        )

    @property
    def value_of_tick(self) -> Decimal:
        return (
            self.tick_value if self.tick_value is not None else self.contract_size * self.tick_size
        )

    def profit(self, move: Decimal, volume: Decimal) -> Decimal:
        return (move / self.tick_size * self.value_of_tick * volume).quantize(_CENT)


DEFAULT_SYMBOL = PaperSymbol(
    SymbolSpec(Decimal("0.01"), Decimal("0.01"), Decimal("100")), Decimal("100000")
)


@dataclass(frozen=True, slots=True)
class PaperAccount:
    """The paper account's starting balance, currency and leverage."""

    balance: Decimal = Decimal("10000.00")
    currency: str = "USD"
    leverage: int = 100


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
        account: PaperAccount | None = None,
    ) -> None:
        """``symbols`` give volume limits, contract sizes and tick figures; any other
        symbol trades with ``default_symbol`` (None: only the listed symbols exist, others
        are 90002). ``account``: the starting balance, currency and leverage."""
        self.path = path
        self.prices = prices
        self.symbols = dict(symbols or {})
        self.default_symbol = default_symbol
        self.clock = clock or (lambda: datetime.now(UTC))
        self.settings = account or PaperAccount()
        self._db: sqlite3.Connection | None = None
        self._lock = threading.RLock()
        # The last tick played: those before this executor was made are history.
        self._played = prices.last_tick()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        with self._lock:
            if self._db is None:
                self._db = connect(self.path)
                with self._db:
                    self._db.executescript(_SCHEMA)
                    columns = {r[1] for r in self._db.execute("PRAGMA table_info(paper_deals)")}
                    if "reason" not in columns:
                        self._db.execute(_DEAL_REASON)
                    self._db.execute(
                        "INSERT INTO paper_account (key, value) VALUES ('balance', ?) "
                        "ON CONFLICT (key) DO NOTHING",
                        (str(self.settings.balance),),
                    )

    def stop(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def build(self) -> int | None:
        return None

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

    def symbol_data(self, symbol: str) -> SymbolData:
        return self._symbol(symbol).data(symbol)

    def quote(self, symbol: str) -> Quote:
        self._symbol(symbol)
        with self._lock:
            self._play()
        return self._quote(symbol)

    def account(self) -> Account:
        with self._lock:
            self._play()
            db = self._conn()
            balance = Decimal(
                db.execute("SELECT value FROM paper_account WHERE key = 'balance'").fetchone()[0]
            )
            rows = db.execute(f"{_SELECT} WHERE state = 'open' AND kind = 'position'").fetchall()
        floating = sum((self._floating(_holding(row)) for row in rows), Decimal(0))
        equity = balance + floating
        return Account(
            currency=self.settings.currency,
            balance=balance,
            equity=equity,
            margin_free=equity,  # the paper broker asks no margin
            leverage=self.settings.leverage,
            trade_allowed=True,
            company="signalbridge paper",
        )

    # ------------------------------------------------------------------ trading

    def open(self, order: OpenOrder) -> Holding:
        self._symbol(order.symbol)
        with self._lock:
            self._play()
            if order.order_type is OrderType.MARKET:
                quote = self._quote(order.symbol)
                price = quote.ask if order.side is Side.BUY else quote.bid
                kind = HoldingKind.POSITION
            else:
                assert order.entry is not None
                price = order.entry
                kind = HoldingKind.ORDER
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
            self._play()
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
        with self._lock:
            current = self.holding(holding.ticket)
            if current is None or current.kind is not HoldingKind.POSITION:
                raise TradeError(
                    int(Code.NOTHING_OF_OURS), f"position {holding.ticket} is not open"
                )
            if volume <= 0 or volume > current.volume:
                raise TradeError(10038, f"cannot close {volume} of {current.volume} lots")
            quote = self._quote(current.symbol)
            price = quote.bid if current.side is Side.BUY else quote.ask
            return self._deal(current, volume, price, tag, None)

    def close_by_hand(self, ticket: int, volume: Decimal | None = None) -> Closed:
        """What the account's owner does in the terminal: close (part of) a position at the
        market, outside any instruction (its exit's reason is ``manual``)."""
        with self._lock:
            current = self.holding(ticket)
            if current is None or current.kind is not HoldingKind.POSITION:
                raise TradeError(int(Code.NOTHING_OF_OURS), f"position {ticket} is not open")
            quote = self._quote(current.symbol)
            price = quote.bid if current.side is Side.BUY else quote.ask
            return self._deal(
                current, volume or current.volume, price, "manual", CloseReason.MANUAL
            )

    def _deal(
        self,
        current: Holding,
        volume: Decimal,
        price: Decimal,
        tag: str,
        reason: CloseReason | None,
    ) -> Closed:
        """Take ``volume`` off the position at ``price``; the profit goes to the balance."""
        move = price - current.price if current.side is Side.BUY else current.price - price
        profit = self._symbol(current.symbol).profit(move, volume)
        left = current.volume - volume
        at = self.clock()
        db = self._conn()
        with db:
            db.execute(
                "UPDATE paper_book SET volume = ?, state = ? WHERE ticket = ?",
                (str(left), "open" if left > 0 else "closed", current.ticket),
            )
            db.execute(
                "INSERT INTO paper_deals (ticket, tag, volume, price, profit, executed_at, reason) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    current.ticket,
                    tag,
                    str(volume),
                    str(price),
                    str(profit),
                    at.isoformat(),
                    None if reason is None else reason.value,
                ),
            )
            balance = db.execute("SELECT value FROM paper_account WHERE key = 'balance'").fetchone()
            db.execute(
                "UPDATE paper_account SET value = ? WHERE key = 'balance'",
                (str(Decimal(balance[0]) + profit),),
            )
        return Closed(current.ticket, price, volume, profit, at)

    def cancel(self, holding: Holding) -> None:
        with self._lock:
            self._play()
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
            self._play()
            db = self._conn()
            row = db.execute(f"{_SELECT} WHERE ticket = ?", (ticket,)).fetchone()
            if row is None or row[10] != "open":
                return None
            quote = self.prices.quote(row[2])
            if row[1] == HoldingKind.ORDER.value and (quote is None or _reaches(row, quote)):
                # The price is at the entry now (no price: a pending order fills at once).
                self._trigger(int(row[0]))
                row = db.execute(f"{_SELECT} WHERE ticket = ?", (ticket,)).fetchone()
        found = _holding(row)
        if found.kind is HoldingKind.POSITION:
            return replace(found, profit=self._floating(found))
        return found

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
        found = _holding(row, is_open=False)
        if found.kind is HoldingKind.POSITION:
            # Closed since: the volume it opened with is what its closes took.
            with self._lock:
                taken = self._conn().execute(
                    "SELECT volume FROM paper_deals WHERE ticket = ?", (found.ticket,)
                )
                opened = sum((Decimal(r[0]) for r in taken), found.volume)
            found = replace(found, volume=opened)
        return found

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

    def exit_of(self, ticket: int, since: datetime) -> Exit | None:
        with self._lock:
            self._play()
            db = self._conn()
            state = db.execute(
                "SELECT state FROM paper_book WHERE ticket = ?", (ticket,)
            ).fetchone()
            if state is None or state[0] == "open":
                return None
            row = db.execute(
                "SELECT price, volume, profit, executed_at, reason FROM paper_deals "
                "WHERE ticket = ? AND reason IS NOT NULL ORDER BY id DESC LIMIT 1",
                (ticket,),
            ).fetchone()
        if row is None:
            return None
        return Exit(
            ticket,
            CloseReason(row[4]),
            Decimal(row[0]),
            Decimal(row[1]),
            Decimal(row[2]),
            datetime.fromisoformat(row[3]),
        )

    # ------------------------------------------------------------------ prices

    def _quote(self, symbol: str) -> Quote:
        quote = self.prices.quote(symbol)
        if quote is None:
            raise TradeError(
                int(Code.SYMBOL_UNAVAILABLE), f"paper price source has no quote for {symbol}"
            )
        return quote

    def _floating(self, position: Holding) -> Decimal:
        quote = self.prices.quote(position.symbol)
        if quote is None:
            return Decimal(0)
        buy = position.side is Side.BUY
        move = quote.bid - position.price if buy else position.price - quote.ask
        return self._symbol(position.symbol).profit(move, position.volume)

    def _play(self) -> None:
        """Play every tick since the last call against the book, in order (with the lock)."""
        db = self._conn()
        last = self.prices.last_tick()
        if last <= self._played:
            return
        symbols = [
            r[0] for r in db.execute("SELECT DISTINCT symbol FROM paper_book WHERE state = 'open'")
        ]
        for symbol in symbols:
            for number, quote in self.prices.ticks(symbol, self._played):
                if number <= last:
                    self._tick(symbol, quote)
        self._played = last

    def _tick(self, symbol: str, quote: Quote) -> None:
        db = self._conn()
        rows = db.execute(
            f"{_SELECT} WHERE symbol = ? AND state = 'open' ORDER BY ticket", (symbol,)
        ).fetchall()
        for row in rows:
            held = _holding(row)
            if held.kind is HoldingKind.ORDER:
                if _reaches(row, quote):
                    self._trigger(held.ticket)  # its levels count from the next tick on
                continue
            buy = held.side is Side.BUY
            market = quote.bid if buy else quote.ask
            if held.stop_loss is not None and (
                market <= held.stop_loss if buy else market >= held.stop_loss
            ):
                self._deal(held, held.volume, market, "sl", CloseReason.SL)
            elif held.take_profit is not None and (
                market >= held.take_profit if buy else market <= held.take_profit
            ):
                self._deal(held, held.volume, market, "tp", CloseReason.TP)

    def _trigger(self, ticket: int) -> None:
        db = self._conn()
        with db:
            db.execute(
                "UPDATE paper_book SET kind = 'position', opened_at = ? WHERE ticket = ?",
                (self.clock().isoformat(), ticket),
            )


def _reaches(row: Any, quote: Quote) -> bool:
    """A pending order's entry is reached by this tick."""
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
