"""Position sizing and take-profit legs of protocol v1.1 (EA_PROTOCOL.md 5.2), as pure math.

The EA sizes the order itself from live prices; the server computes the same figures from
the device's last state to send an estimate in ``volume`` and to preview the size in the
chat. Everything here is ``Decimal`` in, ``Decimal`` out, never a float:

- risk: ``percent / 100 × balance`` (or equity), or a fixed amount of account currency;
- loss per lot: ``|price − stop_loss| / tick_size × tick_value``;
- lots: ``risk / loss per lot`` rounded down to ``volume_step``, then at most ``max_lots``
  and ``volume_max``; below ``volume_min`` there is no trade (the EA's error 90003);
- legs: one per take profit, equal shares or the owner's, summing to exactly 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

SHARE_QUANTUM = Decimal("0.0001")
ONE = Decimal(1)


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """What sizing needs of a symbol, as the device's state lists it (5.1 ``symbols``)."""

    tick_size: Decimal
    tick_value: Decimal
    volume_min: Decimal
    volume_step: Decimal
    volume_max: Decimal


def risk_amount(
    mode: str,
    *,
    percent: Decimal | None = None,
    base: Decimal | None = None,
    amount: Decimal | None = None,
) -> Decimal | None:
    """What the trade may lose, in account currency (None: not a risk mode, or unknown)."""
    if mode == "risk_percent" and percent is not None and base is not None:
        return percent / 100 * base
    if mode == "risk_money" and amount is not None:
        return amount
    return None


def loss_per_lot(price: Decimal, stop_loss: Decimal, spec: SymbolSpec) -> Decimal:
    """What one lot loses between ``price`` and ``stop_loss``."""
    return abs(price - stop_loss) / spec.tick_size * spec.tick_value


def round_down(volume: Decimal, step: Decimal) -> Decimal:
    """``volume`` rounded down to a whole number of ``step``."""
    steps = (volume / step).to_integral_value(rounding=ROUND_DOWN)
    return (steps * step).normalize() if steps else Decimal(0)


def lots_for_risk(
    risk: Decimal,
    price: Decimal,
    stop_loss: Decimal,
    spec: SymbolSpec,
    max_lots: Decimal | None = None,
) -> Decimal | None:
    """The lots risking ``risk`` between ``price`` and ``stop_loss`` (rounded down to the
    step, capped by ``max_lots`` and the symbol's maximum); None when that is below the
    symbol's minimum, or the risk or the distance is not positive."""
    per_lot = loss_per_lot(price, stop_loss, spec)
    if risk <= 0 or per_lot <= 0:
        return None
    lots = risk / per_lot
    caps = [spec.volume_max] + ([max_lots] if max_lots is not None else [])
    lots = round_down(min([lots, *caps]), spec.volume_step)
    return lots if lots >= spec.volume_min and lots > 0 else None


def leg_shares(count: int, shares: Sequence[Decimal] | None = None) -> list[Decimal]:
    """The share of each of ``count`` take profits: the owner's ``shares`` (scaled to sum
    to 1 and cut to ``count``) when they give one positive share per take profit or more,
    else equal shares; quantized to 0.0001, what rounding leaves going to the first leg, so
    the shares sum to exactly 1."""
    if count <= 0:
        return []
    given = list(shares or ())[:count]
    if len(given) < count or any(share <= 0 for share in given):
        given = [ONE] * count
    total = sum(given, Decimal(0))
    quantized = [(share / total).quantize(SHARE_QUANTUM, rounding=ROUND_DOWN) for share in given]
    if not all(quantized):  # a share too small to keep: equal shares instead
        quantized = [(ONE / count).quantize(SHARE_QUANTUM, rounding=ROUND_DOWN)] * count
    quantized[0] += ONE - sum(quantized, Decimal(0))
    return [share.normalize() for share in quantized]
