"""A fake ``MetaTrader5`` module: the calls the MT5 executor makes, over a tiny broker.

Hedging account: a market deal opens a position whose ticket is its order's; a pending
order keeps its ticket when it triggers (:meth:`FakeMT5.trigger`); the broker closes a
position at its stop loss or take profit with :meth:`FakeMT5.hit` (a deal with that
reason). Every request sent is kept in ``sent`` for the tests to read.
"""

from __future__ import annotations

import itertools
import sys
import types
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import pytest

RETCODE_DONE = 10009
RETCODE_PLACED = 10008
RETCODE_NO_CHANGES = 10025
RETCODE_INVALID_STOPS = 10016
DEAL_REASON_EXPERT = 3
DEAL_REASON_SL = 4
DEAL_REASON_TP = 5


class SymbolInfo(NamedTuple):
    name: str
    visible: bool
    trade_mode: int
    filling_mode: int
    digits: int
    volume_min: float
    volume_step: float
    volume_max: float
    trade_contract_size: float
    point: float = 0.00001
    trade_tick_size: float = 0.00001
    trade_tick_value: float = 1.0


class Tick(NamedTuple):
    time: int
    bid: float
    ask: float


class TerminalInfo(NamedTuple):
    trade_allowed: bool
    connected: bool
    build: int = 4620


class AccountInfo(NamedTuple):
    login: int
    currency: str
    balance: float
    equity: float
    margin_free: float
    leverage: int
    trade_allowed: bool
    trade_expert: bool
    company: str
    server: str


class Position(NamedTuple):
    ticket: int
    type: int
    magic: int
    volume: float
    price_open: float
    sl: float
    tp: float
    symbol: str
    comment: str
    profit: float = 0.0


class Order(NamedTuple):
    ticket: int
    type: int
    magic: int
    volume_current: float
    price_open: float
    sl: float
    tp: float
    symbol: str
    comment: str


class Deal(NamedTuple):
    ticket: int
    order: int
    position_id: int
    magic: int
    entry: int
    type: int
    volume: float
    price: float
    profit: float
    comment: str
    symbol: str
    reason: int = DEAL_REASON_EXPERT


class Result(NamedTuple):
    retcode: int
    deal: int
    order: int
    volume: float
    price: float
    comment: str


