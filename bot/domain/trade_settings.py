"""A device's trade management (EA_PROTOCOL 5): what the owner types, checked and stored.

Sizing, the take-profit split, breakeven, trailing, guards and protections, each parsed
from the chat with a clear reason for anything refused, and the device's latest reported
state (its EA, account and open positions) as plain data for the device screen. The
setters re-check the device through DeviceService (exists, active, the caller's) before
they parse, and parse everything before they change anything.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.devices import CLEAR, SYMBOL_RE, DeviceDTO, parse_lot_size
from bot.domain.errors import ErrorCode, InvalidInputError
from db.models import Device, DeviceState

if TYPE_CHECKING:
    from bot.domain.devices import DeviceService

V11 = "1.1"
MAX_RISK_PERCENT = Decimal(100)
MAX_MONEY_MINOR = 1_000_000_000  # 10,000,000.00 of the account currency
MAX_TP_SHARES = 10  # as many as a signal may have take profits
MAX_POINTS = 100_000
MAX_OPEN_POSITIONS = 1_000
MAX_LISTED_SYMBOLS = 50
_NUMBER_RE = re.compile(r"^[0-9]{1,9}(?:[.,][0-9]{1,8})?$")
_INT_RE = re.compile(r"^[0-9]{1,9}$")
_SEPARATORS = re.compile(r"[\s,;]+")
_HOURS_RE = re.compile(
    r"^(?:(?P<days>.+?)\s+)?(?P<start>[0-9]{1,2}:[0-9]{2})\s*[-–—]\s*(?P<end>[0-9]{1,2}:[0-9]{2})$"
)
_TIME_RE = re.compile(r"^([0-9]{1,2}):([0-9]{2})$")
# English and Russian day names as owners type them (Monday is 0).
_DAY_SPELLINGS = (
    ("mon", "monday", "пн", "пон", "понедельник"),
    ("tue", "tues", "tuesday", "вт", "вто", "вторник"),
    ("wed", "wednesday", "ср", "сре", "среда"),
    ("thu", "thur", "thurs", "thursday", "чт", "чет", "четверг"),
    ("fri", "friday", "пт", "пят", "пятница"),
    ("sat", "saturday", "сб", "суб", "суббота"),
    ("sun", "sunday", "вс", "вос", "воскресенье"),
)
_DAY_NAMES = {name: day for day, names in enumerate(_DAY_SPELLINGS) for name in names}
_DAY_DASH = re.compile(r"\s*[-–—]\s*")
_EVERY_DAY = ("daily", "every day", "ежедневно", "каждый день")


class SizingMode(StrEnum):
    FIXED = "fixed"
    RISK_PERCENT = "risk_percent"
    RISK_MONEY = "risk_money"


class RiskOf(StrEnum):
    BALANCE = "balance"
    EQUITY = "equity"


class TpMode(StrEnum):
    FIRST = "first"
    SPLIT = "split"


class TrailingStart(StrEnum):
    AT_OPEN = "at_open"
    AFTER_BREAKEVEN = "after_breakeven"


@dataclass(frozen=True, slots=True)
class TradingHours:
    """Days (Monday 0) and a UTC window that opens on each of them; an end before the
    start closes the next day (bot/execution/protections.py enforces it so)."""

    days: tuple[int, ...]
    start: str
    end: str

    def as_json(self) -> dict[str, object]:
        return {"days": list(self.days), "start": self.start, "end": self.end}

    @classmethod
    def from_json(cls, value: Mapping[str, object] | None) -> TradingHours | None:
        if not value:
            return None
        days = value.get("days")
        return cls(
            days=tuple(int(str(day)) for day in days) if isinstance(days, list) else (),
            start=str(value.get("start", "")),
            end=str(value.get("end", "")),
        )


@dataclass(frozen=True, slots=True)
class TradeSettings:
    """The owner's trade management of one device, as stored."""

    sizing_mode: SizingMode
    lot_size: Decimal
    risk_percent: Decimal | None
    risk_of: RiskOf
    risk_money_minor: int | None
    max_lots: Decimal | None
    tp_mode: TpMode
    tp_shares: tuple[Decimal, ...] | None
    breakeven_after_leg: int | None
    breakeven_offset_points: int
    trailing_distance_points: int | None
    trailing_step_points: int
    trailing_start: TrailingStart
    max_spread_points: int | None
    max_distance_points: int | None
    max_open_positions: int | None
    daily_loss_limit_minor: int | None
    symbols_allowed: tuple[str, ...]
    symbols_denied: tuple[str, ...]
    trading_hours: TradingHours | None

    @classmethod
    def from_model(cls, device: Device) -> TradeSettings:
        return cls(
            sizing_mode=SizingMode(device.sizing_mode),
            lot_size=device.lot_size,
            risk_percent=device.risk_percent,
            risk_of=RiskOf(device.risk_of),
            risk_money_minor=device.risk_money_minor,
            max_lots=device.max_lots,
            tp_mode=TpMode(device.tp_mode),
            tp_shares=None
            if device.tp_shares is None
            else tuple(Decimal(share) for share in device.tp_shares),
            breakeven_after_leg=device.breakeven_after_leg,
            breakeven_offset_points=device.breakeven_offset_points,
            trailing_distance_points=device.trailing_distance_points,
            trailing_step_points=device.trailing_step_points,
            trailing_start=TrailingStart(device.trailing_start),
            max_spread_points=device.max_spread_points,
            max_distance_points=device.max_distance_points,
            max_open_positions=device.max_open_positions,
            daily_loss_limit_minor=device.daily_loss_limit_minor,
            symbols_allowed=tuple(device.symbols_allowed or ()),
            symbols_denied=tuple(device.symbols_denied or ()),
            trading_hours=TradingHours.from_json(device.trading_hours),
        )


