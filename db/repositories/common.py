"""Portable statements the feature repositories share."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Table, select, tuple_
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


async def stored_report_ids(
    session: AsyncSession, model: Any, keys: Iterable[tuple[int, str]], *, chunk: int = 500
) -> dict[tuple[int, str], tuple[str, str]]:
    """(device pk, report_id) → (public id, content hash) of what ``model`` (a table of
    devices' reports: execution records, position events) stored under those keys."""
    found: dict[tuple[int, str], tuple[str, str]] = {}
    ordered = sorted(set(keys))
    for start in range(0, len(ordered), chunk):
        part = ordered[start : start + chunk]
        query = select(model.device_id, model.report_id, model.public_id, model.content_hash).where(
            tuple_(model.device_id, model.report_id).in_(part)
        )
        for row in (await session.execute(query)).all():
            found[(int(row[0]), str(row[1]))] = (str(row[2]), str(row[3]))
    return found
