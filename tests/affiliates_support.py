"""Helpers for the affiliates, checkout and payout tests."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.domain.checkout import SoldPlan
from bot.domain.commissions import CommissionDTO, credit_fill_commission
from bot.domain.payouts import approve_payout, mark_payout_paid, request_payout
from bot.domain.referrals import ensure_account
from db.models import Affiliate, Commission, Payment, Payout, Referral, Subscription
from tests.conftest import ADMIN_ID, Chat
from tests.fake_bot_api import successful_payment_update

# The USDT contract's address on TRON: a real, valid Base58Check address.
TRON_ADDRESS = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"


async def token_of(
    sessionmaker: async_sessionmaker[AsyncSession], user_id: int, now: datetime
) -> str:
    async with sessionmaker.begin() as session:
        return (await ensure_account(session, user_id, now)).token


async def refer(
    chat: Chat,
    sessionmaker: async_sessionmaker[AsyncSession],
    referrer_id: int,
    referred_id: int,
    now: datetime,
    first_name: str = "Friend",
) -> None:
    """The referrer exists and the referred user starts the bot through their link."""
    await chat.send(referrer_id, "/start")
    token = await token_of(sessionmaker, referrer_id, now)
    await chat.send(referred_id, f"/start ref_{token}", first_name=first_name)


async def pay(
    chat: Chat, settings: Settings, user_id: int, charge_id: str, plan_code: str = "month"
) -> list[str]:
    plan = settings.checkout.plan(plan_code)
    assert plan is not None
    before = len(chat.api.calls)
    await chat.feed(
        successful_payment_update(
            user_id,
            payload=SoldPlan.of(plan).payload,
            total_amount=plan.stars,
            charge_id=charge_id,
        )
    )
    return [
        str(c.params.get("text"))
        for c in chat.api.calls[before:]
        if c.method == "sendMessage" and c.chat_id == user_id
    ]


async def credit_fill(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    referred_id: int,
    source: str,
    lots: str,
    at: datetime,
) -> CommissionDTO | None:
    async with sessionmaker.begin() as session:
        return await credit_fill_commission(
            session,
            settings=settings,
            referred_user_id=referred_id,
            fill_source_id=source,
            lots=Decimal(lots),
            at=at,
        )


async def rows(
    sessionmaker: async_sessionmaker[AsyncSession], model: Any, *where: Any
) -> list[Any]:
    async with sessionmaker() as session:
        return list((await session.scalars(select(model).where(*where))).all())


async def account(sessionmaker: async_sessionmaker[AsyncSession], user_id: int) -> Affiliate:
    async with sessionmaker() as session:
        found = await session.get(Affiliate, user_id)
        assert found is not None
        return found


async def subscription(
    sessionmaker: async_sessionmaker[AsyncSession], user_id: int
) -> Subscription | None:
    async with sessionmaker() as session:
        return await session.get(Subscription, user_id)


async def pay_out(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    user_id: int,
    amount_minor: int,
    now: datetime,
) -> int:
    """Request, approve and mark paid a payout (whatever the configured minimum)."""
    any_minimum = settings.model_copy(
        update={"affiliates": settings.affiliates.model_copy(update={"payout_minimum_minor": 1})}
    )
    async with sessionmaker.begin() as session:
        payout = await request_payout(
            session,
            any_minimum,
            user_id=user_id,
            request_key=f"test-{now.timestamp()}",
            method="usdt_trc20",
            destination=TRON_ADDRESS,
            amount_minor=amount_minor,
            now=now,
        )
        await approve_payout(session, payout.id, admin_id=ADMIN_ID, now=now)
        await mark_payout_paid(session, payout.id, admin_id=ADMIN_ID, tx_reference=None, now=now)
    return payout.id


__all__ = [
    "Commission",
    "Payment",
    "Payout",
    "Referral",
    "account",
    "credit_fill",
    "pay",
    "refer",
    "rows",
    "subscription",
    "token_of",
]


async def assert_books_balance(
    sessionmaker: async_sessionmaker[AsyncSession], user_id: int
) -> None:
    """The invariants of docs/operations.md hold for this affiliate."""
    money = await account(sessionmaker, user_id)
    commissions = await rows(sessionmaker, Commission, Commission.affiliate_id == user_id)
    payouts = await rows(sessionmaker, Payout, Payout.user_id == user_id)
    earned = sum(c.amount_minor for c in commissions if c.state in ("available", "paid"))
    assert money.balance_minor + money.reserved_minor + money.paid_minor == earned
    assert money.reserved_minor == sum(
        p.amount_minor for p in payouts if p.state in ("requested", "approved")
    )
    assert money.paid_minor == sum(p.amount_minor for p in payouts if p.state == "paid")
