"""Updates (webhook or polling): claimed on receipt, marked handled in the update's
transaction (when it wrote) or in a batch after it (when it only read); failed attempts
counted until the update is retried or dead-lettered (bot/intake/inbox.py).

Core statements on the session's connection: this runs for every update, and the ORM's
bulk-update machinery and statement building cost more than the query itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, insert, or_, select, update
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


@dataclass(frozen=True, slots=True)
class StoredUpdate:
    """A pending update as stored: its JSON and the failed attempts so far."""

    update_id: int
    payload: str
    received_at: datetime
    attempts: int
    last_error: str | None = None
    first_failed_at: datetime | None = None


_STORED_COLUMNS = (
    _TABLE.c.update_id,
    _TABLE.c.payload,
    _TABLE.c.received_at,
    _TABLE.c.attempts,
    _TABLE.c.last_error,
    _TABLE.c.first_failed_at,
)


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

    async def pending(self, due_before: datetime, limit: int) -> list[StoredUpdate]:
        """Unhandled updates received, and (after a failure) due for a retry, before the
        given time; oldest first."""
        rows = await self.session.execute(
            select(*_STORED_COLUMNS)
            .where(
                _TABLE.c.handled_at.is_(None),
                _TABLE.c.received_at < due_before,
                or_(_TABLE.c.retry_at.is_(None), _TABLE.c.retry_at < due_before),
            )
            .order_by(_TABLE.c.update_id)
            .limit(limit)
        )
        return [_stored(row) for row in rows]

    async def get_pending(self, update_id: int) -> StoredUpdate | None:
        """The update if it is stored and not handled."""
        row = (
            await self.session.execute(
                select(*_STORED_COLUMNS).where(
                    _TABLE.c.update_id == update_id, _TABLE.c.handled_at.is_(None)
                )
            )
        ).first()
        return None if row is None else _stored(row)

    async def record_failure(
        self, update_id: int, error: str, now: datetime, retry_at: datetime
    ) -> int | None:
        """Count a failed attempt of a pending update; the attempts so far, or None when it
        is not pending (handled meanwhile, by another instance's recovery)."""
        connection = await self.session.connection()
        result = await connection.execute(
            update(_TABLE)
            .where(_TABLE.c.update_id == update_id, _TABLE.c.handled_at.is_(None))
            .values(
                attempts=_TABLE.c.attempts + 1,
                last_error=error[:100],
                first_failed_at=func.coalesce(_TABLE.c.first_failed_at, now),
                retry_at=retry_at,
            )
            .returning(_TABLE.c.attempts)
        )
        attempts = result.scalar()
        return None if attempts is None else int(attempts)

    async def requeue(self, update_id: int, payload: str, attempts: int, now: datetime) -> None:
        """Store the update as pending again (a dead letter an admin retries), with
        ``attempts`` failures counted already; the row may have been pruned meanwhile."""
        connection = await self.session.connection()
        values = {
            "received_at": now,
            "handled_at": None,
            "payload": payload,
            "attempts": attempts,
            "retry_at": None,
        }
        result = await connection.execute(
            update(_TABLE).where(_TABLE.c.update_id == update_id).values(**values)
        )
        if result.rowcount == 0:
            await connection.execute(insert(_TABLE).values(update_id=update_id, **values))

    async def prune(self, received_before: datetime) -> int:
        """Forget updates received before the given time; return how many rows went."""
        connection = await self.session.connection()
        result = await connection.execute(
            delete(_TABLE).where(_TABLE.c.received_at < received_before)
        )
        return int(result.rowcount)

    async def get(self, update_id: int) -> ProcessedUpdate | None:
        return await self.session.get(ProcessedUpdate, update_id)


def _stored(row: Any) -> StoredUpdate:
    update_id, payload, received_at, attempts, last_error, first_failed_at = row
    return StoredUpdate(
        update_id, payload or "", received_at, int(attempts or 0), last_error, first_failed_at
    )
