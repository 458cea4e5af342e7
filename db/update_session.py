"""The update's database session, let go of before the bot waits on Telegram.

Every update runs in one session (bot/middlewares/db.py). A reply to Telegram takes a
network round trip (tens to hundreds of milliseconds), and on SQLite the process has a
single connection: a transaction held open across that wait would stop every other
update, the webhook's claims and the EA endpoints for its whole length.

So before any Bot API call made from inside an update (a reply, an edit, a callback
answer), ``release_if_read_only`` commits the update's transaction when it has only
read: nothing to make atomic, and the connection goes back to the pool. A statement
after the call starts a new transaction on its own (the session autobegins), which the
middleware commits at the end as usual. A transaction that wrote, or holds ORM changes
not flushed yet, is kept: its writes commit together, after the handler, as before.

Only the task that runs the update may do this: a task the handler started inherits the
context but must not touch a session another task is using.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from sqlalchemy.ext.asyncio import AsyncSession

from db.writes import session_wrote

_current: ContextVar[tuple[AsyncSession, asyncio.Task[object] | None] | None] = ContextVar(
    "signalbridge_update_session", default=None
)


@contextmanager
def update_session(session: AsyncSession) -> Iterator[AsyncSession]:
    """Make ``session`` the current update's session while the block runs."""
    token = _current.set((session, asyncio.current_task()))
    try:
        yield session
    finally:
        _current.reset(token)


def releasable(session: AsyncSession) -> bool:
    """True when the session's open transaction has neither written nor queued a write."""
    sync = session.sync_session
    if not sync.in_transaction() or session_wrote(session):
        return False
    return not (sync.new or sync.deleted or sync.dirty)


async def release_if_read_only() -> bool:
    """Commit the current update's transaction if it only read; True when it did."""
    current = _current.get()
    if current is None:
        return False
    session, owner = current
    if asyncio.current_task() is not owner or not releasable(session):
        return False
    await session.commit()
    return True
