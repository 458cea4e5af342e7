"""Actions that must wait for a transaction to commit (messages about what it stored).

A handler's transaction commits after the handler returns (bot/chat/middlewares/db.py); a
message saying "approved" must not go out if that commit fails. ``after_commit`` queues
a plain callable on the session; it runs once the outermost transaction commits and is
dropped on rollback (at once when the session has no transaction open: an update's
read-only transaction may have been committed before a reply, db/update_session.py).
Callables must be quick and must not raise (schedule tasks).

The listeners that run them are installed on the session class of our own factory
(``db.engine.create_sessionmaker`` calls :func:`install_after_commit_hooks`), not on every
SQLAlchemy session at import; ``after_commit`` on a session from any other factory raises
rather than queue an action nothing would run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

logger = logging.getLogger(__name__)

_KEY = "after_commit_actions"


def after_commit(session: AsyncSession | Session, action: Callable[[], None]) -> None:
    """Run ``action`` after the session's current transaction commits; at once when no
    transaction is open (what came before is committed already)."""
    sync = session.sync_session if isinstance(session, AsyncSession) else session
    if not has_after_commit_hooks(type(sync)):
        raise RuntimeError(
            f"{type(sync).__name__} has no after-commit hooks: sessions come from "
            "db.engine.create_sessionmaker"
        )
    if not sync.in_transaction():
        _run(action)
        return
    sync.info.setdefault(_KEY, []).append(action)


def _run(action: Callable[[], None]) -> None:
    try:
        action()
    except Exception:
        logger.exception("after-commit action %r failed", action)


def _run_actions(session: Session) -> None:
    for action in session.info.pop(_KEY, []):
        _run(action)


def _drop_actions(session: Session) -> None:
    session.info.pop(_KEY, None)


def install_after_commit_hooks(session_class: type[Session]) -> None:
    """Run queued actions after each commit of ``session_class``'s sessions, drop them on
    rollback."""
    event.listen(session_class, "after_commit", _run_actions)
    event.listen(session_class, "after_rollback", _drop_actions)


def has_after_commit_hooks(session_class: type[Any]) -> bool:
    return event.contains(session_class, "after_commit", _run_actions)
