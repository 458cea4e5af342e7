"""Commissions: credited once per source, held, then available, paid, or reversed.

States: ``pending`` for ``affiliates.hold_days`` after creation (a refund in that time
simply reverses it), then ``available`` (counted in the balance), then ``paid`` once payouts
marked paid cover it (oldest first); or ``reversed`` by a refund of the payment behind it
(an available or paid one is taken back from the balance, which may go negative and is
then netted against future earnings).

The move pending -> available is computed from ``available_at`` against the injected clock
by ``settle``, which every path that reads or uses the balance calls first, inside its own
transaction. No periodic job is needed: nothing has to run for the numbers to be right,
every instance computes the same thing, and tests move time with the FakeClock.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import AffiliatesSettings, Settings
from bot.domain.money import fill_commission_minor, payment_commission_minor
from bot.domain.referrals import TierStatus, tier_status
from db.models import Affiliate
from db.repositories.affiliates import AffiliateRepository

logger = logging.getLogger(__name__)

CHART_DAYS = 90


class CommissionKind(StrEnum):
    PAYMENT = "payment"
    FILL = "fill"


class CommissionState(StrEnum):
    PENDING = "pending"
    AVAILABLE = "available"
    PAID = "paid"
    REVERSED = "reversed"


@dataclass(frozen=True, slots=True)
class CommissionDTO:
    affiliate_id: int
    referred_user_id: int
    kind: CommissionKind
    source_id: str
    amount_minor: int
    tier: str
    available_at: datetime


@dataclass(frozen=True, slots=True)
class ReversedCommission:
    affiliate_id: int
    amount_minor: int
    previous_state: CommissionState
    balance_minor: int


@dataclass(frozen=True, slots=True)
class AffiliateStats:
    tier: TierStatus
    by_state: dict[CommissionState, tuple[int, int]]
    balance_minor: int
    reserved_minor: int
    paid_out_minor: int

    def count(self, state: CommissionState) -> int:
        return self.by_state.get(state, (0, 0))[0]

    def amount(self, state: CommissionState) -> int:
        return self.by_state.get(state, (0, 0))[1]


@dataclass(frozen=True, slots=True)
class DailyEarnings:
    days: list[date]
    pending_minor: list[int] = field(default_factory=list)
    confirmed_minor: list[int] = field(default_factory=list)

    @property
    def total_minor(self) -> int:
        return sum(self.pending_minor) + sum(self.confirmed_minor)


async def _credit(
    session: AsyncSession,
    config: AffiliatesSettings,
    *,
    kind: CommissionKind,
    referred_user_id: int,
    source_id: str,
    quantity: Decimal,
    at: datetime,
) -> CommissionDTO | None:
    repo = AffiliateRepository(session)
    affiliate_id = await repo.referrer_of(referred_user_id)
    if affiliate_id is None:
        return None
    if kind is CommissionKind.FILL:
        await repo.touch_fill(referred_user_id, at)
    # The tier in force now, the event just recorded included (a referred user's first
    # payment or fill makes them active).
    status = await tier_status(session, config, affiliate_id, at)
    if kind is CommissionKind.PAYMENT:
        rate = status.tier.payment_share_bps
        amount = payment_commission_minor(int(quantity), config.minor_units_per_1000_stars, rate)
    else:
        rate = status.tier.per_lot_minor
        amount = fill_commission_minor(quantity, rate)
    if amount <= 0:
        return None
    available_at = at + timedelta(days=config.hold_days)
    added = await repo.add_commission(
        {
            "affiliate_id": affiliate_id,
            "referred_user_id": referred_user_id,
            "kind": kind.value,
            "source_id": source_id,
            "quantity": quantity,
            "rate": rate,
            "tier": status.tier.name,
            "amount_minor": amount,
            "state": CommissionState.PENDING.value,
            "created_at": at,
            "available_at": available_at,
        }
    )
    if not added:
        return None
    return CommissionDTO(
        affiliate_id=affiliate_id,
        referred_user_id=referred_user_id,
        kind=kind,
        source_id=source_id,
        amount_minor=amount,
        tier=status.tier.name,
        available_at=available_at,
    )


async def credit_payment_commission(
    session: AsyncSession,
    *,
    settings: Settings,
    referred_user_id: int,
    charge_id: str,
    stars: int,
    at: datetime,
) -> CommissionDTO | None:
    """The referrer's share of a Stars payment (None: no referrer, zero, or credited before)."""
    return await _credit(
        session,
        settings.affiliates,
        kind=CommissionKind.PAYMENT,
        referred_user_id=referred_user_id,
        source_id=charge_id,
        quantity=Decimal(stars),
        at=at,
    )


