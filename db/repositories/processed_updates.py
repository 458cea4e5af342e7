"""Webhook updates: claimed on receipt, marked handled in the update's transaction
(when it wrote) or in a batch after it (when it only read).

Core statements on the session's connection: this runs for every update, and the ORM's
bulk-update machinery and statement building cost more than the query itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import ProcessedUpdate
from db.types import UTCDateTime

_TABLE = cast(Table, ProcessedUpdate.__table__)
_MARK_HANDLED = (
    update(_TABLE)
    .where(_TABLE.c.update_id == bindparam("b_update_id"), _TABLE.c.handled_at.is_(None))
    .values(handled_at=bindparam("b_now", type_=UTCDateTime()), payload=None)
)

_CLAIM = {
    name: insert(_TABLE)
    .on_conflict_do_nothing(index_elements=[_TABLE.c.update_id])
    .returning(_TABLE.c.update_id)
    for name, insert in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))
}


class ProcessedUpdateRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim(self, updates: Sequence[tuple[int, str]], now: datetime) -> set[int]:
        """Insert (update_id, raw JSON) rows that do not exist yet; return the ids inserted.

        One statement for the whole batch; an id already stored (handled, or claimed by
        another delivery or instance) is left alone and not returned.
        """
        if not updates:
            return set()
        connection = await self.session.connection()
        statement = _CLAIM[connection.dialect.name]
        rows = [{"update_id": uid, "received_at": now, "payload": raw} for uid, raw in updates]
        # One statement built once, run for all rows (SQLAlchemy's "insertmanyvalues" sends
        # them as multi-row INSERTs); a statement with the rows in it compiles per batch.
        return set((await connection.execute(statement, rows)).scalars())

    async def mark_handled(self, update_id: int, now: datetime) -> bool:
        """Mark a pending update handled; False when it was handled already.

        Inside the update's transaction this also locks the row (PostgreSQL) or the
        database (SQLite) until commit, so a second processor of the same id waits and
        then sees it handled.
        """
        connection = await self.session.connection()
        result = await connection.execute(_MARK_HANDLED, {"b_update_id": update_id, "b_now": now})
        return bool(result.rowcount == 1)

    async def mark_many_handled(self, update_ids: Sequence[int], now: datetime) -> int:
        """Mark pending updates handled in one statement; return how many were pending."""
        if not update_ids:
            return 0
        connection = await self.session.connection()
        result = await connection.execute(
            update(_TABLE)
            .where(_TABLE.c.update_id.in_(update_ids), _TABLE.c.handled_at.is_(None))
            .values(handled_at=now, payload=None)
        )
        return int(result.rowcount)

    async def pending(self, received_before: datetime, limit: int) -> list[tuple[int, str]]:
        """Claimed but unhandled updates received before the given time, oldest first."""
        rows = await self.session.execute(
            select(_TABLE.c.update_id, _TABLE.c.payload)
            .where(_TABLE.c.handled_at.is_(None), _TABLE.c.received_at < received_before)
            .order_by(_TABLE.c.update_id)
            .limit(limit)
        )
        return [(update_id, payload or "") for update_id, payload in rows]

    async def prune(self, received_before: datetime) -> int:
        """Forget updates received before the given time; return how many rows went."""
        connection = await self.session.connection()
        result = await connection.execute(
            delete(_TABLE).where(_TABLE.c.received_at < received_before)
        )
        return int(result.rowcount)

    async def get(self, update_id: int) -> ProcessedUpdate | None:
        return await self.session.get(ProcessedUpdate, update_id)
