"""Last-seen times of devices, written at most once per device per 5 s.

Every signed request marks its device as seen (in memory, no I/O). A background task
writes the marks of all devices in one transaction every :data:`FLUSH_INTERVAL_S`
seconds, so a device polling many times a second costs one UPDATE per interval, and a
thousand devices cost one transaction, not a thousand. /devices reads the freshest value
through :meth:`DeviceActivity.last_seen`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, or_, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import Device
from db.types import UTCDateTime

logger = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 5.0

_table = cast(Table, Device.__table__)
_UPDATE = (
    update(_table)
    .where(_table.c.id == bindparam("device_pk"))
    .where(
        or_(
            _table.c.last_seen_at.is_(None),
            _table.c.last_seen_at < bindparam("seen_at", type_=UTCDateTime()),
        )
    )
    .values(last_seen_at=bindparam("seen_at", type_=UTCDateTime()))
)


class DeviceActivity:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        interval: float = FLUSH_INTERVAL_S,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._interval = interval
        self._unsaved: dict[int, datetime] = {}
        self._recent: dict[int, datetime] = {}
        self._task: asyncio.Task[None] | None = None

    def seen(self, device_pk: int, at: datetime) -> None:
        self._unsaved[device_pk] = at
        self._recent[device_pk] = at

    def last_seen(self, device_pk: int, stored: datetime | None) -> datetime | None:
        """The later of the stored time and what this process saw since."""
        recent = self._recent.get(device_pk)
        if recent is None or (stored is not None and stored >= recent):
            return stored
        return recent

    async def flush(self) -> int:
        """Write what is unsaved in one transaction; return how many devices it covered."""
        if not self._unsaved:
            return 0
        batch, self._unsaved = self._unsaved, {}
        params = [{"device_pk": pk, "seen_at": at} for pk, at in batch.items()]
        try:
            async with self._sessionmaker.begin() as session:
                await session.execute(_UPDATE, params)
        except Exception as exc:
            logger.warning("last-seen times not saved, retrying later: %s", type(exc).__name__)
            for pk, at in batch.items():
                self._unsaved.setdefault(pk, at)
            return 0
        # What is stored now is read from the database again; keep memory bounded.
        for pk, at in batch.items():
            if self._recent.get(pk) == at:
                del self._recent[pk]
        return len(batch)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="device-activity")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.flush()
