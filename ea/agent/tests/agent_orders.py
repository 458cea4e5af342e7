"""The order the executor tests start from: a market buy with a stop loss and a target."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

from signalbridge_agent.protocol import OrderType, Side
from signalbridge_agent.trading import OpenOrder


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
