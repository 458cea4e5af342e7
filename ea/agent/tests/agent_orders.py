"""What the agent's tests start from: the executor tests' market buy with a stop loss and a
target, the instructions as the server sends them, EURUSD quotes, and a crash."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

from signalbridge_agent.paper import QuoteTable
from signalbridge_agent.protocol import OrderType, Side
from signalbridge_agent.trading import OpenOrder


class Crash(BaseException):
    """kill -9 at this point: nothing after it runs."""


def open_(instruction_id: str = "ins_open0001", **changes: Any) -> dict[str, Any]:
    """A v1 open: a market buy of 0.10 EURUSD, stop loss 1.08, two take profits."""
    raw: dict[str, Any] = {
        "id": instruction_id,
        "signal_id": "sig_1",
        "action": "open",
        "symbol": "EURUSD",
        "side": "buy",
        "order_type": "market",
        "entry": None,
        "stop_loss": "1.08",
        "take_profit": ["1.095", "1.1"],
        "volume": "0.10",
        "comment": "",
        "issued_at": "2026-01-01T00:00:00Z",
        "expires_at": "2026-01-01T00:05:00Z",
    }
    raw.update(changes)
    return raw


def followup(action: str, instruction_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": instruction_id,
        "signal_id": "sig_1",
        "action": action,
        "symbol": "EURUSD",
        "issued_at": "2026-01-01T00:00:20Z",
        **fields,
    }


def euro(bid: str = "1.08500", ask: str = "1.08512") -> QuoteTable:
    quotes = QuoteTable()
    quotes.set("EURUSD", bid, ask)
    return quotes


def market_buy(**changes: Any) -> OpenOrder:
    order = OpenOrder(
        tag="sb:ins_1",
        symbol="EURUSD",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        entry=None,
        stop_loss=Decimal("1.08"),
        take_profit=Decimal("1.095"),
        volume=Decimal("0.10"),
    )
    return replace(order, **changes)
