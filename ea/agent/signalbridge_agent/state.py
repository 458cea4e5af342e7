"""The device state of EA_PROTOCOL.md 5.1 as a JSON body: the account's figures (never its
number), only the positions this agent opened for instructions, and the symbols it trades."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from signalbridge_agent import __version__
from signalbridge_agent.journal import Owned
from signalbridge_agent.protocol import PROTOCOL, wire_decimal
from signalbridge_agent.trading import Account, Holding, SymbolData

EA_NAME = "signalbridge-agent"


def state_body(
    *,
    platform: str,
    build: int | None,
    account: Account,
    positions: Sequence[tuple[Owned, Holding]],
    symbols: Sequence[SymbolData],
) -> dict[str, Any]:
    ea: dict[str, Any] = {"name": EA_NAME, "version": __version__, "platform": platform}
    if build is not None:
        ea["build"] = build
    figures: dict[str, Any] = {
        "currency": account.currency,
        "balance": wire_decimal(account.balance),
        "equity": wire_decimal(account.equity),
        "margin_free": wire_decimal(account.margin_free),
        "leverage": account.leverage,
        "trade_allowed": account.trade_allowed,
    }
    if account.company:
        figures["company"] = account.company
    if account.server:
        figures["server"] = account.server
    return {
        "protocol": PROTOCOL,
        "ea": ea,
        "account": figures,
        "positions": [_position(owned, held) for owned, held in positions],
        "symbols": [_symbol(data) for data in symbols],
    }


def _position(owned: Owned, held: Holding) -> dict[str, Any]:
    body: dict[str, Any] = {
        "ticket": held.ticket,
        "instruction_id": owned.instruction_id,
        "leg": owned.leg or 0,
        "symbol": held.symbol,
        "side": held.side.value,
        "volume": wire_decimal(held.volume),
        "open_price": wire_decimal(held.price),
        "profit": wire_decimal(held.profit),
    }
    if held.stop_loss is not None:
        body["stop_loss"] = wire_decimal(held.stop_loss)
    if held.take_profit is not None:
        body["take_profit"] = wire_decimal(held.take_profit)
    return body


def _symbol(data: SymbolData) -> dict[str, Any]:
    return {
        "name": data.name,
        "tick_size": wire_decimal(data.tick_size),
        "tick_value": wire_decimal(data.tick_value),
        "volume_min": wire_decimal(data.spec.volume_min),
        "volume_step": wire_decimal(data.spec.volume_step),
        "volume_max": wire_decimal(data.spec.volume_max),
    }