async def credit_fill_commission(
    session: AsyncSession,
    *,
    settings: Settings,
    referred_user_id: int,
    fill_source_id: str,
    lots: Decimal,
    at: datetime,
) -> CommissionDTO | None:
    """Credit the referrer of ``referred_user_id`` for a verified fill of ``lots``.

    For the signal loop: call it in the transaction that stores a verified fill.
    ``fill_source_id`` identifies the fill for good (e.g. ``"<device id>:<report id>"``);
    a second call with the same id credits nothing, so retries are safe. ``at`` is when the
    fill was stored (the commission's creation time; its hold runs from it). The fill also
    marks the referral active for ``affiliates.active_window_days``, even when the amount
    rounds down to zero. Returns the commission, or None when the user has no referrer,
    the amount is zero, or the fill was credited before. Never commits.
    """
    if lots <= 0:
        return None
    return await _credit(
        session,
        settings.affiliates,
        kind=CommissionKind.FILL,
        referred_user_id=referred_user_id,
        source_id=fill_source_id,
        quantity=lots,
        at=at,
    )


async def _allocate_paid(repo: AffiliateRepository, account: Affiliate, now: datetime) -> None:
    """Mark available commissions paid, oldest first, as far as paid-out money covers them."""
    uncovered = account.paid_minor - await repo.sum_in_state(account.user_id, "paid")
    if uncovered <= 0:
        return
    for commission in await repo.available_oldest_first(account.user_id):
        if commission.amount_minor > uncovered:
            break
        await repo.set_state(commission.id, "available", "paid", paid_at=now)
        uncovered -= commission.amount_minor


async def settle(session: AsyncSession, affiliate_id: int, now: datetime) -> Affiliate | None:
    """Lock the account and bring it up to date at ``now`` (matured commissions join the
    balance). Returns the fresh, locked account, or None when the user has none."""
    repo = AffiliateRepository(session)
    account = await repo.lock(affiliate_id)
    if account is None:
        return None
    matured = await repo.mature(affiliate_id, now)
    if matured:
        await repo.change(affiliate_id, balance_minor=matured)
        account = await repo.lock(affiliate_id)
        assert account is not None
        await _allocate_paid(repo, account, now)
    return account


async def after_payout_paid(session: AsyncSession, affiliate_id: int, now: datetime) -> None:
    """Called once a payout is paid (account already locked): update commission states."""
    repo = AffiliateRepository(session)
    account = await repo.lock(affiliate_id)
    if account is not None:
        await _allocate_paid(repo, account, now)


async def reverse_commission(
    session: AsyncSession, kind: CommissionKind, source_id: str, now: datetime
) -> ReversedCommission | None:
    """Reverse the commission earned from a source (a refunded payment)."""
    repo = AffiliateRepository(session)
    commission = await repo.commission(kind.value, source_id)
    if commission is None or commission.state == CommissionState.REVERSED:
        return None
    affiliate_id = commission.affiliate_id
    await settle(session, affiliate_id, now)
    for state in (CommissionState.PENDING, CommissionState.AVAILABLE, CommissionState.PAID):
        if await repo.set_state(commission.id, state.value, "reversed", reversed_at=now):
            previous = state
            break
    else:
        return None
    if previous is not CommissionState.PENDING:
        await repo.change(affiliate_id, balance_minor=-commission.amount_minor)
    account = await repo.lock(affiliate_id)
    assert account is not None
    logger.info(
        "commission %s (%s) of %s reversed from %s",
        commission.id,
        kind.value,
        affiliate_id,
        previous.value,
    )
    return ReversedCommission(
        affiliate_id=affiliate_id,
        amount_minor=commission.amount_minor,
        previous_state=previous,
        balance_minor=account.balance_minor,
    )


async def affiliate_stats(
    session: AsyncSession, settings: Settings, user_id: int, now: datetime
) -> AffiliateStats:
    account = await settle(session, user_id, now)
    status = await tier_status(session, settings.affiliates, user_id, now)
    totals = await AffiliateRepository(session).totals_by_state(user_id)
    return AffiliateStats(
        tier=status,
        by_state={CommissionState(state): value for state, value in totals.items()},
        balance_minor=account.balance_minor if account else 0,
        reserved_minor=account.reserved_minor if account else 0,
        paid_out_minor=account.paid_minor if account else 0,
    )


async def daily_earnings(
    session: AsyncSession, user_id: int, now: datetime, days: int = CHART_DAYS
) -> DailyEarnings:
    """Earnings per UTC day over the last ``days`` days (today included), not reversed,
    split into still pending and confirmed (available or paid)."""
    await settle(session, user_id, now)
    first_day = now.date() - timedelta(days=days - 1)
    since = datetime.combine(first_day, datetime.min.time(), tzinfo=now.tzinfo)
    rows = await AffiliateRepository(session).earnings_since(user_id, since)
    pending: dict[date, int] = defaultdict(int)
    confirmed: dict[date, int] = defaultdict(int)
    for created_at, amount, state in rows:
        bucket = pending if state == CommissionState.PENDING else confirmed
        bucket[created_at.date()] += amount
    day_list = [first_day + timedelta(days=offset) for offset in range(days)]
    return DailyEarnings(
        days=day_list,
        pending_minor=[pending[day] for day in day_list],
        confirmed_minor=[confirmed[day] for day in day_list],
    )
