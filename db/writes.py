"""Did this session's transaction write anything? Known from the statements it sent.

The webhook inbox marks an update handled inside the update's own transaction only when
that transaction writes: then the mark and the writes commit or roll back together
(exactly once). An update that only read is marked afterwards, in a batch with others,
which saves a write and a commit per update (bot/chat/webhook.py).

Every statement passes ``before_cursor_execute`` on its connection; a write sets a flag
in the connection's ``info``, which ``after_begin`` clears when a session's transaction
takes the connection (and the session forgets the connection when that transaction
ends). ORM flushes, Core statements through ``session.connection()`` and text SQL are
all seen. Anything that is not plainly a read counts as a write, and so does a
``SELECT ... FOR UPDATE``: it locks rows for a write to come.

Both halves are installed by our factories (db/engine.py): :func:`track_writes` on the
engine, :func:`track_session_writes` on the sessionmaker's session class.
"""

from __future__ import annotations

from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Select, event
from sqlalchemy.engine import Compiled, Connection
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


# Compiled statements are cached by the engine and reused, so each is looked at once.
_LOCKING: WeakKeyDictionary[Compiled, bool] = WeakKeyDictionary()


def _locks(context: Any) -> bool:
    """A SELECT ... FOR UPDATE (or FOR SHARE): it takes row locks for a write to come.

    SQLite renders no FOR UPDATE, so the intent is read from the statement itself, as the
    generic SQL compiler renders it on every backend.
    """
    compiled: Compiled | None = getattr(context, "compiled", None)
    if compiled is None or not isinstance(compiled.statement, Select):
        return False
    locking = _LOCKING.get(compiled)
    if locking is None:
        rendered = str(compiled.statement)
        locking = _LOCKING[compiled] = " FOR UPDATE" in rendered or " FOR SHARE" in rendered
    return locking


def track_writes(engine: AsyncEngine) -> None:
    """Record writes on every connection of ``engine``."""
    event.listen(engine.sync_engine, "before_cursor_execute", _note_write)


def _remember_connection(
    session: Session, _transaction: SessionTransaction, connection: Connection
) -> None:
    connection.info[_WROTE] = False
    session.info[_CONNECTION] = connection


def _forget_connection(session: Session, transaction: SessionTransaction) -> None:
    # The next transaction (the session autobegins one) takes a connection of its own.
    if transaction.parent is None:
        session.info.pop(_CONNECTION, None)


def track_session_writes(session_class: type[Session]) -> None:
    """Tie each transaction of ``session_class``'s sessions to its connection's flag."""
    event.listen(session_class, "after_begin", _remember_connection)
    event.listen(session_class, "after_transaction_end", _forget_connection)


def session_wrote(session: AsyncSession | Session) -> bool:
    """True when the session's current transaction has sent a write statement."""
    sync = session.sync_session if isinstance(session, AsyncSession) else session
    connection: Connection | None = sync.info.get(_CONNECTION)
    if connection is None or not sync.in_transaction():
        return False
    return bool(connection.info.get(_WROTE))
