"""Portable statements the feature repositories share."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Table, bindparam, select
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
    session: AsyncSession, model: Any, keys: Iterable[tuple[int, str]], *, chunk: int = 64
) -> dict[tuple[int, str], tuple[str, str]]:
    """(device pk, report_id) → (public id, content hash) of what ``model`` (a table of
    devices' reports: execution records, position events) stored under those keys.

    Asked as ``device_id IN (...) AND report_id IN (...)``, which SQLite answers with seeks
    on the (device_id, report_id) unique index, then narrowed to the exact pairs here: a
    row-value ``(device_id, report_id) IN (...)`` makes SQLite scan the whole index, a cost
    that grows with every report ever stored. Chunks keep the seeks (devices × report ids
    of a chunk) small."""
    statement = report_id_lookup(model)
    wanted = set(keys)
    found: dict[tuple[int, str], tuple[str, str]] = {}
    ordered = sorted(wanted)
    for start in range(0, len(ordered), chunk):
        part = ordered[start : start + chunk]
        params = {
            "devices": sorted({device for device, _ in part}),
            "report_ids": sorted({report_id for _, report_id in part}),
        }
        for row in (await session.execute(statement, params)).all():
            key = (int(row[0]), str(row[1]))
            if key in wanted:
                found[key] = (str(row[2]), str(row[3]))
    return found


@functools.cache
def report_id_lookup(model: Any) -> Any:
    """The statement of :func:`stored_report_ids` for ``model``, built once (parameters
    ``devices`` and ``report_ids``)."""
    return select(model.device_id, model.report_id, model.public_id, model.content_hash).where(
        model.device_id.in_(bindparam("devices", expanding=True)),
        model.report_id.in_(bindparam("report_ids", expanding=True)),
    )
