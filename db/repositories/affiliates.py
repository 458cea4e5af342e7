"""Affiliates: tokens, balances, referrals and commissions. Queries only; never commits.

Lock order on PostgreSQL: every path that changes an affiliate's money first locks the
affiliate row (``lock``), then touches commissions or payouts, so two such paths never
deadlock and never interleave their arithmetic.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Affiliate, Commission, Referral, Subscription, User
from db.repositories.common import insert_ignoring_conflict


class AffiliateRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # ------------------------------------------------------------------ accounts

    async def get(self, user_id: int) -> Affiliate | None:
        return await self.session.get(Affiliate, user_id)

    async def get_by_token(self, token: str) -> Affiliate | None:
        return (
            await self.session.scalars(select(Affiliate).where(Affiliate.token == token))
        ).first()

    async def create(self, user_id: int, token: str, now: datetime) -> bool:
        """Insert the account; False when it exists already (or the token is taken)."""
        return await insert_ignoring_conflict(
            self.session,
            Affiliate,
            {
                "user_id": user_id,
                "token": token,
                "created_at": now,
                "balance_minor": 0,
                "reserved_minor": 0,
                "paid_minor": 0,
            },
        )

    async def lock(self, user_id: int) -> Affiliate | None:
        """The account, locked for this transaction (SELECT ... FOR UPDATE; SQLite has one
        writer at a time anyway), and fresh from the database."""
        query = (
            select(Affiliate)
            .where(Affiliate.user_id == user_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return (await self.session.scalars(query)).first()

    async def change(self, user_id: int, **deltas: int) -> None:
        """Atomic increments of balance_minor / reserved_minor / paid_minor."""
        values: dict[str, Any] = {
            name: getattr(Affiliate, name) + delta for name, delta in deltas.items() if delta
        }
        if values:
            await self.session.execute(
                update(Affiliate)
                .where(Affiliate.user_id == user_id)
                .values(**values)
                .execution_options(synchronize_session=False)
            )

    async def reserve(self, user_id: int, amount_minor: int) -> bool:
        """Move ``amount_minor`` from the balance into reserved, only if the balance covers
        it. A conditional UPDATE: on PostgreSQL a concurrent one waits for the row lock and
        re-checks the condition against the committed balance, so two requests can never
        both pass on the same money."""
        result = await self.session.execute(
            update(Affiliate)
            .where(Affiliate.user_id == user_id, Affiliate.balance_minor >= amount_minor)
            .values(
                balance_minor=Affiliate.balance_minor - amount_minor,
                reserved_minor=Affiliate.reserved_minor + amount_minor,
            )
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    # ------------------------------------------------------------------ referrals

    async def add_referral(self, referred_id: int, referrer_id: int, now: datetime) -> bool:
        """First touch wins: False when the user already has a referrer."""
        added = await insert_ignoring_conflict(
            self.session,
            Referral,
            {"referred_id": referred_id, "referrer_id": referrer_id, "created_at": now},
        )
        if added:
            await self.session.execute(
                update(User)
                .where(User.id == referred_id, User.referred_by_id.is_(None))
                .values(referred_by_id=referrer_id)
                .execution_options(synchronize_session=False)
            )
        return added

    async def referrer_of(self, referred_id: int) -> int | None:
        return await self.session.scalar(
            select(Referral.referrer_id).where(Referral.referred_id == referred_id)
        )

    async def touch_fill(self, referred_id: int, at: datetime) -> None:
        await self.session.execute(
            update(Referral)
            .where(
                Referral.referred_id == referred_id,
                or_(Referral.last_fill_at.is_(None), Referral.last_fill_at < at),
            )
            .values(last_fill_at=at)
            .execution_options(synchronize_session=False)
        )

    async def referral_counts(
        self, referrer_id: int, now: datetime, fill_since: datetime
    ) -> tuple[int, int]:
        """(total, active): active = live subscription, or a fill since ``fill_since``."""
        live = exists().where(
            Subscription.user_id == Referral.referred_id, Subscription.expires_at > now
        )
        active = or_(Referral.last_fill_at >= fill_since, live)
        row = (
            await self.session.execute(
                select(func.count(), func.count().filter(active)).where(
                    Referral.referrer_id == referrer_id
                )
            )
        ).one()
        return int(row[0]), int(row[1])

    # ------------------------------------------------------------------ commissions

    async def add_commission(self, values: dict[str, Any]) -> bool:
        """False when this (kind, source_id) was credited before."""
        return await insert_ignoring_conflict(self.session, Commission, values)

    async def commission(self, kind: str, source_id: str) -> Commission | None:
        return (
            await self.session.scalars(
                select(Commission).where(Commission.kind == kind, Commission.source_id == source_id)
            )
        ).first()

    async def mature(self, affiliate_id: int, now: datetime) -> int:
        """pending -> available for commissions past their hold; returns the sum moved."""
        result = await self.session.execute(
            update(Commission)
            .where(
                Commission.affiliate_id == affiliate_id,
                Commission.state == "pending",
                Commission.available_at <= now,
            )
            .values(state="available", settled_at=now)
            .returning(Commission.amount_minor)
            .execution_options(synchronize_session=False)
        )
        return sum(int(amount) for amount in result.scalars())

    async def set_state(
        self, commission_id: int, from_state: str, to_state: str, **values: Any
    ) -> bool:
        result = await self.session.execute(
            update(Commission)
            .where(Commission.id == commission_id, Commission.state == from_state)
            .values(state=to_state, **values)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    async def sum_in_state(self, affiliate_id: int, state: str) -> int:
        total = await self.session.scalar(
            select(func.coalesce(func.sum(Commission.amount_minor), 0)).where(
                Commission.affiliate_id == affiliate_id, Commission.state == state
            )
        )
        return int(total or 0)

    async def available_oldest_first(self, affiliate_id: int) -> Sequence[Commission]:
        return (
            await self.session.scalars(
                select(Commission)
                .where(Commission.affiliate_id == affiliate_id, Commission.state == "available")
                .order_by(Commission.available_at, Commission.id)
            )
        ).all()

    async def totals_by_state(self, affiliate_id: int) -> dict[str, tuple[int, int]]:
        """state -> (count, sum of amount_minor)."""
        rows = await self.session.execute(
            select(Commission.state, func.count(), func.sum(Commission.amount_minor))
            .where(Commission.affiliate_id == affiliate_id)
            .group_by(Commission.state)
        )
        return {state: (int(count), int(total or 0)) for state, count, total in rows}

    async def earnings_since(
        self, affiliate_id: int, since: datetime
    ) -> Sequence[tuple[datetime, int, str]]:
        """(created_at, amount_minor, state) of commissions not reversed, since ``since``."""
        rows = await self.session.execute(
            select(Commission.created_at, Commission.amount_minor, Commission.state).where(
                and_(
                    Commission.affiliate_id == affiliate_id,
                    Commission.created_at >= since,
                    Commission.state != "reversed",
                )
            )
        )
        return [(row[0], int(row[1]), str(row[2])) for row in rows]
