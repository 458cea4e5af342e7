"""Payout requests. Queries only; never commits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Payout, User
from db.repositories.common import insert_ignoring_conflict


class PayoutRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, values: dict[str, Any]) -> bool:
        """False when this (user, request_key) was filed before."""
        return await insert_ignoring_conflict(self.session, Payout, values)

    async def by_key(self, user_id: int, request_key: str) -> Payout | None:
        return (
            await self.session.scalars(
                select(Payout).where(Payout.user_id == user_id, Payout.request_key == request_key)
            )
        ).first()

    async def get(self, payout_id: int) -> Payout | None:
        return await self.session.get(Payout, payout_id, populate_existing=True)

    async def with_user(self, payout_id: int) -> tuple[Payout, User] | None:
        row = (
            await self.session.execute(
                select(Payout, User)
                .join(User, User.id == Payout.user_id)
                .where(Payout.id == payout_id)
                .execution_options(populate_existing=True)
            )
        ).first()
        return (row[0], row[1]) if row is not None else None

    async def transition(
        self, payout_id: int, from_states: tuple[str, ...], to_state: str, **values: Any
    ) -> bool:
        """Conditional state change: of two concurrent decisions exactly one wins."""
        result = await self.session.execute(
            update(Payout)
            .where(Payout.id == payout_id, Payout.state.in_(from_states))
            .values(state=to_state, **values)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    async def page_for_user(self, user_id: int, offset: int, limit: int) -> Sequence[Payout]:
        return (
            await self.session.scalars(
                select(Payout)
                .where(Payout.user_id == user_id)
                .order_by(Payout.requested_at.desc(), Payout.id.desc())
                .offset(offset)
                .limit(limit)
            )
        ).all()

    async def count_for_user(self, user_id: int) -> int:
        return int(
            await self.session.scalar(
                select(func.count()).select_from(Payout).where(Payout.user_id == user_id)
            )
            or 0
        )

    async def open_requests(self, limit: int) -> Sequence[tuple[Payout, User]]:
        rows = await self.session.execute(
            select(Payout, User)
            .join(User, User.id == Payout.user_id)
            .where(Payout.state.in_(("requested", "approved")))
            .order_by(Payout.requested_at, Payout.id)
            .limit(limit)
        )
        return [(row[0], row[1]) for row in rows]

    async def count_open(self) -> int:
        return int(
            await self.session.scalar(
                select(func.count())
                .select_from(Payout)
                .where(Payout.state.in_(("requested", "approved")))
            )
            or 0
        )
