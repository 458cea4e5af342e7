"""Devices: a user's active devices, one by id, creation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Row, Table, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Device, User

# Built once: /devices runs this on every call, and building the expression costs more
# than SQLite takes to answer it.
_ACTIVE_FOR_OWNER = (
    select(Device)
    .where(Device.owner_id == bindparam("owner_id"), Device.revoked_at.is_(None))
    .order_by(Device.created_at, Device.id)
)
_DEVICES = cast(Table, Device.__table__)
# The same rows as plain tuples: for a list that is only shown, ORM objects (identity
# map, instance state) cost more than the query. Only the columns of a device's summary
# (bot/domain/devices.py DeviceDTO): its trade settings are read where they are shown,
# and converting their JSON and decimals for every list would cost more than the rest.
LIST_COLUMNS = (
    "id",
    "public_id",
    "owner_id",
    "name",
    "platform",
    "key_version",
    "paused",
    "lot_size",
    "symbol_map",
    "symbol_prefix",
    "symbol_suffix",
    "max_signal_age",
    "created_at",
    "key_rotated_at",
    "last_seen_at",
    "sizing_mode",
    "risk_percent",
    "risk_of",
    "risk_money_minor",
)
_ACTIVE_ROWS_FOR_OWNER = (
    select(*(_DEVICES.c[name] for name in LIST_COLUMNS))
    .where(_DEVICES.c.owner_id == bindparam("owner_id"), _DEVICES.c.revoked_at.is_(None))
    .order_by(_DEVICES.c.created_at, _DEVICES.c.id)
)


class DeviceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def active_for_owner(self, owner_id: int) -> list[Device]:
        result = await self.session.scalars(_ACTIVE_FOR_OWNER, {"owner_id": owner_id})
        return list(result.all())

    async def active_rows_for_owner(self, owner_id: int) -> Sequence[Row[Any]]:
        """Like ``active_for_owner``, as read-only rows with the same attribute names."""
        result = await self.session.execute(_ACTIVE_ROWS_FOR_OWNER, {"owner_id": owner_id})
        return result.all()

    async def get_active(self, owner_id: int, device_pk: int) -> Device | None:
        """The device if it exists, belongs to ``owner_id`` and is not revoked."""
        query = select(Device).where(
            Device.id == device_pk, Device.owner_id == owner_id, Device.revoked_at.is_(None)
        )
        return (await self.session.scalars(query)).first()

    async def add(self, device: Device) -> Device:
        self.session.add(device)
        await self.session.flush()
        return device

    async def lock_owner(self, owner_id: int) -> None:
        """Serialize device changes of one owner (PostgreSQL row lock; SQLite has one writer)."""
        await self.session.execute(select(User.id).where(User.id == owner_id).with_for_update())
