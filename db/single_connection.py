"""SQLite's one connection: a task that holds it and asks for another is refused at once.

The SQLite engine has exactly one connection (db/engine.py says why). A task whose session
holds it (a transaction is open) and then runs a statement in a second session, or
through ``engine.connect()``, would wait for the connection it holds itself: for the
pool's whole timeout (30 s), with every other update and EA request queued behind it,
then fail. PostgreSQL would serve the same code from its larger pool, so the mistake
would only show on the default backend, as a stall.

``SingleConnectionPool`` knows which task holds its connection (the pool's ``checkout``
and ``checkin`` events) and raises :class:`SecondConnectionError` instead of waiting when
that same task asks again. Finish (commit or roll back) the first session's transaction
before opening another, or pass the session along. Another task asking waits its turn
as usual.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import event
from sqlalchemy.pool import AsyncAdaptedQueuePool, PoolProxiedConnection


class SecondConnectionError(RuntimeError):
    """A task asked for the SQLite engine's only connection while holding it."""

    def __init__(self) -> None:
        super().__init__(
            "this task already holds the SQLite engine's only connection (an open "
            "transaction): commit or roll back that session before opening another, or "
            "pass it along (db/single_connection.py)"
        )


class SingleConnectionPool(AsyncAdaptedQueuePool):
    """One connection (``pool_size=1, max_overflow=0``) that knows its holder."""

    def __init__(self, creator: Any, **kw: Any) -> None:
        super().__init__(creator, **kw)
        self.holder: asyncio.Task[Any] | None = None
        event.listen(self, "checkout", self.checked_out)
        event.listen(self, "checkin", self.checked_in)

    def connect(self) -> PoolProxiedConnection:
        task = _current_task()
        if task is not None and task is self.holder:
            raise SecondConnectionError
        return super().connect()

    def checked_out(self, _dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        self.holder = _current_task()

    def checked_in(self, _dbapi_connection: Any, _record: Any) -> None:
        self.holder = None


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no running loop: a connection returned at interpreter exit
        return None
