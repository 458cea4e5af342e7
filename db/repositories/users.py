"""Users: look-up, creation, refresh and the blocked flag."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import User


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: int) -> User | None:
        return await self.session.get(User, user_id)

    async def add(self, user: User) -> User:
        self.session.add(user)
        await self.session.flush()
        return user

    async def set_blocked(self, user_id: int, blocked: bool, at: datetime) -> None:
        await self.session.execute(
            update(User)
            .where(User.id == user_id)
            .values(is_blocked=blocked, blocked_at=at if blocked else None)
        )

    async def ids(self, *, include_blocked: bool = False) -> list[int]:
        query = select(User.id).order_by(User.id)
        if not include_blocked:
            query = query.where(User.is_blocked.is_(False))
        return list((await self.session.scalars(query)).all())
