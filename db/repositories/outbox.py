"""The outbox: messages owed to users. Queries only, on a session the caller owns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, delete, exists, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from db.models import Approval, OutboxMessage

PENDING = "pending"
SENT = "sent"
# Terminal states besides SENT: nothing more will be tried.
EXPIRED = "expired"
BLOCKED = "blocked"
FAILED = "failed"

_TABLE = cast(Table, OutboxMessage.__table__)
_ROW_COLUMNS = (
    _TABLE.c.id,
    _TABLE.c.chat_id,
    _TABLE.c.kind,
    _TABLE.c.text,
    _TABLE.c.reply_markup,
    _TABLE.c.message_id,
    _TABLE.c.approval_id,
    _TABLE.c.attempts,
    _TABLE.c.not_after,
)


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    chat_id: int
    kind: str
    text: str | None
    reply_markup: dict[str, Any] | None
    message_id: int | None
    approval_id: int | None
    attempts: int
    not_after: datetime


@dataclass(frozen=True, slots=True)
class Sent:
    id: int
    at: datetime
    message_id: int | None
    approval_id: int | None = None
    """Set for an approval's first message: its message id is stored on the approval."""


@dataclass(frozen=True, slots=True)
class Retry:
    id: int
    at: datetime
    error: str
    counts: bool = True
    """False when the row only waits (an edit too soon after the last one): no attempt."""


@dataclass(frozen=True, slots=True)
class Ended:
    id: int
    state: str
    error: str


Outcome = Sent | Retry | Ended


def _by_id(row: OutboxRow) -> int:
    return row.id


class OutboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _insert(self) -> Any:
        dialect = self.session.get_bind().dialect.name
        return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(_TABLE)

    async def add(self, rows: Sequence[dict[str, Any]]) -> None:
        """Queue messages; a row whose ``dedupe_key`` is pending already is merged into it."""
        if not rows:
            return
        full = [
            {
                "text": None,
                "reply_markup": None,
                "message_id": None,
                "approval_id": None,
                "dedupe_key": None,
                "state": PENDING,
                "attempts": 0,
                **row,
            }
            for row in rows
        ]
        # A no-op update rather than DO NOTHING: it locks the pending row, so a worker
        # claiming it at this moment renders only after this transaction has committed
        # (or, having claimed it first, freed the key and this insert adds a new row).
        statement = self._insert()
        statement = statement.on_conflict_do_update(
            index_elements=["dedupe_key"], set_={"created_at": _TABLE.c.created_at}
        )
        await self.session.execute(statement, full)

    async def claim(
        self, owner: str, now: datetime, until: datetime, limit: int
    ) -> list[OutboxRow]:
        """Lease up to ``limit`` due rows to ``owner`` and return them, oldest first.

        A row is due when its time has come, nobody holds a live lease on it, and no
        earlier pending row of the same chat is waiting or leased (a chat's messages go
        in order). Claiming clears a refresh's ``dedupe_key``: a change stored while this
        one is being sent queues a refresh of its own.
        """
        earlier = aliased(OutboxMessage)
        blocked_by_earlier = exists().where(
            earlier.chat_id == OutboxMessage.chat_id,
            earlier.state == PENDING,
            earlier.id < OutboxMessage.id,
            or_(
                earlier.next_attempt_at > now,
                and_(earlier.lease_until.is_not(None), earlier.lease_until >= now),
            ),
        )
        free = or_(OutboxMessage.lease_until.is_(None), OutboxMessage.lease_until < now)
        due_query = (
            select(OutboxMessage.id)
            .where(
                OutboxMessage.state == PENDING,
                OutboxMessage.next_attempt_at <= now,
                free,
                ~blocked_by_earlier,
            )
            .order_by(OutboxMessage.id)
            .limit(limit)
        )
        # A read first: an idle outbox (the usual case) costs no write at all.
        due = list(await self.session.scalars(due_query))
        if not due:
            return []
        # Leased only if still free: another instance may have taken some meanwhile; the
        # rows come back from the same statement (RETURNING: SQLite 3.35+, PostgreSQL).
        leased = await self.session.execute(
            update(_TABLE)
            .where(_TABLE.c.id.in_(due), _TABLE.c.state == PENDING, free)
            .values(lease_owner=owner, lease_until=until, dedupe_key=None)
            .returning(*_ROW_COLUMNS)
        )
        return sorted((OutboxRow(*row) for row in leased), key=_by_id)

    async def settle(self, outcomes: Sequence[Outcome]) -> None:
        """Store what sending learned, for a batch of rows, in a few statements."""
        sent = [o for o in outcomes if isinstance(o, Sent)]
        retries = [o for o in outcomes if isinstance(o, Retry)]
        ended = [o for o in outcomes if isinstance(o, Ended)]
        conn = await self.session.connection()
        if sent:
            await conn.execute(
                update(_TABLE)
                .where(_TABLE.c.id == bindparam("row_id"))
                .values(
                    state=SENT,
                    sent_at=bindparam("at"),
                    sent_message_id=bindparam("mid"),
                    lease_owner=None,
                    lease_until=None,
                    dedupe_key=None,
                ),
                [{"row_id": o.id, "at": o.at, "mid": o.message_id} for o in sent],
            )
            firsts = [o for o in sent if o.approval_id is not None and o.message_id is not None]
            if firsts:
                approvals = Approval.__table__
                assert isinstance(approvals, Table)
                await conn.execute(
                    update(approvals)
                    .where(approvals.c.id == bindparam("approval"))
                    .values(message_id=bindparam("mid")),
                    [{"approval": o.approval_id, "mid": o.message_id} for o in firsts],
                )
        for counts in (True, False):
            batch = [o for o in retries if o.counts is counts]
            if not batch:
                continue
            values: dict[str, Any] = {
                "next_attempt_at": bindparam("at"),
                "last_error": bindparam("error"),
                "lease_owner": None,
                "lease_until": None,
            }
            if counts:
                values["attempts"] = _TABLE.c.attempts + 1
            await conn.execute(
                update(_TABLE).where(_TABLE.c.id == bindparam("row_id")).values(**values),
                [{"row_id": o.id, "at": o.at, "error": o.error[:200]} for o in batch],
            )
        if ended:
            await conn.execute(
                update(_TABLE)
                .where(_TABLE.c.id == bindparam("row_id"))
                .values(
                    state=bindparam("new_state"),
                    last_error=bindparam("error"),
                    attempts=_TABLE.c.attempts + 1,
                    lease_owner=None,
                    lease_until=None,
                    dedupe_key=None,
                ),
                [{"row_id": o.id, "new_state": o.state, "error": o.error[:200]} for o in ended],
            )

    async def release(self, owner_prefix: str | None) -> int:
        """Give back leases (of one process, or all of them with None)."""
        query = update(OutboxMessage).where(
            OutboxMessage.state == PENDING, OutboxMessage.lease_owner.is_not(None)
        )
        if owner_prefix is not None:
            query = query.where(OutboxMessage.lease_owner.startswith(owner_prefix))
        result = await self.session.execute(
            query.values(lease_owner=None, lease_until=None).execution_options(
                synchronize_session=False
            )
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def prune(self, cutoff: datetime) -> int:
        """Forget rows that ended before ``cutoff``."""
        result = await self.session.execute(
            delete(OutboxMessage)
            .where(OutboxMessage.state != PENDING, OutboxMessage.created_at < cutoff)
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def pending_count(self) -> int:
        query = (
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.state == PENDING)
        )
        return int(await self.session.scalar(query) or 0)
