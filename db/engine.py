"""Engine and session factory for SQLite (default) and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from db.sqlite_inline import inline_creator
from db.writes import track_writes


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # No waiting inside SQLite: it would stop the event loop (db/sqlite_inline.py waits).
    cursor.execute("PRAGMA busy_timeout=0")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_creator(parsed: URL) -> Callable[[], Any]:
    """Connections on the loop's thread, opened as the pysqlite dialect would open them."""
    from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

    args, kwargs = SQLiteDialect_pysqlite().create_connect_args(parsed)
    kwargs.pop("check_same_thread", None)  # inline_creator sets it
    return inline_creator(str(args[0]), **kwargs)


def create_engine(url: str, *, echo: bool = False, pool_size: int = 10) -> AsyncEngine:
    """Build the async engine.

    SQLite gets exactly one connection (pool 1, no overflow): with more, writers wait on
    each other inside SQLite's busy handler and p99 latency explodes (see DESIGN.md).
    Code must therefore never open a second session while holding one in the same task.
    Its statements run on the event loop's thread (db/sqlite_inline.py).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = _create_async_engine(
            url,
            echo=echo,
            async_creator=_sqlite_creator(parsed),
            poolclass=AsyncAdaptedQueuePool,
            pool_size=1,
            max_overflow=0,
            pool_timeout=30,
        )
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
    else:
        engine = _create_async_engine(
            url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
        )
    track_writes(engine)
    return engine


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def ping(engine: AsyncEngine) -> None:
    """One round trip; raises when the database does not answer."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
