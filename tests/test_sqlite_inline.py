"""SQLite on the loop's thread: no worker threads, and a busy database waits without
stopping the event loop (db/sqlite_inline.py)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from db import sqlite_inline
from db.engine import create_engine


@pytest.fixture
async def engines(tmp_path: Path) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    """Two engines on one file, as two instances (or the bot and a script) would be."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'shared.sqlite3'}"
    first, second = create_engine(url), create_engine(url)
    async with first.begin() as connection:
        await connection.execute(text("CREATE TABLE fills (id INTEGER PRIMARY KEY, who TEXT)"))
    try:
        yield first, second
    finally:
        await first.dispose()
        await second.dispose()


async def _count(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text("SELECT count(*) FROM fills"))).scalar_one())


async def hold_the_write_lock(
    engine: AsyncEngine, holding: asyncio.Event, release: asyncio.Event
) -> None:
    """Write, then keep the transaction open (a handler awaiting the Bot API in it)."""
    async with engine.begin() as connection:
        await connection.execute(text("INSERT INTO fills (who) VALUES ('first')"))
        holding.set()
        await release.wait()


class Ticker:
    """Counts event-loop turns while it runs: proof that nothing blocked the loop."""

    def __init__(self) -> None:
        self.ticks = 0
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(0.005)
            self.ticks += 1

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def test_statements_run_without_worker_threads(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    first, _ = engines
    threads = threading.active_count()
    for n in range(20):
        async with first.begin() as connection:
            await connection.execute(text("INSERT INTO fills (who) VALUES (:w)"), {"w": f"a{n}"})
    assert await _count(first) == 20
    assert threading.active_count() == threads


async def test_a_writer_waits_for_another_connections_lock_while_the_loop_runs(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    first, second = engines
    holding, release = asyncio.Event(), asyncio.Event()

    async def write_meanwhile() -> None:
        await holding.wait()
        async with second.begin() as connection:
            await connection.execute(text("INSERT INTO fills (who) VALUES ('second')"))

    ticker = Ticker()
    holder = asyncio.create_task(hold_the_write_lock(first, holding, release))
    writer = asyncio.create_task(write_meanwhile())
    await holding.wait()
    await asyncio.sleep(0.1)
    assert not writer.done()  # waiting for the lock...
    ticks_while_waiting = ticker.ticks
    assert ticks_while_waiting >= 5  # ...without stopping the loop
    release.set()
    await asyncio.wait_for(asyncio.gather(holder, writer), timeout=5)
    await ticker.stop()
    assert await _count(second) == 2


async def test_a_lock_held_too_long_fails_the_writer_after_the_busy_timeout(
    engines: tuple[AsyncEngine, AsyncEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_inline, "BUSY_TIMEOUT_S", 0.2)
    first, second = engines
    holding, release = asyncio.Event(), asyncio.Event()
    holder = asyncio.create_task(hold_the_write_lock(first, holding, release))
    await holding.wait()
    ticker = Ticker()
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(OperationalError, match="database is locked"):
        async with second.begin() as connection:
            await connection.execute(text("INSERT INTO fills (who) VALUES ('second')"))
    waited = loop.time() - started
    await ticker.stop()
    assert 0.2 <= waited < 2
    assert ticker.ticks >= 10
    release.set()
    await holder
    assert await _count(second) == 1  # the holder's row; the failed write left nothing


def test_only_busy_errors_are_waited_for() -> None:
    import sqlite3

    def error(code: int) -> sqlite3.OperationalError:
        exc = sqlite3.OperationalError("x")
        exc.sqlite_errorcode = code
        return exc

    assert sqlite_inline.is_busy(error(5))  # SQLITE_BUSY
    assert sqlite_inline.is_busy(error(6))  # SQLITE_LOCKED
    assert sqlite_inline.is_busy(error(5 | (1 << 8)))  # SQLITE_BUSY_RECOVERY
    assert not sqlite_inline.is_busy(error(5 | (2 << 8)))  # SQLITE_BUSY_SNAPSHOT
    assert not sqlite_inline.is_busy(error(1))  # SQLITE_ERROR (bad SQL)
    assert not sqlite_inline.is_busy(sqlite3.OperationalError("no code"))
