"""Commissions: fills credited once, rounding, the hold period, money formatting."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.domain.commissions import CommissionState, affiliate_stats
from bot.domain.errors import InvalidInputError
from bot.domain.money import (
    Money,
    fill_commission_minor,
    format_bps,
    payment_commission_minor,
)
from db.models import Commission, Referral
from tests.affiliates_support import account, credit_fill, refer, rows
from tests.conftest import Chat, FakeClock

REFERRER = 7007
TRADER = 8008


@pytest.fixture
def settings_overrides() -> dict[str, dict[str, object]]:
    return {"affiliates": {"hold_days": 14}}


async def test_fill_commission_credited_once_per_source(
    chat: Chat,
    settings: Settings,
    clock: FakeClock,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await refer(chat, sessionmaker, REFERRER, TRADER, clock.now)
    first = await credit_fill(sessionmaker, settings, TRADER, "dev1:r1", "0.25", clock.now)
    assert first is not None
    assert (first.affiliate_id, first.amount_minor, first.tier) == (REFERRER, 25, "Bronze")
    assert first.available_at == clock.now + timedelta(days=14)
    assert await credit_fill(sessionmaker, settings, TRADER, "dev1:r1", "0.25", clock.now) is None
    # Rounded down; a fill worth less than a cent credits nothing but still counts as activity.
    third = await credit_fill(sessionmaker, settings, TRADER, "dev1:r2", "1.019", clock.now)
    assert third is not None and third.amount_minor == 101
    clock.advance(days=1)
    assert await credit_fill(sessionmaker, settings, TRADER, "dev1:r3", "0.001", clock.now) is None
    [referral] = await rows(sessionmaker, Referral)
    assert referral.last_fill_at == clock.now
    commissions = await rows(sessionmaker, Commission)
    assert sorted((c.source_id, c.amount_minor, c.quantity) for c in commissions) == [
        ("dev1:r1", 25, Decimal("0.25")), ("dev1:r2", 101, Decimal("1.019")),
    ]  # fmt: skip


async def test_fill_of_user_without_referrer_or_nothing(
    chat: Chat,
    settings: Settings,
    clock: FakeClock,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await chat.send(TRADER, "/start")
    assert await credit_fill(sessionmaker, settings, TRADER, "x:1", "5", clock.now) is None
    await refer(chat, sessionmaker, REFERRER, 9009, clock.now)
    assert await credit_fill(sessionmaker, settings, 9009, "x:2", "0", clock.now) is None
    assert await credit_fill(sessionmaker, settings, 9009, "x:3", "-1", clock.now) is None
    assert await rows(sessionmaker, Commission) == []


async def test_hold_period_with_injectable_clock(
    chat: Chat,
    settings: Settings,
    clock: FakeClock,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await refer(chat, sessionmaker, REFERRER, TRADER, clock.now)
    start = clock.now
    await credit_fill(sessionmaker, settings, TRADER, "f1", "10", start)  # 10.00 USD
    clock.advance(days=7)
    await credit_fill(sessionmaker, settings, TRADER, "f2", "5", clock.now)  # 5.00 USD

    async def stats_at() -> tuple[int, int, int]:
        async with sessionmaker.begin() as session:
            stats = await affiliate_stats(session, settings, REFERRER, clock.now)
        return (
            stats.amount(CommissionState.PENDING),
            stats.amount(CommissionState.AVAILABLE),
            stats.balance_minor,
        )

    clock.now = start + timedelta(days=14) - timedelta(seconds=1)
    assert await stats_at() == (1500, 0, 0)
    clock.now = start + timedelta(days=14)
    assert await stats_at() == (500, 1000, 1000)
    assert await stats_at() == (500, 1000, 1000)  # settling twice changes nothing
    [text] = await chat.send(REFERRER, "/stats")
    assert "Pending (on hold 14 days): 5.00 USD (1)" in text
    assert "Available: 10.00 USD (1)" in text
    assert "Balance available for /payout: 10.00 USD" in text
    clock.advance(days=7)
    assert await stats_at() == (0, 1500, 1500)
    money = await account(sessionmaker, REFERRER)
    assert money.balance_minor == 1500
    states = {c.source_id: (c.state, c.settled_at) for c in await rows(sessionmaker, Commission)}
    assert states == {
        "f1": ("available", start + timedelta(days=14)),
        "f2": ("available", clock.now),
    }


def test_commission_arithmetic_is_integer_and_rounds_down() -> None:
    # 250 Stars at 13.00 USD per 1000 Stars = 325 cents; 10 % = 32.5 -> 32.
    assert payment_commission_minor(250, 1300, 1000) == 32
    assert payment_commission_minor(1000, 1300, 1500) == 195
    assert payment_commission_minor(1, 1, 1) == 0
    assert fill_commission_minor(Decimal("0.01"), 100) == 1
    assert fill_commission_minor(Decimal("0.019"), 100) == 1
    assert fill_commission_minor(Decimal("2.5"), 150) == 375
    assert format_bps(1000) == "10%" and format_bps(1250) == "12.5%" and format_bps(5) == "0.05%"


def test_money_format_and_parse() -> None:
    usd = Money("USD", 2)
    assert usd.format(123456) == "1,234.56 USD"
    assert usd.format(-5) == "-0.05 USD"
    assert usd.format(0) == "0.00 USD"
    assert Money("JPY", 0).format(1500) == "1,500 JPY"
    for text, expected in [("25", 2500), ("25.5", 2550), ("25,50", 2550), ("1,250.00 usd", 125000),
                           ("$ 7.01", 701), ("0.01", 1)]:  # fmt: skip
        assert usd.parse(text) == expected, text
    for bad in ["", "abc", "-5", "0", "1.234", "NaN", "Infinity", "1e400"]:
        with pytest.raises(InvalidInputError):
            usd.parse(bad)
