"""Did this session's transaction write anything? Known from the statements it sent.

The webhook inbox marks an update handled inside the update's own transaction only when
that transaction writes: then the mark and the writes commit or roll back together
(exactly once). An update that only read is marked afterwards, in a batch with others,
which saves a write and a commit per update (bot/intake/webhook.py).

Every statement passes ``before_cursor_execute`` on its connection; a write sets a flag
in the connection's ``info``, which ``after_begin`` clears when a session's transaction
takes the connection (and the session forgets the connection when that transaction
ends). ORM flushes, Core statements through ``session.connection()`` and text SQL are
all seen. Anything that is not plainly a read counts as a write, and so does a
``SELECT ... FOR UPDATE``: it locks rows for a write to come.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

_WROTE = "signalbridge_wrote"
_CONNECTION = "signalbridge_connection"
_READS = ("SELECT", "WITH", "PRAGMA", "SHOW", "EXPLAIN")


def _note_write(
    conn: Connection,
    _cursor: Any,
    statement: str,
    _parameters: Any,
    context: Any,
    _executemany: bool,
) -> None:
    dml = context is not None and (context.isinsert or context.isupdate or context.isdelete)
    if dml or _locks(context) or not statement.lstrip()[:7].upper().startswith(_READS):
        conn.info[_WROTE] = True


def _locks(context: Any) -> bool:
    """A SELECT ... FOR UPDATE: it takes row locks for a write to come (on SQLite, which
    renders no FOR UPDATE, the intent is only in the statement object)."""
    statement = getattr(getattr(context, "compiled", None), "statement", None)
    return getattr(statement, "_for_update_arg", None) is not None


def track_writes(engine: AsyncEngine) -> None:
    """Record writes on every connection of ``engine``."""
    event.listen(engine.sync_engine, "before_cursor_execute", _note_write)


@event.listens_for(Session, "after_begin")
def _remember_connection(
    session: Session, _transaction: SessionTransaction, connection: Connection
) -> None:
    connection.info[_WROTE] = False
    session.info[_CONNECTION] = connection


@event.listens_for(Session, "after_transaction_end")
def _forget_connection(session: Session, transaction: SessionTransaction) -> None:
    # The next transaction (the session autobegins one) takes a connection of its own.
    if transaction.parent is None:
        session.info.pop(_CONNECTION, None)


def session_wrote(session: AsyncSession | Session) -> bool:
    """True when the session's current transaction has sent a write statement."""
    sync = session.sync_session if isinstance(session, AsyncSession) else session
    connection: Connection | None = sync.info.get(_CONNECTION)
    if connection is None or not sync.in_transaction():
        return False
    return bool(connection.info.get(_WROTE))
