"""The arithmetic of a v1.1 open (EA_PROTOCOL.md 5.2), as pure functions on Decimals:
the lot size of each sizing mode, the split over take-profit legs and the market guards.

Each raises :class:`~signalbridge_agent.trading.TradeError` with the EA's own code when the
order must not be placed (90003 volume, 90004 spread, 90005 distance).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_DOWN, Decimal

from signalbridge_agent.protocol import (
    Code,
    Guards,
    Leg,
    OrderType,
    RiskOf,
    Side,
    Sizing,
    SizingMode,
)
from signalbridge_agent.trading import Account, Quote, SymbolData, SymbolSpec, TradeError


def down_to_step(volume: Decimal, step: Decimal) -> Decimal:
    """``volume`` rounded down to a whole number of ``step``s."""
    if step <= 0:
        raise ValueError("volume step must be positive")
    return ((volume / step).to_integral_value(rounding=ROUND_DOWN) * step).quantize(step)


def order_price(
    side: Side, order_type: OrderType, entry: Decimal | None, quote: Quote | None
) -> Decimal:
    """The price the risk is measured from: the entry of a limit or stop order, the ask
    (buy) or bid (sell) of a market order."""
    if order_type is not OrderType.MARKET:
        assert entry is not None
        return entry
    assert quote is not None
    return quote.ask if side is Side.BUY else quote.bid


def risk_money(sizing: Sizing, account: Account) -> Decimal:
    """What the order may lose at its stop loss, in the account currency."""
    if sizing.mode is SizingMode.RISK_MONEY:
        assert sizing.amount is not None
        return sizing.amount
    assert sizing.percent is not None
    base = account.equity if sizing.of is RiskOf.EQUITY else account.balance
    return sizing.percent / 100 * base


def risk_lots(
    sizing: Sizing, account: Account, data: SymbolData, price: Decimal, stop_loss: Decimal
) -> Decimal:
    """lots = risk / (|price − stop loss| / tick_size × tick_value), rounded down to the
    volume step, then at most ``max_lots`` and volume_max; 90003 below volume_min."""
    spec = data.spec
    distance = abs(price - stop_loss)
    if distance == 0 or data.tick_size <= 0 or data.tick_value <= 0:
        raise TradeError(
            int(Code.VOLUME_BELOW_MINIMUM),
            f"cannot size {data.name}: the stop loss {stop_loss} is at the price {price}"
            if distance == 0
            else f"cannot size {data.name}: its tick size or tick value is zero",
        )
    risk = risk_money(sizing, account)
    loss_per_lot = distance / data.tick_size * data.tick_value
    lots = down_to_step(risk / loss_per_lot, spec.volume_step)
    cap = spec.volume_max if sizing.max_lots is None else min(sizing.max_lots, spec.volume_max)
    lots = min(lots, down_to_step(cap, spec.volume_step))
    if lots < spec.volume_min or lots <= 0:
        raise TradeError(
            int(Code.VOLUME_BELOW_MINIMUM),
            f"risking {risk.quantize(Decimal('0.01'))} {account.currency} with the stop loss "
            f"{distance} away ({loss_per_lot.quantize(Decimal('0.01'))} a lot) gives "
            f"{lots} lots, below {data.name}'s minimum {spec.volume_min}; no trade",
        )
    return lots


def split_legs(volume: Decimal, legs: Sequence[Leg], spec: SymbolSpec) -> list[Decimal]:
    """The volume of each leg kept, leg 0 first: volume × share rounded down to the step,
    what the rounding leaves to the first leg; while a leg would be below volume_min, the
    last leg is dropped and its share goes to the first."""
    shares = [leg.share for leg in legs]
    while True:
        parts = [down_to_step(volume * share, spec.volume_step) for share in shares]
        parts[0] += volume - sum(parts)
        if len(parts) == 1 or all(part >= spec.volume_min for part in parts):
            return [part.quantize(spec.volume_step) for part in parts]
        shares[0] += shares.pop()


def check_guards(guards: Guards, side: Side, quote: Quote, point: Decimal, symbol: str) -> None:
    """A market open's guards: 90004 when the spread is above ``max_spread_points``, 90005
    when the price is more than ``max_distance_points`` from ``reference_price``."""
    if point <= 0:
        raise ValueError("point must be positive")
    spread = (quote.ask - quote.bid) / point
    if guards.max_spread_points is not None and spread > guards.max_spread_points:
        raise TradeError(
            int(Code.SPREAD_TOO_WIDE),
            f"{symbol} spread is {_points(spread)} points, above the "
            f"{guards.max_spread_points} allowed; not opened",
        )
    if guards.reference_price is not None and guards.max_distance_points is not None:
        price = quote.ask if side is Side.BUY else quote.bid
        distance = abs(price - guards.reference_price) / point
        if distance > guards.max_distance_points:
            raise TradeError(
                int(Code.PRICE_TOO_FAR),
                f"{symbol} is at {price}, {_points(distance)} points from the signal's "
                f"{guards.reference_price} (at most {guards.max_distance_points}); not opened",
            )


def _points(value: Decimal) -> str:
    return format(value.quantize(Decimal("0.1")).normalize(), "f")
