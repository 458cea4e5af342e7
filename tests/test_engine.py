"""The engine and session factory (db/engine.py): SQLite's settings and its one connection,
and our session hooks on our sessions only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from db.engine import SQLITE_BUSY_TIMEOUT_MS, create_engine, create_sessionmaker
from db.hooks import after_commit, has_after_commit_hooks
from db.migrate import upgrade
from db.single_connection import SecondConnectionError
from db.writes import session_wrote


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


async def test_sqlite_runs_in_wal_mode_with_foreign_keys_and_a_busy_timeout(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    first, _ = engines
    async with first.connect() as connection:

        async def pragma(name: str) -> Any:
            return (await connection.execute(text(f"PRAGMA {name}"))).scalar_one()

        assert await pragma("journal_mode") == "wal"
        assert await pragma("foreign_keys") == 1
        assert await pragma("busy_timeout") == SQLITE_BUSY_TIMEOUT_MS == 5000
        assert await pragma("synchronous") == 1  # NORMAL


async def hold_the_write_lock(
    engine: AsyncEngine, holding: asyncio.Event, release: asyncio.Event
) -> None:
    """Write, then keep the transaction open (another process in the middle of a write)."""
    async with engine.begin() as connection:
        await connection.execute(text("INSERT INTO fills (who) VALUES ('first')"))
        holding.set()
        await release.wait()


class Ticker:
    """Counts event-loop turns while it runs: proof that nothing blocked the loop."""

    def __init__(self) -> None:
        self.ticks = 0
        self.task = asyncio.create_task(self.run())

    async def run(self) -> None:
        while True:
            await asyncio.sleep(0.005)
            self.ticks += 1

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


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
    assert ticker.ticks >= 5  # ...without stopping the loop
    release.set()
    await asyncio.wait_for(asyncio.gather(holder, writer), timeout=5)
    await ticker.stop()
    assert await _count(second) == 2


async def test_a_lock_held_too_long_fails_the_writer_after_the_busy_timeout(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    first, second = engines

    def shorter_timeout(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=200")
        cursor.close()

    await second.dispose()  # its next connection is a new one, and gets the shorter wait
    event.listen(second.sync_engine, "connect", shorter_timeout)
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


async def test_a_task_holding_sqlites_connection_cannot_wait_for_a_second_one(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    first, _ = engines
    sessionmaker = create_sessionmaker(first)

    async def count_in_a_session() -> int:
        async with sessionmaker() as session:
            return int((await session.execute(text("SELECT count(*) FROM fills"))).scalar_one())

    async with sessionmaker() as session:
        await session.execute(text("INSERT INTO fills (who) VALUES ('held')"))
        # The same task asking again would wait for itself (30 s): refused at once.
        async with asyncio.timeout(1):
            with pytest.raises(SecondConnectionError):
                await count_in_a_session()
            with pytest.raises(SecondConnectionError):
                await _count(first)
        # Another task waits its turn, and gets the connection once the first commits.
        other = asyncio.create_task(count_in_a_session())
        await asyncio.sleep(0.05)
        assert not other.done()
        await session.commit()
        assert await asyncio.wait_for(other, timeout=5) == 1
    # Let go of, the connection serves the same task again.
    assert await count_in_a_session() == 1


async def test_only_sessions_from_our_factory_have_our_hooks(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    first, _ = engines
    ours = create_sessionmaker(first)
    plain = async_sessionmaker(first, expire_on_commit=False)
    # Nothing is installed on SQLAlchemy's Session class itself (as an import would).
    assert not has_after_commit_hooks(Session)

    ran: list[str] = []
    async with ours() as session:
        await session.execute(text("INSERT INTO fills (who) VALUES ('ours')"))
        assert session_wrote(session)
        after_commit(session, lambda: ran.append("committed"))
        assert ran == []
        await session.commit()
        assert ran == ["committed"]
        await session.execute(text("INSERT INTO fills (who) VALUES ('rolled back')"))
        after_commit(session, lambda: ran.append("rolled back"))
        await session.rollback()
    assert ran == ["committed"]

    other: AsyncSession
    async with plain() as other:
        await other.execute(text("INSERT INTO fills (who) VALUES ('plain')"))
        assert not session_wrote(other)  # no write tracking here
        # An action queued on it would never run: refused instead.
        with pytest.raises(RuntimeError, match="create_sessionmaker"):
            after_commit(other, lambda: ran.append("never"))
        await other.commit()
    assert ran == ["committed"]


async def test_stored_report_ids_seek_the_unique_index_not_scan_it(tmp_path: Path) -> None:
    """A lookup of stored reports by (device, report_id) must not read every report ever
    stored: SQLite answers a row-value IN with a scan, the form used here with seeks."""
    from sqlalchemy.dialects import sqlite

    from db.models import ExecutionRecord, PositionEvent
    from db.repositories import common

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'plan.sqlite3'}")
    try:
        await upgrade(engine)
        for model in (ExecutionRecord, PositionEvent):
            async with engine.connect() as connection:
                statement = common.report_id_lookup(model).params(
                    devices=[1, 2], report_ids=["r-000001", "r-000002"]
                )
                sql = statement.compile(
                    dialect=sqlite.dialect(),
                    compile_kwargs={"literal_binds": True, "render_postcompile": True},
                )
                plan = (await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")).all()
            details = " ".join(str(row[-1]) for row in plan)
            assert "SEARCH" in details and "SCAN" not in details, details
    finally:
        await engine.dispose()


async def test_polls_read_the_partial_index_of_pending_instructions(tmp_path: Path) -> None:
    """A poll (and the idle sweep) finds a device's pending instructions through
    ix_instructions_pending, the index that a report on an instruction no longer pending
    leaves alone (migration 0015); none of them scans the instructions."""
    from datetime import UTC, datetime

    from db.repositories.instructions import InstructionRepository

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'plan.sqlite3'}")
    sent: list[tuple[str, Any]] = []

    def remember(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    try:
        await upgrade(engine)
        sessionmaker = create_sessionmaker(engine)
        event.listen(engine.sync_engine, "before_cursor_execute", remember)
        now = datetime.now(UTC)
        async with sessionmaker() as session:
            await InstructionRepository(session).pending(1, now)
            await InstructionRepository(session).idle_devices(now)
        event.remove(engine.sync_engine, "before_cursor_execute", remember)
        queries = [(sql, params) for sql, params in sent if "instructions" in sql]
        assert len(queries) == 2
        async with engine.connect() as connection:
            for sql, params in queries:
                plan = (await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)).all()
                details = " ".join(str(row[-1]) for row in plan)
                assert "ix_instructions_pending" in details, details
                assert "SCAN instructions" not in details, details
    finally:
        await engine.dispose()
