"""Engine and session factory for SQLite (default) and PostgreSQL, with our hooks on them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine
from sqlalchemy.orm import Session

from db.hooks import install_after_commit_hooks
from db.single_connection import SingleConnectionPool
from db.writes import track_session_writes, track_writes

# How long a statement waits for another connection's write lock (a second process or
# ``alembic upgrade`` on the same file) before "database is locked". SQLite's busy handler
# sleeps on aiosqlite's worker thread, so the event loop keeps running meanwhile.
SQLITE_BUSY_TIMEOUT_MS = 5000

_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",  # readers never wait for the writer
    "PRAGMA foreign_keys=ON",
    f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
    # In WAL mode a commit survives a crash of the process; only an OS crash or power
    # loss may drop the last transactions, never corrupt the file.
    "PRAGMA synchronous=NORMAL",
    # SQLite's own page cache is 2 MiB by default: one connection serves the whole
    # process, and with a few hundred thousand instructions and reports the indexes it
    # walks for every batch no longer fit, so each lookup reads pages again. 64 MiB
    # holds them (memory is only taken as pages are read).
    "PRAGMA cache_size=-65536",
    # A checkpoint copies the WAL back into the file and syncs both (the only syncs in
    # synchronous=NORMAL); SQLite runs one in a commit every 1,000 pages (4 MiB) of WAL,
    # which under a stream of reports is several a second, each syncing pages that the
    # next batches change again. Every 10,000 pages (40 MiB of WAL), a hot page is copied
    # once for many batches, and the syncs are a tenth as many.
    "PRAGMA wal_autocheckpoint=10000",
)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in _SQLITE_PRAGMAS:
        cursor.execute(pragma)
    cursor.close()


def create_engine(url: str, *, echo: bool = False, pool_size: int = 10) -> AsyncEngine:
    """Build the async engine: SQLAlchemy's own dialects (``sqlite+aiosqlite``,
    ``postgresql+asyncpg``), with write tracking (db/writes.py) on every connection.

    SQLite gets exactly one connection (pool 1, no overflow): with more, writers wait on
    each other inside SQLite's busy handler and p99 latency explodes (see DESIGN.md).
    A task that holds it and asks for another would wait for itself, so that is refused
    at once (db/single_connection.py).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = _create_async_engine(
            url,
            echo=echo,
            poolclass=SingleConnectionPool,
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
    """Sessions with our hooks: after-commit actions (db/hooks.py) and write tracking
    (db/writes.py). They are installed here, on this factory's own session class, and
    nowhere else: a session made by any other factory has none of them."""

    class HookedSession(Session):
        """This factory's own session class: the listeners below apply to it alone."""

    install_after_commit_hooks(HookedSession)
    track_session_writes(HookedSession)
    return async_sessionmaker(engine, expire_on_commit=False, sync_session_class=HookedSession)


async def ping(engine: AsyncEngine) -> None:
    """One round trip; raises when the database does not answer."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
