"""Subscriptions and Stars payments. Queries only; never commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Payment, Subscription
from db.repositories.common import insert_ignoring_conflict


class CheckoutRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def subscription(self, user_id: int, *, lock: bool = False) -> Subscription | None:
        query = select(Subscription).where(Subscription.user_id == user_id)
        if lock:
            query = query.with_for_update().execution_options(populate_existing=True)
        return (await self.session.scalars(query)).first()

    async def subscription_expiry(self, user_id: int) -> datetime | None:
        return await self.session.scalar(
            select(Subscription.expires_at).where(Subscription.user_id == user_id)
        )

    async def subscribed_among(self, user_ids: Sequence[int], now: datetime) -> set[int]:
        """Which of ``user_ids`` have a subscription running past ``now`` (batched look-up)."""
        found: set[int] = set()
        for start in range(0, len(user_ids), 500):
            part = user_ids[start : start + 500]
            query = select(Subscription.user_id).where(
                Subscription.user_id.in_(part), Subscription.expires_at > now
            )
            found.update(int(user_id) for user_id in (await self.session.scalars(query)).all())
        return found

    async def ensure_subscription_row(self, user_id: int, plan_code: str, now: datetime) -> None:
        """A row to lock, expired from the start, so extensions can serialize on it."""
        await insert_ignoring_conflict(
            self.session,
            Subscription,
            {"user_id": user_id, "plan_code": plan_code, "expires_at": now, "updated_at": now},
        )

    async def add_payment(self, values: dict[str, object]) -> bool:
        """False when this charge id was recorded before."""
        return await insert_ignoring_conflict(self.session, Payment, values)

    async def payment(self, charge_id: str) -> Payment | None:
        return (
            await self.session.scalars(select(Payment).where(Payment.charge_id == charge_id))
        ).first()

    async def mark_refunded(self, payment_id: int, by: int, now: datetime) -> bool:
        result = await self.session.execute(
            update(Payment)
            .where(Payment.id == payment_id, Payment.refunded_at.is_(None))
            .values(refunded_at=now, refunded_by=by)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    async def recent_payments(self, user_id: int, limit: int) -> Sequence[Payment]:
        return (
            await self.session.scalars(
                select(Payment)
                .where(Payment.user_id == user_id)
                .order_by(Payment.paid_at.desc(), Payment.id.desc())
                .limit(limit)
            )
        ).all()
