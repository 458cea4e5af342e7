"""Webhook updates: claimed on receipt, marked handled in the update's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import ProcessedUpdate


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
        rows = [{"update_id": uid, "received_at": now, "payload": raw} for uid, raw in updates]
        dialect = self.session.get_bind().dialect.name
        insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = (
            insert(ProcessedUpdate)
            .values(rows)
            .on_conflict_do_nothing(index_elements=[ProcessedUpdate.update_id])
            .returning(ProcessedUpdate.update_id)
        )
        return set((await self.session.scalars(statement)).all())

    async def mark_handled(self, update_id: int, now: datetime) -> bool:
        """Mark a pending update handled; False when it was handled already.

        Inside the update's transaction this also locks the row (PostgreSQL) or the
        database (SQLite) until commit, so a second processor of the same id waits and
        then sees it handled.
        """
        result = await self.session.execute(
            update(ProcessedUpdate)
            .where(ProcessedUpdate.update_id == update_id, ProcessedUpdate.handled_at.is_(None))
            .values(handled_at=now, payload=None)
            .execution_options(synchronize_session=False)
        )
        assert isinstance(result, CursorResult)
        return bool(result.rowcount == 1)

    async def pending(self, received_before: datetime, limit: int) -> list[tuple[int, str]]:
        """Claimed but unhandled updates received before the given time, oldest first."""
        rows = await self.session.execute(
            select(ProcessedUpdate.update_id, ProcessedUpdate.payload)
            .where(
                ProcessedUpdate.handled_at.is_(None),
                ProcessedUpdate.received_at < received_before,
            )
            .order_by(ProcessedUpdate.update_id)
            .limit(limit)
        )
        return [(update_id, payload or "") for update_id, payload in rows]

    async def prune(self, received_before: datetime) -> int:
        """Forget updates received before the given time; return how many rows went."""
        result = await self.session.execute(
            delete(ProcessedUpdate)
            .where(ProcessedUpdate.received_at < received_before)
            .execution_options(synchronize_session=False)
        )
        assert isinstance(result, CursorResult)
        return int(result.rowcount)

    async def get(self, update_id: int) -> ProcessedUpdate | None:
        return await self.session.get(ProcessedUpdate, update_id)
