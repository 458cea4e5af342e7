"""Stop-loss management of a v1.1 open (EA_PROTOCOL.md 5.2 ``management``), as pure
functions: the level a breakeven or a trailing stop wants for a position, or None when the
stop loss stays where it is. Neither ever moves a stop loss backwards (down for a buy, up
for a sell)."""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_UP, Decimal

from signalbridge_agent.protocol import Breakeven, Side, Trailing
from signalbridge_agent.trading import Quote

# Stop-loss reports are sent at most this often per position (the latest level).
SL_REPORT_INTERVAL_S = 10.0


def better(side: Side, level: Decimal, current: Decimal | None) -> bool:
    """``level`` protects more than ``current`` (no stop loss protects nothing)."""
    if current is None:
        return True
    return level > current if side is Side.BUY else level < current


def breakeven_level(
    rule: Breakeven, side: Side, open_price: Decimal, point: Decimal, current: Decimal | None
) -> Decimal | None:
    """The open price + offset (buy; − for a sell), if that is better than ``current``."""
    offset = rule.offset_points * point
    level = open_price + offset if side is Side.BUY else open_price - offset
    return level if better(side, level, current) else None


def trailing_level(
    rule: Trailing, side: Side, quote: Quote, point: Decimal, current: Decimal | None
) -> Decimal | None:
    """For a buy, bid − distance when that lies above the stop loss by at least the step
    (mirrored with the ask for a sell); rounded to the point, away from the price."""
    distance = rule.distance_points * point
    step = rule.step_points * point
    if side is Side.BUY:
        level = _to_point(quote.bid - distance, point, ROUND_DOWN)
        moves = current is None or (level > current and level - current >= step)
    else:
        level = _to_point(quote.ask + distance, point, ROUND_UP)
        moves = current is None or (level < current and current - level >= step)
    return level if moves and level > 0 else None


def _to_point(value: Decimal, point: Decimal, rounding: str) -> Decimal:
    return ((value / point).to_integral_value(rounding=rounding) * point).quantize(point)
