"""Users: look-up, creation, refresh and the blocked flag."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Row, Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import User
from db.repositories.common import dialect_insert

_TABLE = cast(Table, User.__table__)
# Every column, as a plain row: the statement is built once (it runs for most updates).
_ROW = select(_TABLE).where(_TABLE.c.id == bindparam("user_id"))


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: int) -> User | None:
        return await self.session.get(User, user_id)

    async def row(self, user_id: int) -> Row[Any] | None:
        """The user's row, read-only (no ORM object): cheaper where it is only looked at."""
        result = await self.session.execute(_ROW, {"user_id": user_id})
        return result.first()

    async def update_columns(self, user_id: int, values: Mapping[str, Any]) -> None:
        await self.session.execute(update(_TABLE).where(_TABLE.c.id == user_id).values(**values))

    async def insert_new(self, values: Mapping[str, Any]) -> Row[Any] | None:
        """Insert the user's row unless it exists; the new row, or None when it was there.

        ``INSERT ... ON CONFLICT (id) DO NOTHING``: of two instances creating one user at
        once, the second waits for the first's commit and then inserts nothing (no unique
        violation, and its transaction stays usable).
        """
        statement = (
            dialect_insert(self.session, _TABLE)
            .values(**values)
            .on_conflict_do_nothing(index_elements=[_TABLE.c.id])
            .returning(*_TABLE.c)
        )
        result = await self.session.execute(statement)
        return result.first()

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
