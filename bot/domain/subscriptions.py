"""Subscriptions: live while ``expires_at`` is in the future.

``has_active_subscription`` is what ``signals.require_subscription`` means: with it on,
the signal loop delivers signals only to users for whom it returns True at delivery time.
Admins are not exempted here; the caller decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from db.repositories.checkout import CheckoutRepository


@dataclass(frozen=True, slots=True)
class SubscriptionStatus:
    plan_code: str | None
    expires_at: datetime | None
    active: bool


async def has_active_subscription(session: AsyncSession, user_id: int, now: datetime) -> bool:
    """True when the user's paid access runs past ``now`` (one indexed primary-key read)."""
    expires_at = await CheckoutRepository(session).subscription_expiry(user_id)
    return expires_at is not None and expires_at > now


async def active_subscribers(
    session: AsyncSession, user_ids: Sequence[int], now: datetime
) -> set[int]:
    """``has_active_subscription`` for many users at once (a signal's recipients)."""
    return await CheckoutRepository(session).subscribed_among(user_ids, now)


async def subscription_status(
    session: AsyncSession, user_id: int, now: datetime
) -> SubscriptionStatus:
    subscription = await CheckoutRepository(session).subscription(user_id)
    if subscription is None:
        return SubscriptionStatus(plan_code=None, expires_at=None, active=False)
    return SubscriptionStatus(
        plan_code=subscription.plan_code,
        expires_at=subscription.expires_at,
        active=subscription.expires_at > now,
    )
