"""The one validator for signals, shared by the provider API and the admin chat.

Input is a mapping as JSON gives it (parse with ``parse_float=Decimal``, so no price ever
passes through a float) or as the chat syntax builds it (strings). Every problem is
collected per field, so the API can answer ``422`` with ``fields`` and the chat can list
them all at once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from bot.config import SignalsSettings
from bot.domain.errors import ErrorCode, InvalidInputError

Side = Literal["buy", "sell"]
OrderType = Literal["market", "limit", "stop"]

SYMBOL_RE = re.compile(r"^[A-Za-z0-9._#-]{1,32}$")
CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
SIDES: tuple[Side, ...] = ("buy", "sell")
ORDER_TYPES: tuple[OrderType, ...] = ("market", "limit", "stop")
MAX_COMMENT = 500
MAX_TAKE_PROFITS = 10
# Prices are stored as NUMERIC(20, 10); SQLite keeps NUMERIC as a float, which holds 15
# significant digits exactly. Within these bounds a price comes back exactly as sent.
MAX_PRICE_DECIMALS = 10
MAX_PRICE_DIGITS = 15
MAX_PRICE_INTEGER_DIGITS = 10
MAX_DECIMAL_MAGNITUDE = 30  # powers of ten; any number past them is refused unread
MAX_EXPIRY_DIGITS = 18
_WHOLE_SECONDS_RE = re.compile(f"[0-9]{{1,{MAX_EXPIRY_DIGITS}}}")

CREATE_FIELDS = frozenset(
    {
        "symbol",
        "side",
        "order_type",
        "entry",
        "stop_loss",
        "take_profit",
        "expires_in",
        "comment",
        "client_id",
        "price",
    }
)
MODIFY_FIELDS = frozenset({"stop_loss", "take_profit"})
CLOSE_FIELDS = frozenset({"fraction"})


class SignalValidationError(InvalidInputError):
    """Field problems: ``fields`` maps a field name to a sentence about it."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        self.fields = dict(fields)
        super().__init__(ErrorCode.SIGNAL_INVALID, fields=self.fields)


@dataclass(frozen=True, slots=True)
class SignalDraft:
    """A valid new signal, not stored yet."""

    symbol: str
    side: Side
    order_type: OrderType
    entry: Decimal | None
    stop_loss: Decimal | None
    take_profit: tuple[Decimal, ...]
    expires_in: int
    comment: str | None
    client_id: str | None = None
    # The market price when the provider made the signal (EA_PROTOCOL 5.6), if sent.
    reference_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class LevelChanges:
    """New stop loss and/or take profits; ``None`` in a ``set_*`` flag means unchanged."""

    stop_loss: Decimal | None
    take_profit: tuple[Decimal, ...]
    set_stop_loss: bool
    set_take_profit: bool


def format_decimal(value: Decimal) -> str:
    """A decimal string without exponent or trailing zeros: ``1.0800000000`` → ``1.08``."""
    return f"{value.normalize():f}"


def decimal_or_none(value: Decimal | None) -> str | None:
    """``format_decimal`` for a value that may be missing (JSON null)."""
    return None if value is None else format_decimal(value)


def wire_time(moment: datetime) -> str:
    """A time on the wire: ISO 8601 in UTC with a ``Z``, whole seconds.

    isoformat, not strftime: the C library's ``%Y`` writes the year 1 as ``1``.
    """
    return f"{moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec='seconds')}Z"


def parse_price(value: Any) -> Decimal:
    """A positive price from a decimal string, an int or a Decimal; ValueError says why."""
    number = _parse_decimal(value)
    if number <= 0:
        raise ValueError("must be a positive price")
    _sign, digits, exponent = number.normalize().as_tuple()
    assert isinstance(exponent, int)
    decimals = max(-exponent, 0)
    integer_digits = max(len(digits) + exponent, 0)
    if decimals > MAX_PRICE_DECIMALS:
        raise ValueError(f"has more than {MAX_PRICE_DECIMALS} decimal places")
    if integer_digits > MAX_PRICE_INTEGER_DIGITS or len(digits) > MAX_PRICE_DIGITS:
        raise ValueError(f"has more than {MAX_PRICE_DIGITS} significant digits")
    return number


def parse_fraction(value: Any) -> Decimal:
    """A fraction in (0, 1]; ValueError says why."""
    number = _parse_decimal(value)
    if not Decimal(0) < number <= Decimal(1):
        raise ValueError("must be above 0 and at most 1 (1 closes all)")
    exponent = number.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent > MAX_PRICE_DECIMALS:
        raise ValueError(f"has more than {MAX_PRICE_DECIMALS} decimal places")
    return number


