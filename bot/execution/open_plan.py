"""What a v1.1 device's ``open`` carries (EA_PROTOCOL.md 5.2), frozen from its settings.

:func:`plan_open` turns a device's settings columns (db/models.py Device), its latest
state (the account and the symbol's data) and the signal into the open's ``sizing``,
``legs``, ``management`` and ``guards``, the server's ``volume`` estimate and the chat's
size preview. The rules:

- risk modes only for a signal with a stop loss (and a risk set): else fixed mode with the
  device's lot size (``no_stop_loss`` tells the preview why); ``max_lots`` caps every mode;
- ``volume``: fixed lots, or the risk's lots from the state's symbol data at the order's
  price (the entry of a limit or stop order; for a market order the provider's reference
  price), falling back to the lot size where that cannot be estimated;
- ``legs`` when the device splits take profits and the signal has two or more;
- ``management.breakeven`` only with legs and a leg after ``after_leg``; trailing when set;
- ``guards`` for market orders: the spread cap, and the distance cap with the provider's
  reference price (a distance needs a price to be measured from).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from bot.domain.signal_dto import SizePreview
from bot.domain.signal_rules import format_decimal
from bot.domain.sizing import leg_shares, lots_for_risk, risk_amount
from bot.execution.device_state import symbol_spec

RISK_MODES = ("risk_percent", "risk_money")


@dataclass(frozen=True, slots=True)
class OpenPlan:
    volume: Decimal
    sizing: dict[str, object]
    legs: list[dict[str, object]] | None
    management: dict[str, object] | None
    guards: dict[str, object] | None
    preview: SizePreview


def _money_of_minor(minor: int) -> Decimal:
    return Decimal(minor).scaleb(-2)


def _shares(raw: Any) -> list[Decimal] | None:
    if not isinstance(raw, list):
        return None
    try:
        return [Decimal(str(item)) for item in raw]
    except InvalidOperation:
        return None


def _capped(lots: Decimal, max_lots: Decimal | None) -> Decimal:
    return lots if max_lots is None else min(lots, max_lots)


def plan_open(device: Any, state: Any, signal: Any, symbol: str) -> OpenPlan:
    """The v1.1 fields of ``device``'s open of ``signal`` (``symbol``: after its mapping).

    ``device`` and ``signal`` are the ORM rows (or anything with their attributes),
    ``state`` the device's DeviceState."""
    take_profits = [Decimal(tp) for tp in signal.take_profit or ()]
    max_lots: Decimal | None = device.max_lots
    mode = device.sizing_mode
    risk_set = (mode == "risk_percent" and device.risk_percent is not None) or (
        mode == "risk_money" and device.risk_money_minor is not None
    )
    no_stop_loss = mode in RISK_MODES and signal.stop_loss is None
    legs_count = len(take_profits) if device.tp_mode == "split" and len(take_profits) > 1 else 0
    fixed_lots = _capped(device.lot_size, max_lots)
    if mode not in RISK_MODES or not risk_set or signal.stop_loss is None:
        preview = SizePreview(
            mode="fixed",
            lots=fixed_lots,
            currency=state.currency,
            no_stop_loss=no_stop_loss,
            legs=legs_count,
        )
        sizing: dict[str, object] = {"mode": "fixed", "lots": format_decimal(fixed_lots)}
        volume = fixed_lots
    else:
        base = state.equity if device.risk_of == "equity" else state.balance
        amount = (
            _money_of_minor(device.risk_money_minor)
            if device.risk_money_minor is not None
            else None
        )
        risk = risk_amount(mode, percent=device.risk_percent, base=base, amount=amount)
        price = signal.entry if signal.order_type != "market" else signal.reference_price
        spec = symbol_spec(state.symbols, symbol)
        estimate = (
            lots_for_risk(risk, price, signal.stop_loss, spec, max_lots)
            if risk is not None and price is not None and spec is not None
            else None
        )
        if mode == "risk_percent":
            sizing = {
                "mode": mode,
                "percent": format_decimal(device.risk_percent),
                "of": device.risk_of,
            }
        else:
            assert amount is not None
            sizing = {"mode": mode, "amount": f"{amount:.2f}"}
        if max_lots is not None:
            sizing["max_lots"] = format_decimal(max_lots)
        volume = estimate if estimate is not None else fixed_lots
        preview = SizePreview(
            mode=mode,
            lots=estimate,
            currency=state.currency,
            percent=device.risk_percent if mode == "risk_percent" else None,
            base=base if mode == "risk_percent" else None,
            amount=amount,
            legs=legs_count,
        )
    legs: list[dict[str, object]] | None = None
    if legs_count:
        shares = leg_shares(legs_count, _shares(device.tp_shares))
        legs = [
            {"take_profit": format_decimal(tp), "share": format_decimal(share)}
            for tp, share in zip(take_profits, shares, strict=True)
        ]
    return OpenPlan(
        volume=volume,
        sizing=sizing,
        legs=legs,
        management=_management(device, legs_count),
        guards=_guards(device, signal),
        preview=preview,
    )


def _management(device: Any, legs_count: int) -> dict[str, object] | None:
    management: dict[str, object] = {}
    after = device.breakeven_after_leg
    if after is not None and legs_count and 0 <= after < legs_count - 1:
        management["breakeven"] = {
            "after_leg": after,
            "offset_points": device.breakeven_offset_points,
        }
    if device.trailing_distance_points:
        management["trailing"] = {
            "distance_points": device.trailing_distance_points,
            "step_points": device.trailing_step_points,
            "start": device.trailing_start,
        }
    return management or None


def _guards(device: Any, signal: Any) -> dict[str, object] | None:
    if signal.order_type != "market":
        return None
    guards: dict[str, object] = {}
    if device.max_spread_points is not None:
        guards["max_spread_points"] = device.max_spread_points
    if signal.reference_price is not None:
        guards["reference_price"] = format_decimal(signal.reference_price)
        if device.max_distance_points is not None:
            guards["max_distance_points"] = device.max_distance_points
    return guards or None
