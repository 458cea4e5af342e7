"""The outbox: messages owed to users. Queries only, on a session the caller owns."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple
from typing import cast as typed

from sqlalchemy import (
    BigInteger,
    Table,
    Text,
    and_,
    bindparam,
    cast,
    delete,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
    true,
    type_coerce,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import TypeEngine

from db.models import Approval, OutboxMessage

PENDING = "pending"
SENT = "sent"
# Terminal states besides SENT: nothing more will be tried.
EXPIRED = "expired"
BLOCKED = "blocked"
FAILED = "failed"

_TABLE = typed(Table, OutboxMessage.__table__)
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


class NewMessage(NamedTuple):
    """A message to queue: what differs between the rows of one :meth:`OutboxRepository.add`
    (a plain tuple: the whole batch travels as one JSON parameter)."""

    chat_id: int
    kind: str
    text: str | None = None
    reply_markup: dict[str, Any] | None = None
    message_id: int | None = None
    approval_id: int | None = None
    dedupe_key: str | None = None


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


# The worker's statements, built once: they run for every batch of a broadcast, and a
# statement object that is reused keeps its cache key (SQLAlchemy's compiled cache) too.
def _due_statement() -> Any:
    t, earlier, now = _TABLE, _TABLE.alias("earlier"), _now()
    blocked_by_earlier = exists().where(
        earlier.c.chat_id == t.c.chat_id,
        earlier.c.state == PENDING,
        earlier.c.id < t.c.id,
        or_(
            earlier.c.next_attempt_at > now,
            and_(earlier.c.lease_until.is_not(None), earlier.c.lease_until >= now),
        ),
    )
    return (
        select(t.c.id)
        .where(t.c.state == PENDING, t.c.next_attempt_at <= now, _free(now), ~blocked_by_earlier)
        .order_by(t.c.id)
        .limit(bindparam("limit"))
    )


def _now() -> Any:
    return bindparam("now", type_=_TABLE.c.next_attempt_at.type)


def _free(now: Any) -> Any:
    return or_(_TABLE.c.lease_until.is_(None), _TABLE.c.lease_until < now)


def _settle_update(**values: Any) -> Any:
    released = {"lease_owner": None, "lease_until": None}
    return update(_TABLE).where(_TABLE.c.id == bindparam("row_id")).values(**released, **values)


_DUE = _due_statement()
_LEASE = (
    update(_TABLE)
    .where(
        _TABLE.c.id.in_(bindparam("ids", expanding=True)),
        _TABLE.c.state == PENDING,
        _free(_now()),
    )
    .values(lease_owner=bindparam("owner"), lease_until=bindparam("until"), dedupe_key=None)
    .returning(*_ROW_COLUMNS)
)
_SETTLE_RETRY = _settle_update(
    next_attempt_at=bindparam("at"),
    last_error=bindparam("error"),
    attempts=_TABLE.c.attempts + 1,
)
# Waiting (an edit too soon after the last one, a row behind an earlier one) is no attempt.
_SETTLE_WAIT = _settle_update(next_attempt_at=bindparam("at"), last_error=bindparam("error"))
_SETTLE_ENDED = _settle_update(
    state=bindparam("new_state"),
    last_error=bindparam("error"),
    attempts=_TABLE.c.attempts + 1,
    dedupe_key=None,
)
_APPROVALS = typed(Table, Approval.__table__)


def _value_by_id(dialect: str, row_id: Any) -> Any:
    """The integer that the JSON object parameter ``values`` holds under the row's id (or
    NULL): one parameter carries a whole batch's per-row values, so a batch is one
    statement with one set of parameters rather than one per row."""
    values = bindparam("values", type_=Text)
    if dialect == "postgresql":
        return cast(cast(values, JSONB)[cast(row_id, Text)].astext, BigInteger)
    path = literal('$."').concat(cast(row_id, Text)).concat('"')
    return cast(func.json_extract(values, path), BigInteger)


def _sent_statements(dialect: str) -> tuple[Any, Any]:
    """(the sent rows, the approvals whose first message they were): both keyed by
    ``ids`` and taking their message ids from ``values``."""
    sent = (
        update(_TABLE)
        .where(_TABLE.c.id.in_(bindparam("ids", expanding=True)))
        .values(
            state=SENT,
            sent_at=bindparam("at"),
            sent_message_id=_value_by_id(dialect, _TABLE.c.id),
            lease_owner=None,
            lease_until=None,
            dedupe_key=None,
        )
    )
    first = (
        update(_APPROVALS)
        .where(_APPROVALS.c.id.in_(bindparam("ids", expanding=True)))
        .values(message_id=_value_by_id(dialect, _APPROVALS.c.id))
    )
    return sent, first


_SENT_STATEMENTS = {dialect: _sent_statements(dialect) for dialect in ("sqlite", "postgresql")}


def _add_statement(dialect: str) -> Any:
    """INSERT ... SELECT of the messages in the JSON parameter ``rows`` (an array of
    :class:`NewMessage` arrays), in their order, all created ``now`` and worth sending
    until ``not_after``: one statement and one set of parameters for a whole batch, so the
    per-row work happens in the database, not in SQLAlchemy's parameter handling.

    A row whose ``dedupe_key`` is pending already is merged into it by a no-op update
    rather than DO NOTHING: it locks the pending row, so a worker claiming it at this
    moment renders only after this transaction has committed (or, having claimed it first,
    freed the key and this insert adds a new row).
    """
    rows = bindparam("rows", type_=Text)
    types: list[TypeEngine[Any]] = [_TABLE.c[name].type for name in NewMessage._fields]
    if dialect == "postgresql":
        source: Any = (
            func.jsonb_array_elements(cast(rows, JSONB))
            .table_valued("value", with_ordinality="position")
            .render_derived()
        )
        # ->> gives text (SQL NULL for a JSON null), cast to each column's type.
        values: list[Any] = [
            cast(source.c.value.op("->>")(literal_column(str(index))), type_)
            for index, type_ in enumerate(types)
        ]
        order = source.c.position
    else:
        source = func.json_each(rows).table_valued("value", "key")
        # json_extract gives SQLite's own integer or text (NULL for a JSON null).
        values = [
            type_coerce(func.json_extract(source.c.value, f"$[{index}]"), type_)
            for index, type_ in enumerate(types)
        ]
        order = source.c.key
    now = bindparam("now", type_=_TABLE.c.created_at.type)
    fixed = {
        "state": literal(PENDING),
        "attempts": literal(0),
        "created_at": now,
        "next_attempt_at": now,
        "not_after": bindparam("not_after", type_=_TABLE.c.not_after.type),
    }
    # WHERE true: SQLite needs a WHERE before ON CONFLICT after an INSERT ... SELECT.
    select_rows = select(*values, *fixed.values()).select_from(source).where(true()).order_by(order)
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(_TABLE)
    statement = insert.from_select([*NewMessage._fields, *fixed], select_rows)
    return statement.on_conflict_do_update(
        index_elements=["dedupe_key"], set_={"created_at": _TABLE.c.created_at}
    )


_ADD_STATEMENTS = {dialect: _add_statement(dialect) for dialect in ("sqlite", "postgresql")}


class OutboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(
        self, messages: Sequence[NewMessage], *, now: datetime, not_after: datetime
    ) -> None:
        """Queue messages, in order; a message whose ``dedupe_key`` is pending already (or
        repeats an earlier one of ``messages``) is merged into that row."""
        keys: set[str] = set()
        rows: list[NewMessage] = []
        for message in messages:
            if message.dedupe_key is not None:
                if message.dedupe_key in keys:
                    continue  # one statement may not upsert a row twice (PostgreSQL)
                keys.add(message.dedupe_key)
            rows.append(message)
        if not rows:
            return
        dialect = self.session.get_bind().dialect.name
        await self.session.execute(
            _ADD_STATEMENTS[dialect],
            {"rows": json.dumps(rows), "now": now, "not_after": not_after},
        )

    async def add_for_approvals(
        self, signal_id: int, kind: str, now: datetime, not_after: datetime
    ) -> int:
        """A row of ``kind`` for every approval of the signal, to its user, in approval id
        order (INSERT ... SELECT: one statement for a broadcast); how many."""
        approvals = (
            select(
                _APPROVALS.c.user_id,
                literal(kind),
                _APPROVALS.c.id,
                literal(PENDING),
                literal(0),
                bindparam("now", type_=_TABLE.c.created_at.type),
                bindparam("now", type_=_TABLE.c.created_at.type),
                bindparam("not_after", type_=_TABLE.c.not_after.type),
            )
            .where(_APPROVALS.c.signal_id == bindparam("signal_id"))
            .order_by(_APPROVALS.c.id)
        )
        columns = [
            "chat_id",
            "kind",
            "approval_id",
            "state",
            "attempts",
            "created_at",
            "next_attempt_at",
            "not_after",
        ]
        result = await self.session.execute(
            _TABLE.insert().from_select(columns, approvals),
            {"signal_id": signal_id, "now": now, "not_after": not_after},
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def claim(
        self, owner: str, now: datetime, until: datetime, limit: int
    ) -> list[OutboxRow]:
        """Lease up to ``limit`` due rows to ``owner`` and return them, oldest first.

        A row is due when its time has come, nobody holds a live lease on it, and no
        earlier pending row of the same chat is waiting or leased (a chat's messages go
        in order). Claiming clears a refresh's ``dedupe_key``: a change stored while this
        one is being sent queues a refresh of its own.
        """
        conn = await self.session.connection()
        # A read first: an idle outbox (the usual case) costs no write at all.
        due = list((await conn.execute(_DUE, {"now": now, "limit": limit})).scalars())
        if not due:
            return []
        # Leased only if still free: another instance may have taken some meanwhile; the
        # rows come back from the same statement (RETURNING: SQLite 3.35+, PostgreSQL).
        leased = await conn.execute(
            _LEASE, {"ids": due, "now": now, "owner": owner, "until": until}
        )
        return sorted((OutboxRow(*row) for row in leased), key=_by_id)

    async def settle(self, outcomes: Sequence[Outcome]) -> None:
        """Store what sending learned, for a batch of rows, in a few statements."""
        sent = [o for o in outcomes if isinstance(o, Sent)]
        retries = [o for o in outcomes if isinstance(o, Retry)]
        ended = [o for o in outcomes if isinstance(o, Ended)]
        conn = await self.session.connection()
        if sent:
            # One statement each for the whole batch (a broadcast settles thousands);
            # sent_at is the batch's latest send, milliseconds from the others.
            settle_sent, first_message = _SENT_STATEMENTS[conn.dialect.name]
            await conn.execute(
                settle_sent,
                {
                    "ids": [o.id for o in sent],
                    "at": max(o.at for o in sent),
                    "values": json.dumps({o.id: o.message_id for o in sent}),
                },
            )
            firsts = {
                o.approval_id: o.message_id
                for o in sent
                if o.approval_id is not None and o.message_id is not None
            }
            if firsts:
                await conn.execute(
                    first_message, {"ids": list(firsts), "values": json.dumps(firsts)}
                )
        for counts, statement in ((True, _SETTLE_RETRY), (False, _SETTLE_WAIT)):
            batch = [
                {"row_id": o.id, "at": o.at, "error": o.error[:200]}
                for o in retries
                if o.counts is counts
            ]
            if batch:
                await conn.execute(statement, batch)
        if ended:
            await conn.execute(
                _SETTLE_ENDED,
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