def _parse_decimal(value: Any) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise ValueError('must be a decimal number, e.g. "1.0850"')
    if isinstance(value, float):
        # Only reachable from Python callers; JSON is parsed with parse_float=Decimal.
        value = repr(value)
    if isinstance(value, str):
        value = value.strip()
        if not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)", value):
            raise ValueError('must be a decimal number, e.g. "1.0850"')
    if not isinstance(value, int | str | Decimal):
        raise ValueError('must be a decimal number, e.g. "1.0850"')
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ValueError('must be a decimal number, e.g. "1.0850"') from None
    if not number.is_finite():
        raise ValueError("must be a finite number")
    # Before any arithmetic: 1e999999999 overflows the decimal context and 1e-999999999
    # underflows to zero there. No price or fraction comes near these bounds.
    if number and not -MAX_DECIMAL_MAGNITUDE <= number.adjusted() <= MAX_DECIMAL_MAGNITUDE:
        raise ValueError("is out of range")
    return number


def _choice(value: Any, choices: Sequence[str]) -> str:
    """The choice in lower case, or "" when ``value`` is none of them."""
    if not isinstance(value, str) or value.strip().lower() not in choices:
        return ""
    return value.strip().lower()


class _Collector:
    def __init__(self) -> None:
        self.fields: dict[str, str] = {}

    def add(self, name: str, problem: str) -> None:
        self.fields.setdefault(name, problem)

    def raise_if_any(self) -> None:
        if self.fields:
            raise SignalValidationError(self.fields)


def _unknown_fields(data: Mapping[str, Any], allowed: frozenset[str], errors: _Collector) -> None:
    for name in data:
        if name not in allowed:
            errors.add(str(name), "unknown field")


def _price_field(
    data: Mapping[str, Any], name: str, errors: _Collector, *, required: bool = False
) -> Decimal | None:
    value = data.get(name)
    if value is None:
        if required:
            errors.add(name, "is required")
        return None
    try:
        return parse_price(value)
    except ValueError as exc:
        errors.add(name, str(exc))
        return None


def _take_profits(data: Mapping[str, Any], errors: _Collector) -> tuple[Decimal, ...]:
    value = data.get("take_profit")
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    if len(items) > MAX_TAKE_PROFITS:
        errors.add("take_profit", f"at most {MAX_TAKE_PROFITS} take profits")
        return ()
    prices: list[Decimal] = []
    for index, item in enumerate(items):
        try:
            prices.append(parse_price(item))
        except ValueError as exc:
            where = f" (item {index + 1})" if isinstance(value, list) else ""
            errors.add("take_profit", f"{exc}{where}")
            return ()
    return tuple(prices)


def _check_levels(
    side: str,
    entry: Decimal | None,
    stop_loss: Decimal | None,
    take_profit: Sequence[Decimal],
    errors: _Collector,
) -> None:
    """For a buy the stop loss lies below and take profits above the entry (and each other);
    mirrored for a sell."""
    buy = side == "buy"
    below, above = ("below", "above") if buy else ("above", "below")
    if entry is not None:
        if stop_loss is not None and (stop_loss >= entry if buy else stop_loss <= entry):
            errors.add(
                "stop_loss", f"must be {below} the entry {format_decimal(entry)} for a {side}"
            )
        for price in take_profit:
            if price <= entry if buy else price >= entry:
                errors.add(
                    "take_profit",
                    f"{format_decimal(price)} must be {above} the entry "
                    f"{format_decimal(entry)} for a {side}",
                )
                break
    if stop_loss is not None and "stop_loss" not in errors.fields:
        for price in take_profit:
            if price <= stop_loss if buy else price >= stop_loss:
                errors.add(
                    "take_profit",
                    f"{format_decimal(price)} must be {above} the stop loss "
                    f"{format_decimal(stop_loss)} for a {side}",
                )
                break


