"""SQLite through aiosqlite's API, but executed on the event loop's own thread.

aiosqlite runs every call on a worker thread and hands the result back through the
event loop: a cursor, an execute, a fetch and a commit are four thread hops, each a
queue put, a wake-up of the loop and a future. For SQLite in WAL mode, with the one
connection this process has (pool 1), the statements themselves take microseconds: the
hops cost ten times more than the work (DESIGN.md: about 0.5 ms of CPU per transaction).
This connection keeps aiosqlite's interface, so SQLAlchemy's ``sqlite+aiosqlite``
dialect drives it unchanged, and runs each call inline.

What that trades: a statement now holds the event loop while SQLite works. Our queries
are indexed lookups and small writes (tens of microseconds); a commit in WAL mode with
``synchronous=NORMAL`` does not wait for the disk. The one wait that can be long is
another connection holding the write lock (a second engine or process on the same file,
``alembic upgrade`` while the bot runs). SQLite's own busy handler would sleep inside
the call and so stop the whole loop, including the other holder if it lives in this
process. So the connection runs with ``busy_timeout=0`` and waits here instead: a call
that finds the database busy is retried after an ``asyncio.sleep`` (1 ms, doubling to
50 ms) until ``BUSY_TIMEOUT_S`` has passed, then the error is raised as before.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Generator
from functools import partial
from typing import Any

import aiosqlite

BUSY_TIMEOUT_S = 5.0
_FIRST_BACKOFF_S = 0.001
_MAX_BACKOFF_S = 0.05
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
_SQLITE_BUSY_SNAPSHOT = 5 | (2 << 8)  # a stale read snapshot: waiting cannot help


def is_busy(error: sqlite3.OperationalError) -> bool:
    """True for "database is locked/busy", which another connection will release."""
    code = getattr(error, "sqlite_errorcode", None)
    if code is None or code == _SQLITE_BUSY_SNAPSHOT:
        return False
    return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)


class _InlineQueue:
    """Stands in for aiosqlite's queue to its worker thread: runs each call at once.

    SQLAlchemy's dialect puts its isolation-level change straight on that queue.
    """

    def put_nowait(self, item: tuple[asyncio.Future[Any] | None, Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except BaseException as exc:
            if future is not None and not future.done():
                future.set_exception(exc)
        else:
            if future is not None and not future.done():
                future.set_result(result)


class InlineConnection(aiosqlite.Connection):
    """An ``aiosqlite.Connection`` whose calls run on the caller's thread."""

    def __init__(self, connector: Callable[[], sqlite3.Connection], iter_chunk_size: int) -> None:
        super().__init__(connector, iter_chunk_size)
        self._tx = _InlineQueue()  # type: ignore[assignment]

    def __await__(self) -> Generator[Any, None, InlineConnection]:
        return self._connect_inline().__await__()

    async def _connect_inline(self) -> InlineConnection:
        if self._connection is None:
            self._connection = self._connector()
        return self

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        try:
            return fn(*args, **kwargs)
        except sqlite3.OperationalError as error:
            if not is_busy(error):
                raise
        # Busy: the statement did not run. Let the holder (maybe this loop's) finish.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BUSY_TIMEOUT_S
        backoff = _FIRST_BACKOFF_S
        while True:
            await asyncio.sleep(backoff)
            if not self._running or not self._connection:
                raise ValueError("Connection closed")
            try:
                return fn(*args, **kwargs)
            except sqlite3.OperationalError as error:
                if not is_busy(error) or loop.time() >= deadline:
                    raise
            backoff = min(backoff * 2, _MAX_BACKOFF_S)

    def stop(self) -> None:
        self._running = False
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def inline_creator(database: str, **kwargs: Any) -> Callable[[], Any]:
    """An ``async_creator`` for ``create_async_engine``: one inline connection per call."""

    async def create() -> InlineConnection:
        # The connection is only ever used from the event loop's thread; SQLAlchemy's pool
        # may close it from another (garbage collection), as with aiosqlite.
        connector = partial(sqlite3.connect, database, check_same_thread=False, **kwargs)
        return await InlineConnection(connector, iter_chunk_size=64)

    return create
