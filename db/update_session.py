"""The update's database session: let go of before the bot waits on Telegram, and never
held across a call to Telegram while it holds writes.

Every update runs in one session (bot/chat/middlewares/db.py). A reply to Telegram takes a
network round trip (tens to hundreds of milliseconds), and on SQLite the process has a
single connection: a transaction held open across that wait would stop every other
update, the webhook's claims and the EA endpoints for its whole length.

So before any Bot API call made from inside an update (a reply, an edit, a callback
answer), ``before_telegram`` commits the update's transaction when it has only read:
nothing to make atomic, and the connection goes back to the pool. A statement after the
call starts a new transaction on its own (the session autobegins), which the middleware
commits at the end as usual.

A transaction that holds writes (statements sent, ORM changes not flushed yet, or rows
locked with ``SELECT ... FOR UPDATE``) is never kept open across a call: the call raises
``TellBeforeCommitError`` instead, the update is rolled back and the user gets the
apology. That is the rule "stored before told": a message about a write is queued in the
same transaction (``container.outbox``, the handlers' ``tell``) and sent after the
commit, or, when it is not worth keeping (a callback answer), run after the commit
(``db.hooks.after_commit``). A message about something that then fails to commit can
never leave, and no update holds the connection while Telegram answers.

Only the task that runs the update is checked and released: a task the handler started
inherits the context but must not touch a session another task is using.
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


class TellBeforeCommitError(RuntimeError):
    """A Bot API call from an update whose transaction holds writes (a programming error)."""

    def __init__(self, method: str) -> None:
        super().__init__(
            f"{method} called while the update's transaction holds writes: a message about "
            "a write goes out after its commit; use container.outbox (the handler's `tell`) "
            "or db.hooks.after_commit"
        )
        self.method = method


def holds_writes(session: AsyncSession) -> bool:
    """True when the session's open transaction wrote or locked rows, or ORM changes wait
    to be flushed: what only a commit may make known."""
    sync = session.sync_session
    return bool(sync.new or sync.deleted or sync.dirty) or session_wrote(session)


async def before_telegram(method: str) -> bool:
    """Called before every Bot API request: commit the current update's transaction if it
    only read (True when it did); raise ``TellBeforeCommitError`` if it holds writes."""
    current = _current.get()
    if current is None:
        return False
    session, owner = current
    if asyncio.current_task() is not owner:
        return False
    if holds_writes(session):
        raise TellBeforeCommitError(method)
    return await release_if_read_only()


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
