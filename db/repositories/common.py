"""Portable statements the feature repositories share."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase


def dialect_insert(session: AsyncSession, table: Table) -> postgresql.Insert | sqlite.Insert:
    """INSERT with ``on_conflict_do_nothing`` / ``on_conflict_do_update``, for the session's
    database (both dialects spell ``INSERT ... ON CONFLICT`` the same way)."""
    dialect = session.get_bind().dialect.name
    return postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)


async def insert_ignoring_conflict(
    session: AsyncSession, model: type[DeclarativeBase], values: dict[str, Any]
) -> bool:
    """INSERT the row unless it breaks a unique constraint; True when it was inserted.

    ON CONFLICT DO NOTHING keeps the surrounding transaction usable (a failed INSERT would
    abort it on PostgreSQL) and is race-free: of two concurrent inserts one waits for the
    other's commit and then does nothing.
    """
    table = model.__table__
    assert isinstance(table, Table)
    statement = dialect_insert(session, table).values(**values).on_conflict_do_nothing()
    result = await session.execute(statement)
    return bool(getattr(result, "rowcount", 0) == 1)