@dataclass(frozen=True, slots=True)
class PositionLine:
    """One open position as the EA reported it (values as sent, for display)."""

    ticket: str
    symbol: str
    side: str
    volume: str
    open_price: str
    profit: str


@dataclass(frozen=True, slots=True)
class DeviceStateDTO:
    """The latest ``POST /api/v1/ea/state`` of a device (EA_PROTOCOL 5.1)."""

    protocol: str
    ea_name: str
    ea_version: str
    platform: str
    build: int | None
    currency: str
    balance: Decimal
    equity: Decimal
    positions: tuple[PositionLine, ...]
    received_at: datetime

    @property
    def is_v11(self) -> bool:
        return self.protocol == V11

    @classmethod
    def from_model(cls, state: DeviceState) -> DeviceStateDTO:
        return cls(
            protocol=state.protocol,
            ea_name=state.ea_name,
            ea_version=state.ea_version,
            platform=state.platform,
            build=state.build,
            currency=state.currency,
            balance=state.balance,
            equity=state.equity,
            positions=tuple(_position(item) for item in state.positions or ()),
            received_at=state.received_at,
        )


def _position(item: Mapping[str, object]) -> PositionLine:
    def field(name: str) -> str:
        value = item.get(name)
        return "" if value is None else str(value)

    return PositionLine(
        ticket=field("ticket"),
        symbol=field("symbol"),
        side=field("side"),
        volume=field("volume"),
        open_price=field("open_price"),
        profit=field("profit"),
    )


@dataclass(frozen=True, slots=True)
class TradeView:
    """What the device screen shows beyond the device itself."""

    settings: TradeSettings
    state: DeviceStateDTO | None

    @property
    def is_v11(self) -> bool:
        return self.state is not None and self.state.is_v11


async def trade_view(session: AsyncSession, device: DeviceDTO) -> TradeView:
    """The stored settings and the latest state of a device the caller already checked."""
    model = await session.get(Device, device.pk)
    if model is None:  # DeviceService found it in this transaction
        raise LookupError(device.pk)
    state = await session.get(DeviceState, device.pk)
    return TradeView(
        TradeSettings.from_model(model),
        None if state is None else DeviceStateDTO.from_model(state),
    )


