"""Money in integer minor units of the accounting currency: formatting, parsing, commissions.

No floats anywhere: Stars are whole, lots are ``Decimal``, every amount is an ``int`` of
minor units (cents for 2 digits). Commission amounts are rounded down, once, at the end, so
an affiliate is never credited a fraction of a minor unit that was not earned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal, InvalidOperation

from bot.config import AffiliatesSettings
from bot.domain.errors import ErrorCode, InvalidInputError

BPS_DENOMINATOR = 10_000
STARS_RATE_DENOMINATOR = 1000
# Far above any real balance, far below the 64-bit columns' limit.
MAX_AMOUNT_MINOR = 10**15


@dataclass(frozen=True, slots=True)
class Money:
    """The accounting currency: its code and the digits of its minor unit."""

    currency: str
    digits: int

    @classmethod
    def from_settings(cls, settings: AffiliatesSettings) -> Money:
        return cls(currency=settings.currency, digits=settings.minor_digits)

    def format(self, minor: int) -> str:
        """``1234`` -> ``"12.34 USD"``; negative amounts keep their sign."""
        sign = "-" if minor < 0 else ""
        units, fraction = divmod(abs(minor), 10**self.digits)
        if self.digits:
            return f"{sign}{units:,}.{fraction:0{self.digits}d} {self.currency}"
        return f"{sign}{units:,} {self.currency}"

    def parse(self, text: str) -> int:
        """A typed amount ("25", "25.5", "1,250.00 USD", "25,50") -> minor units (> 0)."""
        cleaned = re.sub(r"[\s_]", "", text)
        cleaned = re.sub(re.escape(self.currency) + "$", "", cleaned, flags=re.IGNORECASE)
        cleaned = cleaned.lstrip("$€")
        if "," in cleaned and "." in cleaned:
            cleaned = cleaned.replace(",", "")
        else:
            cleaned = cleaned.replace(",", ".")
        example = self.format(12 * 10**self.digits + (5 if self.digits else 0))
        try:
            value = Decimal(cleaned)
        except InvalidOperation:
            raise InvalidInputError(
                ErrorCode.AMOUNT_NOT_A_NUMBER, example=example.split()[0]
            ) from None
        if not value.is_finite() or value <= 0:
            raise InvalidInputError(ErrorCode.AMOUNT_NOT_POSITIVE)
        minor = value.scaleb(self.digits)
        if minor != minor.to_integral_value():
            raise InvalidInputError(
                ErrorCode.AMOUNT_TOO_PRECISE, currency=self.currency, digits=self.digits
            )
        if minor >= MAX_AMOUNT_MINOR:
            raise InvalidInputError(ErrorCode.AMOUNT_TOO_LARGE)
        return int(minor)


def payment_commission_minor(stars: int, minor_units_per_1000_stars: int, share_bps: int) -> int:
    """The affiliate's share of a Stars payment, in minor units, rounded down once.

    value = stars * minor_units_per_1000_stars / 1000; share = value * share_bps / 10000.
    """
    numerator = stars * minor_units_per_1000_stars * share_bps
    return numerator // (STARS_RATE_DENOMINATOR * BPS_DENOMINATOR)


def fill_commission_minor(lots: Decimal, per_lot_minor: int) -> int:
    """Commission for a fill of ``lots`` at ``per_lot_minor`` per lot, rounded down."""
    return int((lots * per_lot_minor).to_integral_value(rounding=ROUND_DOWN))


def format_bps(bps: int) -> str:
    """Basis points as a percentage: 1500 -> "15%", 1250 -> "12.5%"."""
    percent = Decimal(bps) / 100
    text = format(percent.normalize(), "f")
    return f"{text}%"
