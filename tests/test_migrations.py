"""Migrations go up, down and up again, and agree with the models."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from db.base import Base
from db.engine import create_engine
from tests.conftest import downgrade, upgrade


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "render_as_batch": True}
    )
    return list(compare_metadata(context, Base.metadata))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def test_upgrade_downgrade_upgrade_matches_models(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await downgrade(engine, "base")
        async with engine.connect() as connection:
            assert await connection.run_sync(_tables) <= {"alembic_version"}
        await upgrade(engine, "head")
        async with engine.connect() as connection:
            tables = await connection.run_sync(_tables)
            assert {"users", "processed_updates"} <= tables
            assert set(Base.metadata.tables) <= tables
            assert await connection.run_sync(_diff) == []
    finally:
        await engine.dispose()