# --- parsing what the owner types: a clear reason for anything refused ---


def _is_clear(text: str) -> bool:
    return text.strip() == CLEAR


def _number(text: str) -> Decimal | None:
    candidate = text.strip()
    if not _NUMBER_RE.match(candidate):
        return None
    return Decimal(candidate.replace(",", "."))  # the pattern admits only plain decimals


def _int(text: str, low: int, high: int) -> int | None:
    candidate = text.strip()
    if not _INT_RE.match(candidate):
        return None
    value = int(candidate)
    return value if low <= value <= high else None


def parse_risk_percent(text: str) -> Decimal:
    value = _number(text)
    if value is None or not Decimal("0.01") <= value <= MAX_RISK_PERCENT or _places(value) > 2:
        raise InvalidInputError(ErrorCode.RISK_PERCENT_INVALID, max=int(MAX_RISK_PERCENT))
    return value


def _places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def parse_money_minor(text: str) -> int:
    """An amount of the account currency, in hundredths: "50" → 5000, "12,5" → 1250."""
    value = _number(text)
    if value is None or value <= 0 or _places(value) > 2:
        raise InvalidInputError(ErrorCode.MONEY_INVALID)
    minor = int(value * 100)
    if minor > MAX_MONEY_MINOR:
        raise InvalidInputError(ErrorCode.MONEY_INVALID)
    return minor


def parse_money_or_off(text: str) -> int | None:
    return None if _is_clear(text) else parse_money_minor(text)


def parse_max_lots(text: str, service: DeviceService) -> Decimal | None:
    if _is_clear(text):
        return None
    settings = service.settings
    try:
        return parse_lot_size(text, settings)
    except InvalidInputError:
        raise InvalidInputError(
            ErrorCode.MAX_LOTS_INVALID, min=settings.min_lot_size, max=settings.max_lot_size
        ) from None


def parse_tp_shares(text: str) -> list[str]:
    """Percentages like ``50 30 20`` (positive, summing to 100) as fractions "0.5", ..."""
    items = [item for item in _SEPARATORS.split(text.strip().replace("%", " ")) if item]
    if not 2 <= len(items) <= MAX_TP_SHARES:
        raise InvalidInputError(ErrorCode.TP_SHARES_COUNT, max=MAX_TP_SHARES)
    shares: list[Decimal] = []
    for item in items:
        value = _number(item)
        if value is None or value <= 0 or _places(value) > 2:
            raise InvalidInputError(ErrorCode.TP_SHARE_INVALID, item=item[:20])
        shares.append(value)
    total = sum(shares, Decimal(0))
    if total != 100:
        raise InvalidInputError(ErrorCode.TP_SHARES_SUM, total=f"{total.normalize():f}")
    return [f"{(share / 100).normalize():f}" for share in shares]


def parse_breakeven(text: str) -> tuple[int, int] | None:
    """``n`` or ``n offset``: after TP n (1-based here, 0-based stored), or ``-`` off."""
    if _is_clear(text):
        return None
    parts = text.split()
    tp = _int(parts[0], 1, MAX_TP_SHARES) if 1 <= len(parts) <= 2 else None
    offset = _int(parts[1], 0, MAX_POINTS) if len(parts) == 2 else 0
    if tp is None or offset is None:
        raise InvalidInputError(ErrorCode.BREAKEVEN_INVALID, max_tp=MAX_TP_SHARES, max=MAX_POINTS)
    return tp - 1, offset


def parse_trailing(text: str) -> tuple[int, int] | None:
    """``distance step`` in points (step may be left out: 0), or ``-`` off."""
    if _is_clear(text):
        return None
    parts = text.split()
    distance = _int(parts[0], 1, MAX_POINTS) if 1 <= len(parts) <= 2 else None
    step = _int(parts[1], 0, MAX_POINTS) if len(parts) == 2 else 0
    if distance is None or step is None:
        raise InvalidInputError(ErrorCode.TRAILING_INVALID, max=MAX_POINTS)
    return distance, step