def validate_new_signal(data: Mapping[str, Any], rules: SignalsSettings) -> SignalDraft:
    """A draft from API or chat input; SignalValidationError lists every field problem."""
    errors = _Collector()
    _unknown_fields(data, CREATE_FIELDS, errors)

    symbol = data.get("symbol")
    if symbol is None:
        errors.add("symbol", "is required")
    elif not isinstance(symbol, str) or not SYMBOL_RE.fullmatch(symbol.strip()):
        errors.add("symbol", "must be 1-32 characters of A-Z a-z 0-9 . _ # -")
    side = ""
    if data.get("side") is None:
        errors.add("side", "is required (buy or sell)")
    else:
        side = _choice(data.get("side"), SIDES)
        if not side:
            errors.add("side", "must be buy or sell")
    order_type = "market"
    if data.get("order_type") is not None:
        order_type = _choice(data.get("order_type"), ORDER_TYPES)
        if not order_type:
            errors.add("order_type", "must be market, limit or stop")

    entry: Decimal | None = None
    if order_type in {"limit", "stop"}:
        entry = _price_field(data, "entry", errors, required=True)
        if data.get("entry") is None:
            errors.fields["entry"] = f"is required for a {order_type} order"
    elif order_type == "market" and data.get("entry") is not None:
        errors.add("entry", "a market order takes no entry; use order_type limit or stop")
    stop_loss = _price_field(data, "stop_loss", errors)
    reference_price = _price_field(data, "price", errors)
    take_profit = _take_profits(data, errors)
    if side and not ({"entry", "stop_loss", "take_profit"} & errors.fields.keys()):
        _check_levels(side, entry, stop_loss, take_profit, errors)

    expires_in = _expires_in(data.get("expires_in"), rules, errors)
    comment = _comment(data.get("comment"), errors)
    client_id = data.get("client_id")
    if client_id is not None and (
        not isinstance(client_id, str) or not CLIENT_ID_RE.fullmatch(client_id)
    ):
        errors.add("client_id", "must be 8-64 characters of A-Z a-z 0-9 _ -")

    errors.raise_if_any()
    assert isinstance(symbol, str)
    return SignalDraft(
        symbol=symbol.strip(),
        side=side,  # type: ignore[arg-type]
        order_type=order_type,  # type: ignore[arg-type]
        entry=entry,
        stop_loss=stop_loss,
        take_profit=take_profit,
        expires_in=expires_in,
        comment=comment,
        client_id=client_id,
        reference_price=reference_price,
    )


def _expires_in(value: Any, rules: SignalsSettings, errors: _Collector) -> int:
    if value is None:
        return rules.default_expiry_seconds
    seconds: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif (
        isinstance(value, Decimal)
        and value.is_finite()
        and value.adjusted() < MAX_EXPIRY_DIGITS
        and value == value.to_integral_value()
    ):
        seconds = int(value)
    elif isinstance(value, str) and _WHOLE_SECONDS_RE.fullmatch(value.strip()):
        # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
        seconds = int(value.strip())
    if seconds is None:
        errors.add("expires_in", "must be a whole number of seconds")
        return 0
    low, high = rules.min_expiry_seconds, rules.max_expiry_seconds
    if not low <= seconds <= high:
        errors.add("expires_in", f"must be between {low} and {high} seconds")
    return seconds


def _comment(value: Any, errors: _Collector) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        errors.add("comment", "must be text")
        return None
    value = value.strip()
    if len(value) > MAX_COMMENT:
        errors.add("comment", f"must be at most {MAX_COMMENT} characters")
    return value or None


def validate_level_changes(
    data: Mapping[str, Any],
    *,
    side: str,
    entry: Decimal | None,
    stop_loss: Decimal | None,
    take_profit: Sequence[Decimal],
) -> LevelChanges:
    """New SL/TP for an existing signal, checked together with the levels they keep.

    ``null`` removes the stop loss, ``[]`` removes the take profits; a field left out keeps
    its value.
    """
    errors = _Collector()
    _unknown_fields(data, MODIFY_FIELDS, errors)
    set_sl = "stop_loss" in data
    set_tp = "take_profit" in data
    if not set_sl and not set_tp and not errors.fields:
        errors.add("stop_loss", "give stop_loss and/or take_profit")
    new_sl = _price_field(data, "stop_loss", errors) if set_sl else stop_loss
    new_tp = _take_profits(data, errors) if set_tp else tuple(take_profit)
    if not errors.fields:
        _check_levels(side, entry, new_sl, new_tp, errors)
    errors.raise_if_any()
    return LevelChanges(
        stop_loss=new_sl, take_profit=new_tp, set_stop_loss=set_sl, set_take_profit=set_tp
    )


def validate_close(data: Mapping[str, Any]) -> Decimal:
    """The fraction of what remains to close (default 1: all of it)."""
    errors = _Collector()
    _unknown_fields(data, CLOSE_FIELDS, errors)
    fraction = Decimal(1)
    if data.get("fraction") is not None:
        try:
            fraction = parse_fraction(data["fraction"])
        except ValueError as exc:
            errors.add("fraction", str(exc))
    errors.raise_if_any()
    return fraction
