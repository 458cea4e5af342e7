"""Device state (EA_PROTOCOL.md 5.1): the body rules of ``POST /api/v1/ea/state`` as a pure
parser, the store that keeps each device's latest state, and what the server reads of it.

Every problem is named at once in :class:`InvalidState.fields` (the 422 answer), by its
path (``account.balance``, ``positions[2].volume``). Sizes are bounded before anything is
looked at twice: at most :data:`MAX_POSITIONS` positions and :data:`MAX_SYMBOLS` symbols,
texts within their columns, decimals within their columns (db/models.py DeviceState), so
hostile input is answered with a 422 and never reaches the database unbounded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.signal_rules import format_decimal
from bot.domain.sizing import SymbolSpec
from bot.execution.reports import (
    MAX_TICKET,
    RECORD_ID_RE,
    decimal_parser,
    integer_parser,
    match_parser,
)
from db.repositories.device_states import DeviceStateRepository

PROTOCOL_V11 = "1.1"
MAX_POSITIONS = 200
MAX_SYMBOLS = 100
MAX_LEGS = 10
MAX_PROBLEMS = 20
# Whole seconds the server suggests for the next polls' ``wait`` (0-25): 0 when something
# is pending now (fetch it at once), else the longest wait, answered early by any work.
POLL_WAIT_BUSY = 0
POLL_WAIT_IDLE = 25

_INT32 = 2**31 - 1
_TEXT_RE = re.compile(r"^[\x20-\x7e]{1,%d}$")
_PLATFORM_RE = re.compile(r"^[a-z0-9_-]{1,16}$")
_CURRENCY_RE = re.compile(r"^[A-Za-z0-9]{1,8}$")
# Broker symbols: printable ASCII without spaces (EURUSD.m, #AAPL, US30.cash, EURUSD+).
_SYMBOL_RE = re.compile(r"^[!-~]{1,64}$")

_money = decimal_parser(positive=False, whole=12, places=8)
_price = decimal_parser(positive=True, whole=10, places=10)
_volume = decimal_parser(positive=True, whole=10, places=8)
_tick_value = decimal_parser(positive=True, whole=12, places=8)
_ticket = integer_parser(0, MAX_TICKET)
_leg = integer_parser(0, MAX_LEGS - 1)
_int32 = integer_parser(0, _INT32)
_instruction_id = match_parser(RECORD_ID_RE)

_DIGITS = "decimal string, at most {whole} digits before the point and {places} after"
_PROBLEMS = {
    "money": f'must be a {_DIGITS.format(whole=12, places=8)}, e.g. "10000.00"',
    "price": f'must be a positive {_DIGITS.format(whole=10, places=10)}, e.g. "1.08512"',
    "volume": f'must be a positive {_DIGITS.format(whole=10, places=8)}, e.g. "0.10"',
    "tick_value": f'must be a positive {_DIGITS.format(whole=12, places=8)}, e.g. "1.00"',
    "ticket": "must be a whole number, 0 or more",
    "leg": f"must be a whole number from 0 to {MAX_LEGS - 1}",
    "int": f"must be a whole number from 0 to {_INT32}",
    "bool": "must be true or false",
    "side": "must be buy or sell",
    "symbol": "must be 1-64 printable ASCII characters without spaces",
    "instruction_id": "must be an instruction id as received, e.g. ins_...",
    "object": "must be a JSON object",
}


class InvalidState(Exception):
    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__(", ".join(f"{name}: {problem}" for name, problem in fields.items()))
        self.fields = fields


@dataclass(frozen=True, slots=True)
class StateReport:
    """A valid state body: the columns of db/models.py DeviceState, lists as stored JSON."""

    protocol: str
    ea_name: str
    ea_version: str
    platform: str
    build: int | None
    currency: str
    balance: Decimal
    equity: Decimal
    margin_free: Decimal
    leverage: int
    trade_allowed: bool
    company: str | None
    server: str | None
    positions: list[dict[str, object]] = field(default_factory=list)
    symbols: list[dict[str, object]] = field(default_factory=list)


class _Checker:
    """Collects problems by path; stops collecting past MAX_PROBLEMS (the answer stays short)."""

    def __init__(self) -> None:
        self.fields: dict[str, str] = {}

    def problem(self, path: str, text: str) -> None:
        if len(self.fields) < MAX_PROBLEMS:
            self.fields.setdefault(path, text)

    def object(self, payload: Mapping[str, Any], name: str, path: str) -> Mapping[str, Any]:
        value = payload.get(name)
        if not isinstance(value, dict):
            self.problem(path, "is required" if value is None else _PROBLEMS["object"])
            return {}
        return value

    def value(
        self,
        payload: Mapping[str, Any],
        name: str,
        path: str,
        parse: Any,
        problem: str,
        *,
        required: bool = True,
    ) -> Any:
        raw = payload.get(name)
        if raw is None:
            if required:
                self.problem(path, "is required")
            return None
        parsed = parse(raw)
        if parsed is None:
            self.problem(path, problem)
        return parsed


def _text(limit: int) -> Any:
    pattern = re.compile(_TEXT_RE.pattern % limit)
    return match_parser(pattern)


def _boolean(raw: Any) -> bool | None:
    return raw if isinstance(raw, bool) else None


def _side(raw: Any) -> str | None:
    return raw if raw in ("buy", "sell") else None


def parse_state(payload: Any) -> StateReport:
    """Check a decoded JSON body; raise :class:`InvalidState` naming every bad field."""
    if not isinstance(payload, dict):
        raise InvalidState({"body": _PROBLEMS["object"]})
    check = _Checker()
    protocol = payload.get("protocol")
    if protocol != PROTOCOL_V11:
        check.problem("protocol", 'is required and must be "1.1"')
    ea = check.object(payload, "ea", "ea")
    name = check.value(ea, "name", "ea.name", _text(64), "must be 1-64 printable characters")
    version = check.value(
        ea, "version", "ea.version", _text(32), "must be 1-32 printable characters"
    )
    platform = check.value(
        ea,
        "platform",
        "ea.platform",
        match_parser(_PLATFORM_RE),
        "must be mt4, mt5 or the executor's name: 1-16 of [a-z0-9_-]",
    )
    build = check.value(ea, "build", "ea.build", _int32, _PROBLEMS["int"], required=False)
    account = check.object(payload, "account", "account")
    currency = check.value(
        account,
        "currency",
        "account.currency",
        match_parser(_CURRENCY_RE),
        "must be 1-8 letters or digits, e.g. USD",
    )
    money = {
        key: check.value(account, key, f"account.{key}", _money, _PROBLEMS["money"])
        for key in ("balance", "equity", "margin_free")
    }
    leverage = check.value(account, "leverage", "account.leverage", _int32, _PROBLEMS["int"])
    trade_allowed = check.value(
        account, "trade_allowed", "account.trade_allowed", _boolean, _PROBLEMS["bool"]
    )
    company, server = (
        check.value(
            account,
            key,
            f"account.{key}",
            _text(128),
            "must be 1-128 printable characters",
            required=False,
        )
        for key in ("company", "server")
    )
    positions = _positions(payload.get("positions"), check)
    symbols = _symbols(payload.get("symbols"), check)
    if check.fields:
        raise InvalidState(check.fields)
    return StateReport(
        protocol=PROTOCOL_V11,
        ea_name=name,
        ea_version=version,
        platform=platform,
        build=build,
        currency=currency.upper(),
        balance=money["balance"],
        equity=money["equity"],
        margin_free=money["margin_free"],
        leverage=leverage,
        trade_allowed=trade_allowed,
        company=company,
        server=server,
        positions=positions,
        symbols=symbols,
    )


def _items(raw: Any, name: str, limit: int, check: _Checker, *, required: bool) -> list[Any]:
    if raw is None:
        if required:
            check.problem(name, "is required (an empty list when there is nothing)")
        return []
    if not isinstance(raw, list):
        check.problem(name, "must be a list")
        return []
    if len(raw) > limit:
        check.problem(name, f"at most {limit} items")
        return []
    return raw


def _positions(raw: Any, check: _Checker) -> list[dict[str, object]]:
    stored: list[dict[str, object]] = []
    for index, item in enumerate(_items(raw, "positions", MAX_POSITIONS, check, required=True)):
        path = f"positions[{index}]"
        if not isinstance(item, dict):
            check.problem(path, _PROBLEMS["object"])
            continue
        values = {
            "ticket": check.value(item, "ticket", f"{path}.ticket", _ticket, _PROBLEMS["ticket"]),
            "instruction_id": check.value(
                item,
                "instruction_id",
                f"{path}.instruction_id",
                _instruction_id,
                _PROBLEMS["instruction_id"],
            ),
            "leg": check.value(item, "leg", f"{path}.leg", _leg, _PROBLEMS["leg"], required=False),
            "symbol": check.value(
                item, "symbol", f"{path}.symbol", match_parser(_SYMBOL_RE), _PROBLEMS["symbol"]
            ),
            "side": check.value(item, "side", f"{path}.side", _side, _PROBLEMS["side"]),
            "volume": check.value(item, "volume", f"{path}.volume", _volume, _PROBLEMS["volume"]),
            "open_price": check.value(
                item, "open_price", f"{path}.open_price", _price, _PROBLEMS["price"]
            ),
            "stop_loss": check.value(
                item, "stop_loss", f"{path}.stop_loss", _price, _PROBLEMS["price"], required=False
            ),
            "take_profit": check.value(
                item,
                "take_profit",
                f"{path}.take_profit",
                _price,
                _PROBLEMS["price"],
                required=False,
            ),
            "profit": check.value(item, "profit", f"{path}.profit", _money, _PROBLEMS["money"]),
        }
        stored.append({key: _json_value(value) for key, value in values.items()})
    return stored


def _symbols(raw: Any, check: _Checker) -> list[dict[str, object]]:
    stored: list[dict[str, object]] = []
    seen: set[str] = set()
    for index, item in enumerate(_items(raw, "symbols", MAX_SYMBOLS, check, required=False)):
        path = f"symbols[{index}]"
        if not isinstance(item, dict):
            check.problem(path, _PROBLEMS["object"])
            continue
        name = check.value(
            item, "name", f"{path}.name", match_parser(_SYMBOL_RE), _PROBLEMS["symbol"]
        )
        if isinstance(name, str):
            if name in seen:
                check.problem(f"{path}.name", "is listed more than once")
            seen.add(name)
        values: dict[str, Any] = {"name": name}
        values["tick_size"] = check.value(
            item, "tick_size", f"{path}.tick_size", _price, _PROBLEMS["price"]
        )
        values["tick_value"] = check.value(
            item, "tick_value", f"{path}.tick_value", _tick_value, _PROBLEMS["tick_value"]
        )
        for key in ("volume_min", "volume_step", "volume_max"):
            values[key] = check.value(item, key, f"{path}.{key}", _volume, _PROBLEMS["volume"])
        low, high = values["volume_min"], values["volume_max"]
        if low is not None and high is not None and low > high:
            check.problem(f"{path}.volume_max", "must not be below volume_min")
        stored.append({key: _json_value(value) for key, value in values.items()})
    return stored


def _json_value(value: Any) -> object:
    """Decimals as their plain decimal string (the JSON column never holds a float)."""
    return format_decimal(value) if isinstance(value, Decimal) else value


def symbol_spec(symbols: list[dict[str, object]], name: str) -> SymbolSpec | None:
    """The stored symbol data of ``name`` (as a state listed it), or None."""
    for item in symbols:
        if item.get("name") == name:
            return SymbolSpec(
                tick_size=Decimal(str(item["tick_size"])),
                tick_value=Decimal(str(item["tick_value"])),
                volume_min=Decimal(str(item["volume_min"])),
                volume_step=Decimal(str(item["volume_step"])),
                volume_max=Decimal(str(item["volume_max"])),
            )
    return None


async def store_state(
    session: AsyncSession, device_pk: int, state: StateReport, now: datetime
) -> None:
    """Keep ``state`` as the device's latest (the one before is replaced)."""
    await DeviceStateRepository(session).replace(
        {
            "device_id": device_pk,
            "protocol": state.protocol,
            "ea_name": state.ea_name,
            "ea_version": state.ea_version,
            "platform": state.platform,
            "build": state.build,
            "currency": state.currency,
            "balance": state.balance,
            "equity": state.equity,
            "margin_free": state.margin_free,
            "leverage": state.leverage,
            "trade_allowed": state.trade_allowed,
            "company": state.company,
            "server": state.server,
            "positions": state.positions,
            "symbols": state.symbols,
            "received_at": now,
        }
    )


def poll_wait(pending: bool) -> int:
    """The ``wait`` suggested for the next polls: at once when work is pending, else 25 s
    (a long poll answers as soon as work arrives, so the longest wait costs no latency)."""
    return POLL_WAIT_BUSY if pending else POLL_WAIT_IDLE