def parse_points_or_off(text: str) -> int | None:
    if _is_clear(text):
        return None
    value = _int(text, 1, MAX_POINTS)
    if value is None:
        raise InvalidInputError(ErrorCode.POINTS_INVALID, max=MAX_POINTS)
    return value


def parse_positions_or_off(text: str) -> int | None:
    if _is_clear(text):
        return None
    value = _int(text, 1, MAX_OPEN_POSITIONS)
    if value is None:
        raise InvalidInputError(ErrorCode.POSITIONS_INVALID, max=MAX_OPEN_POSITIONS)
    return value


def parse_symbol_list(text: str) -> list[str]:
    """Symbols separated by commas or spaces, upper case, each once; ``-`` for none."""
    if _is_clear(text):
        return []
    found: list[str] = []
    for item in _SEPARATORS.split(text.strip()):
        if not item:
            continue
        if not SYMBOL_RE.match(item):
            raise InvalidInputError(ErrorCode.SYMBOL_INVALID, item=item[:40])
        symbol = item.upper()
        if symbol not in found:
            found.append(symbol)
    if not found:
        raise InvalidInputError(ErrorCode.SYMBOL_INVALID, item=text.strip()[:40])
    if len(found) > MAX_LISTED_SYMBOLS:
        raise InvalidInputError(ErrorCode.SYMBOLS_TOO_MANY, limit=MAX_LISTED_SYMBOLS)
    return found


def _time(text: str) -> str | None:
    match = _TIME_RE.match(text)
    if match is None:
        return None
    hours, minutes = int(match.group(1)), int(match.group(2))
    return f"{hours:02d}:{minutes:02d}" if hours < 24 and minutes < 60 else None


def _days(text: str | None) -> tuple[int, ...] | None:
    if text is None or text.strip().lower() in _EVERY_DAY:
        return tuple(range(7))
    days: set[int] = set()
    for part in _SEPARATORS.split(_DAY_DASH.sub("-", text.strip().lower())):
        if not part:
            continue
        first, dash, last = part.partition("-")
        start, end = _DAY_NAMES.get(first), _DAY_NAMES.get(last if dash else first)
        if start is None or end is None:
            return None
        # Fri-Mon runs over the weekend: Friday to Sunday, then Monday.
        span = (end - start) % 7
        days.update((start + step) % 7 for step in range(span + 1))
    return tuple(sorted(days)) or None


def parse_trading_hours(text: str) -> TradingHours | None:
    """``Mon-Fri 07:00-20:00`` (UTC; days may be a list or left out for every day), or ``-``."""
    if _is_clear(text):
        return None
    match = _HOURS_RE.match(" ".join(text.split()))
    if match is None:
        raise InvalidInputError(ErrorCode.HOURS_INVALID)
    days = _days(match.group("days"))
    start, end = _time(match.group("start")), _time(match.group("end"))
    if days is None or start is None or end is None:
        raise InvalidInputError(ErrorCode.HOURS_INVALID)
    if start == end:  # an end before the start runs past midnight (22:00-06:00)
        raise InvalidInputError(ErrorCode.HOURS_ORDER)
    return TradingHours(days=days, start=start, end=end)


# --- setters: (DeviceService, owner, device, text) → the device, as the chat's fields call them

Values = Mapping[str, object]  # column → value
Parse = Callable[[str, "DeviceService"], Values]
Setter = Callable[["DeviceService", int, int, str], Awaitable[DeviceDTO]]


def _store(values: Values) -> Callable[[Device], None]:
    def change(device: Device) -> None:
        for column, value in values.items():
            setattr(device, column, value)

    return change