@dataclass
class FakeMT5:
    symbols: dict[str, SymbolInfo] = field(default_factory=dict)
    ticks: dict[str, Tick] = field(default_factory=dict)
    positions: dict[int, Position] = field(default_factory=dict)
    orders: dict[int, Order] = field(default_factory=dict)
    deals: list[Deal] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    selected: list[str] = field(default_factory=list)
    trade_allowed: bool = True
    refuse_with: int | None = None  # the next order_send answers this retcode
    initialized: bool = False
    terminal_answers: bool = True  # False: initialize() fails (no terminal running)
    account: AccountInfo = field(
        default_factory=lambda: AccountInfo(
            31337, "USD", 10000.0, 10012.5, 9800.0, 100, True, True, "Broker Ltd", "Broker-Demo"
        )
    )
    _tickets: Any = field(default_factory=lambda: itertools.count(7_000_001))

    def add_symbol(
        self, name: str, *, visible: bool = True, bid: float = 1.085, ask: float = 1.0852
    ) -> None:
        self.symbols[name] = SymbolInfo(name, visible, 4, 1, 5, 0.01, 0.01, 50.0, 100000.0)
        self.ticks[name] = Tick(0, bid, ask)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FakeMT5:
        """Stand in for the ``MetaTrader5`` package for one test."""
        monkeypatch.setitem(sys.modules, "MetaTrader5", self.module())
        return self

    def trigger(self, ticket: int) -> None:
        """The pending order reaches its price: it becomes a position, same ticket."""
        order = self.orders.pop(ticket)
        buy = order.type in (2, 4)
        self.positions[ticket] = Position(
            ticket,
            0 if buy else 1,
            order.magic,
            order.volume_current,
            order.price_open,
            order.sl,
            order.tp,
            order.symbol,
            order.comment,
        )

    def hit(self, ticket: int, price: float, reason: int = DEAL_REASON_TP) -> None:
        """The broker closes the position at ``price`` by itself (take profit, stop loss)."""
        position = self.positions.pop(ticket)
        move = price - position.price_open
        profit = round((move if position.type == 0 else -move) * position.volume * 100000, 2)
        self.deals.append(
            Deal(
                len(self.deals) + 9_000_001,
                next(self._tickets),
                ticket,
                position.magic,
                1,
                1 if position.type == 0 else 0,
                position.volume,
                price,
                profit,
                "[tp]" if reason == DEAL_REASON_TP else "[sl]",
                position.symbol,
                reason,
            )
        )

    def module(self) -> types.ModuleType:
        module = types.ModuleType("MetaTrader5")
        constants = {
            "POSITION_TYPE_BUY": 0,
            "POSITION_TYPE_SELL": 1,
            "ORDER_TYPE_BUY": 0,
            "ORDER_TYPE_SELL": 1,
            "ORDER_TYPE_BUY_LIMIT": 2,
            "ORDER_TYPE_SELL_LIMIT": 3,
            "ORDER_TYPE_BUY_STOP": 4,
            "ORDER_TYPE_SELL_STOP": 5,
            "ORDER_FILLING_FOK": 0,
            "ORDER_FILLING_IOC": 1,
            "ORDER_FILLING_RETURN": 2,
            "ORDER_TIME_GTC": 0,
            "TRADE_ACTION_DEAL": 1,
            "TRADE_ACTION_PENDING": 5,
            "TRADE_ACTION_SLTP": 6,
            "TRADE_ACTION_MODIFY": 7,
            "TRADE_ACTION_REMOVE": 8,
            "TRADE_RETCODE_PLACED": RETCODE_PLACED,
            "TRADE_RETCODE_DONE": RETCODE_DONE,
            "TRADE_RETCODE_DONE_PARTIAL": 10010,
            "TRADE_RETCODE_NO_CHANGES": RETCODE_NO_CHANGES,
            "SYMBOL_TRADE_MODE_DISABLED": 0,
            "DEAL_TYPE_BUY": 0,
            "DEAL_TYPE_SELL": 1,
            "DEAL_ENTRY_IN": 0,
            "DEAL_ENTRY_OUT": 1,
            "DEAL_ENTRY_INOUT": 2,
            "DEAL_ENTRY_OUT_BY": 3,
        }
        for name, value in constants.items():
            setattr(module, name, value)
        for name in (
            "initialize",
            "shutdown",
            "last_error",
            "terminal_info",
            "account_info",
            "symbol_info",
            "symbol_select",
            "symbol_info_tick",
            "order_send",
            "positions_get",
            "orders_get",
            "history_deals_get",
        ):
            setattr(module, name, getattr(self, name))
        return module

    # ------------------------------------------------------------------ the module's calls

    def initialize(self, *args: Any, **kwargs: Any) -> bool:
        self.initialized = self.terminal_answers
        return self.initialized

    def shutdown(self) -> None:
        self.initialized = False

    def last_error(self) -> tuple[int, str]:
        return (-1, "generic fail")

    def terminal_info(self) -> TerminalInfo:
        return TerminalInfo(self.trade_allowed, True)

    def account_info(self) -> AccountInfo:
        return self.account

    def symbol_info(self, symbol: str) -> SymbolInfo | None:
        return self.symbols.get(symbol)

    def symbol_select(self, symbol: str, enable: bool = True) -> bool:
        self.selected.append(symbol)
        info = self.symbols.get(symbol)
        if info is None or symbol.endswith(".locked"):
            return False
        self.symbols[symbol] = info._replace(visible=True)
        return True

    def symbol_info_tick(self, symbol: str) -> Tick | None:
        return self.ticks.get(symbol)

    def positions_get(
        self, *, ticket: int | None = None, symbol: str | None = None
    ) -> tuple[Position, ...]:
        found = [p for p in self.positions.values() if ticket is None or p.ticket == ticket]
        return tuple(p for p in found if symbol is None or p.symbol == symbol)

    def orders_get(
        self, *, ticket: int | None = None, symbol: str | None = None
    ) -> tuple[Order, ...]:
        found = [o for o in self.orders.values() if ticket is None or o.ticket == ticket]
        return tuple(o for o in found if symbol is None or o.symbol == symbol)

    def history_deals_get(self, *args: datetime, position: int | None = None) -> tuple[Deal, ...]:
        return tuple(d for d in self.deals if position is None or d.position_id == position)

    def order_send(self, request: dict[str, Any]) -> Result | None:
        self.sent.append(dict(request))
        if self.refuse_with is not None:
            code, self.refuse_with = self.refuse_with, None
            return Result(code, 0, 0, 0.0, 0.0, "refused by the fake broker")
        action = request["action"]
        if action == 1 and "position" in request:
            return self._close(request)
        if action == 1:
            ticket = next(self._tickets)
            buy = request["type"] == 0
            self.positions[ticket] = Position(
                ticket,
                0 if buy else 1,
                request["magic"],
                request["volume"],
                request["price"],
                request["sl"],
                request["tp"],
                request["symbol"],
                request["comment"],
            )
            deal = self._deal(ticket, ticket, request, entry=0, profit=0.0)
            return Result(
                RETCODE_DONE, deal.ticket, ticket, request["volume"], request["price"], "done"
            )
        if action == 5:
            ticket = next(self._tickets)
            self.orders[ticket] = Order(
                ticket,
                request["type"],
                request["magic"],
                request["volume"],
                request["price"],
                request["sl"],
                request["tp"],
                request["symbol"],
                request["comment"],
            )
            return Result(RETCODE_PLACED, 0, ticket, request["volume"], request["price"], "placed")
        if action == 6:
            position = self.positions[request["position"]]
            if (position.sl, position.tp) == (request["sl"], request["tp"]):
                return Result(RETCODE_NO_CHANGES, 0, 0, 0.0, 0.0, "no changes")
            self.positions[position.ticket] = position._replace(sl=request["sl"], tp=request["tp"])
            return Result(RETCODE_DONE, 0, 0, 0.0, 0.0, "done")
        if action == 7:
            order = self.orders[request["order"]]
            self.orders[order.ticket] = order._replace(sl=request["sl"], tp=request["tp"])
            return Result(RETCODE_DONE, 0, order.ticket, 0.0, 0.0, "done")
        if action == 8:
            del self.orders[request["order"]]
            return Result(RETCODE_DONE, 0, request["order"], 0.0, 0.0, "done")
        raise AssertionError(f"unexpected request {request}")

    def _close(self, request: dict[str, Any]) -> Result:
        position = self.positions[request["position"]]
        volume = request["volume"]
        move = request["price"] - position.price_open
        profit = round((move if position.type == 0 else -move) * volume * 100000, 2)
        left = round(position.volume - volume, 2)
        if left > 0:
            self.positions[position.ticket] = position._replace(volume=left)
        else:
            del self.positions[position.ticket]
        deal = self._deal(next(self._tickets), position.ticket, request, entry=1, profit=profit)
        return Result(RETCODE_DONE, deal.ticket, deal.order, volume, request["price"], "done")

    def _deal(
        self, order: int, position: int, request: dict[str, Any], *, entry: int, profit: float
    ) -> Deal:
        deal = Deal(
            len(self.deals) + 9_000_001,
            order,
            position,
            request["magic"],
            entry,
            request["type"],
            request["volume"],
            request["price"],
            profit,
            request["comment"],
            request["symbol"],
        )
        self.deals.append(deal)
        return deal
