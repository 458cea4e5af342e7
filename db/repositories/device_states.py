"""Devices' latest states (EA_PROTOCOL 5.1): replace one, read them; queries, never a commit."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Device, DeviceState
from db.repositories.common import dialect_insert
from db.repositories.signals import chunks

_TABLE = cast(Table, DeviceState.__table__)


class DeviceStateRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def replace(self, values: dict[str, Any]) -> None:
        """Insert the device's state, or overwrite the one stored (one statement, so two
        states of one device at the same moment cannot fail on the primary key)."""
        statement = dialect_insert(self.session, _TABLE).values(**values)
        changed = {key: statement.excluded[key] for key in values if key != "device_id"}
        await self.session.execute(
            statement.on_conflict_do_update(index_elements=["device_id"], set_=changed)
        )

    async def get(self, device_pk: int) -> DeviceState | None:
        return await self.session.get(DeviceState, device_pk)

    async def for_devices(self, device_pks: Iterable[int]) -> dict[int, DeviceState]:
        """The stored states of these devices, by device pk (a device without one is absent)."""
        found: dict[int, DeviceState] = {}
        for part in chunks(sorted(set(device_pks))):
            query = select(DeviceState).where(DeviceState.device_id.in_(part))
            for state in (await self.session.scalars(query)).all():
                found[state.device_id] = state
        return found

    async def executing_with_state(
        self, owner_ids: Iterable[int], protocol: str
    ) -> list[tuple[Device, DeviceState]]:
        """The owners' devices that may be sent an open (not revoked, not paused) whose
        last state speaks ``protocol``, with that state: one query per chunk of owners."""
        found: list[tuple[Device, DeviceState]] = []
        for part in chunks(sorted(set(owner_ids))):
            query = (
                select(Device, DeviceState)
                .join(DeviceState, DeviceState.device_id == Device.id)
                .where(
                    Device.owner_id.in_(part),
                    Device.revoked_at.is_(None),
                    Device.paused.is_(False),
                    DeviceState.protocol == protocol,
                )
                .order_by(Device.id)
            )
            found.extend((row[0], row[1]) for row in (await self.session.execute(query)).all())
        return found
