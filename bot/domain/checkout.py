"""Checkout with Telegram Stars: invoices, the pre-checkout check, crediting, refunds.

The invoice payload carries the plan as sold (``sub:<code>:<stars>:<days>``), so the
pre-checkout check can refuse an invoice whose plan was removed or repriced since, and a
successful payment is credited with exactly what the user agreed to.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import PlanSettings, Settings
from bot.domain.commissions import (
    CommissionDTO,
    CommissionKind,
    ReversedCommission,
    credit_payment_commission,
    reverse_commission,
)
from bot.domain.errors import ConflictError, ErrorCode, NotFoundError
from db.models import Payment
from db.repositories.checkout import CheckoutRepository

logger = logging.getLogger(__name__)

STARS_CURRENCY = "XTR"
PAYLOAD_PREFIX = "sub"


@dataclass(frozen=True, slots=True)
class SoldPlan:
    code: str
    stars: int
    days: int

    @property
    def payload(self) -> str:
        return f"{PAYLOAD_PREFIX}:{self.code}:{self.stars}:{self.days}"

    @classmethod
    def of(cls, plan: PlanSettings) -> SoldPlan:
        return cls(plan.code, plan.stars, plan.days)

    @classmethod
    def parse(cls, payload: str) -> SoldPlan | None:
        parts = payload.split(":")
        if len(parts) != 4 or parts[0] != PAYLOAD_PREFIX:
            return None
        _, code, stars, days = parts
        if not (stars.isdigit() and days.isdigit()):
            return None
        return cls(code, int(stars), int(days))


@dataclass(frozen=True, slots=True)
class PaymentResult:
    created: bool
    plan_code: str
    stars: int
    days: int
    expires_at: datetime
    commission: CommissionDTO | None = None


@dataclass(frozen=True, slots=True)
class PaymentDTO:
    charge_id: str
    user_id: int
    plan_code: str
    stars: int
    days: int
    paid_at: datetime
    refunded_at: datetime | None


@dataclass(frozen=True, slots=True)
class RefundResult:
    payment: PaymentDTO
    expires_at: datetime | None
    reversed: ReversedCommission | None


def pre_checkout_error(
    settings: Settings, payload: str, currency: str, total: int
) -> ErrorCode | None:
    """Why this checkout must be refused now, or None to accept it."""
    sold = SoldPlan.parse(payload)
    if currency != STARS_CURRENCY or sold is None:
        return ErrorCode.CHECKOUT_UNKNOWN_INVOICE
    plan = settings.checkout.plan(sold.code)
    if plan is None:
        return ErrorCode.CHECKOUT_PLAN_GONE
    if SoldPlan.of(plan) != sold or total != plan.stars:
        return ErrorCode.CHECKOUT_PRICE_CHANGED
    return None


async def record_payment(
    session: AsyncSession,
    settings: Settings,
    *,
    user_id: int,
    charge_id: str,
    payload: str,
    total_amount: int,
    now: datetime,
) -> PaymentResult:
    """Credit a successful payment once per ``charge_id``: the subscription runs ``days``
    longer from the later of now and its current expiry. A repeated update changes nothing.
    """
    repo = CheckoutRepository(session)
    sold = SoldPlan.parse(payload)
    if sold is None:
        # Telegram took the money for an invoice we cannot read: keep the payment on record
        # (refundable with /refund), add nothing.
        logger.error("payment %s of user %s has an unknown payload", charge_id, user_id)
        sold = SoldPlan("unknown", total_amount, 0)
    await repo.ensure_subscription_row(user_id, sold.code, now)
    subscription = await repo.subscription(user_id, lock=True)
    assert subscription is not None
    expires_at = max(now, subscription.expires_at) + timedelta(days=sold.days)
    created = await repo.add_payment(
        {
            "user_id": user_id,
            "charge_id": charge_id,
            "plan_code": sold.code,
            "stars": total_amount,
            "days": sold.days,
            "paid_at": now,
            "expires_at": expires_at,
        }
    )
    if not created:
        existing = await repo.payment(charge_id)
        assert existing is not None
        return PaymentResult(
            False, existing.plan_code, existing.stars, existing.days, subscription.expires_at
        )
    if sold.days:
        subscription.expires_at = expires_at
        subscription.plan_code = sold.code
        subscription.updated_at = now
        await session.flush()
    commission = await credit_payment_commission(
        session,
        settings=settings,
        referred_user_id=user_id,
        charge_id=charge_id,
        stars=total_amount,
        at=now,
    )
    logger.info(
        "payment %s: user %s +%s days (%s Stars)", charge_id, user_id, sold.days, total_amount
    )
    return PaymentResult(
        True, sold.code, total_amount, sold.days, subscription.expires_at, commission
    )


def _dto(payment: Payment) -> PaymentDTO:
    return PaymentDTO(
        charge_id=payment.charge_id,
        user_id=payment.user_id,
        plan_code=payment.plan_code,
        stars=payment.stars,
        days=payment.days,
        paid_at=payment.paid_at,
        refunded_at=payment.refunded_at,
    )


async def refundable_payment(session: AsyncSession, charge_id: str) -> PaymentDTO:
    payment = await CheckoutRepository(session).payment(charge_id)
    if payment is None:
        raise NotFoundError(ErrorCode.REFUND_UNKNOWN_CHARGE)
    if payment.refunded_at is not None:
        raise ConflictError(ErrorCode.REFUND_ALREADY)
    return _dto(payment)


async def apply_refund(
    session: AsyncSession, *, charge_id: str, admin_id: int, now: datetime
) -> RefundResult:
    """After Telegram refunded the Stars: mark the payment, take its days back from the
    subscription (it ends now at the latest), and reverse the commission it earned."""
    repo = CheckoutRepository(session)
    payment = await repo.payment(charge_id)
    if payment is None:
        raise NotFoundError(ErrorCode.REFUND_UNKNOWN_CHARGE)
    if not await repo.mark_refunded(payment.id, admin_id, now):
        raise ConflictError(ErrorCode.REFUND_ALREADY)
    subscription = await repo.subscription(payment.user_id, lock=True)
    expires_at = None
    if subscription is not None:
        if subscription.expires_at > now:
            shortened = subscription.expires_at - timedelta(days=payment.days)
            subscription.expires_at = max(shortened, now)
            subscription.updated_at = now
            await session.flush()
        expires_at = subscription.expires_at
    reversed_commission = await reverse_commission(session, CommissionKind.PAYMENT, charge_id, now)
    await session.refresh(payment)
    logger.info("payment %s refunded by admin %s", charge_id, admin_id)
    return RefundResult(payment=_dto(payment), expires_at=expires_at, reversed=reversed_commission)


async def recent_payments(session: AsyncSession, user_id: int, limit: int = 5) -> list[PaymentDTO]:
    return [_dto(p) for p in await CheckoutRepository(session).recent_payments(user_id, limit)]
