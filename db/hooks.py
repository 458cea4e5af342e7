"""Work that must wait until the caller's transaction has committed.

A cache invalidated, or a long poll woken, before the commit could re-read the old rows
and miss the change for good; after a rollback it must not happen at all. Services
register such work with :func:`after_commit` on the session they were given, and whoever
owns the transaction (the update middleware, a view's ``sessionmaker.begin()``) needs to
do nothing: SQLAlchemy's ``after_commit`` event runs the callbacks.

Callbacks are synchronous and must not use the session; one that needs the network
schedules its own task (see bot/services/broadcast.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

logger = logging.getLogger(__name__)

_KEY = "signalbridge.after_commit"


def after_commit(session: AsyncSession, callback: Callable[[], None]) -> None:
    """Call ``callback()`` once the session's current transaction commits; never on rollback."""
    sync = session.sync_session
    callbacks: list[Callable[[], None]] | None = sync.info.get(_KEY)
    if callbacks is None:
        callbacks = sync.info[_KEY] = []
        event.listen(sync, "after_commit", _run)
        event.listen(sync, "after_rollback", _discard)
    callbacks.append(callback)


def _run(session: Session) -> None:
    for callback in session.info.pop(_KEY, None) or ():
        try:
            callback()
        except Exception:
            # The data is committed; a failed follow-up must not turn that into an error.
            logger.exception("after-commit callback %r failed", callback)
    session.info[_KEY] = []


def _discard(session: Session) -> None:
    session.info[_KEY] = []