def _setter(parse: Parse) -> Setter:
    """A setter that checks the device first (a device that is gone says so, whatever was
    typed), then parses the text (a refusal changes nothing), then stores the columns."""

    async def setter(service: DeviceService, owner_id: int, device_pk: int, text: str) -> DeviceDTO:
        return await service.update(
            owner_id, device_pk, lambda device: _store(parse(text, service))(device)
        )

    return setter


def _column(name: str, parse: Callable[[str], object]) -> Parse:
    return lambda text, _service: {name: parse(text)}


def _risk_percent(of: RiskOf) -> Parse:
    return lambda text, _service: {
        "risk_percent": parse_risk_percent(text),
        "sizing_mode": SizingMode.RISK_PERCENT.value,
        "risk_of": of.value,
    }


def _risk_money(text: str, _service: DeviceService) -> Values:
    return {
        "risk_money_minor": parse_money_minor(text),
        "sizing_mode": SizingMode.RISK_MONEY.value,
    }


def _tp_shares(text: str, _service: DeviceService) -> Values:
    return {"tp_shares": parse_tp_shares(text), "tp_mode": TpMode.SPLIT.value}


def _breakeven(text: str, _service: DeviceService) -> Values:
    leg, offset = parse_breakeven(text) or (None, 0)
    return {"breakeven_after_leg": leg, "breakeven_offset_points": offset}


def _trailing(text: str, _service: DeviceService) -> Values:
    distance, step = parse_trailing(text) or (None, 0)
    return {"trailing_distance_points": distance, "trailing_step_points": step}


def _hours(text: str, _service: DeviceService) -> Values:
    hours = parse_trading_hours(text)
    return {"trading_hours": None if hours is None else hours.as_json()}


set_risk_percent_of_balance = _setter(_risk_percent(RiskOf.BALANCE))
set_risk_percent_of_equity = _setter(_risk_percent(RiskOf.EQUITY))
set_risk_money = _setter(_risk_money)
set_max_lots = _setter(lambda text, service: {"max_lots": parse_max_lots(text, service)})
set_tp_shares = _setter(_tp_shares)
set_breakeven = _setter(_breakeven)
set_trailing = _setter(_trailing)
set_max_spread = _setter(_column("max_spread_points", parse_points_or_off))
set_max_distance = _setter(_column("max_distance_points", parse_points_or_off))
set_max_open_positions = _setter(_column("max_open_positions", parse_positions_or_off))
set_daily_loss_limit = _setter(_column("daily_loss_limit_minor", parse_money_or_off))
set_symbols_allowed = _setter(_column("symbols_allowed", parse_symbol_list))
set_symbols_denied = _setter(_column("symbols_denied", parse_symbol_list))
set_trading_hours = _setter(_hours)


# --- presses: a mode chosen with a button ---

Press = Callable[["DeviceService", int, int], Awaitable[DeviceDTO]]


def _press(values: Values) -> Press:
    async def press(service: DeviceService, owner_id: int, device_pk: int) -> DeviceDTO:
        return await service.update(owner_id, device_pk, _store(values))

    return press


set_fixed_sizing = _press({"sizing_mode": SizingMode.FIXED.value})
set_tp_first = _press({"tp_mode": TpMode.FIRST.value, "tp_shares": None})
set_tp_equal = _press({"tp_mode": TpMode.SPLIT.value, "tp_shares": None})


async def toggle_trailing_start(service: DeviceService, owner_id: int, device_pk: int) -> DeviceDTO:
    def change(device: Device) -> None:
        after = device.trailing_start == TrailingStart.AT_OPEN.value
        device.trailing_start = (
            TrailingStart.AFTER_BREAKEVEN.value if after else TrailingStart.AT_OPEN.value
        )

    return await service.update(owner_id, device_pk, change)


def shares_percent(shares: Sequence[Decimal]) -> list[Decimal]:
    """Stored fractions back as the percentages the owner typed: 0.5 → 50."""
    return [(share * 100).normalize() for share in shares]
