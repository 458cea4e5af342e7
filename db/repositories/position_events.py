"""Position events of devices (EA_PROTOCOL 5.4) and the figures protections read from them;
queries only, never a commit."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, and_, func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import (
    Approval,
    Device,
    DeviceState,
    ExecutionRecord,
    Instruction,
    PositionEvent,
    UserSettings,
)
from db.repositories.common import stored_report_ids
from db.repositories.signals import chunks

_INSERT_EVENT = insert(cast(Table, PositionEvent.__table__))


@dataclass(frozen=True, slots=True)
class EventTarget:
    """The instruction an event names, with what storing and telling it needs (whether it
    is an ``open`` of the reporting device is the caller's check)."""

    instruction_pk: int
    device_pk: int
    signal_pk: int | None
    action: str
    symbol: str | None
    side: str | None
    device_name: str
    owner_id: int
    approval_id: int | None
    notify_closes: bool
    currency: str | None


class PositionEventRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def targets(self, instruction_ids: Iterable[str]) -> dict[str, EventTarget]:
        """The instructions by public id, with their device, owner, approval and currency."""
        found: dict[str, EventTarget] = {}
        for part in chunks(sorted(set(instruction_ids))):
            query = (
                select(
                    Instruction.public_id,
                    Instruction.id,
                    Instruction.device_id,
                    Instruction.signal_id,
                    Instruction.action,
                    Instruction.symbol,
                    Instruction.side,
                    Device.name,
                    Device.owner_id,
                    Approval.id,
                    UserSettings.notify_closes,
                    DeviceState.currency,
                )
                .join(Device, Device.id == Instruction.device_id)
                .outerjoin(
                    Approval,
                    and_(
                        Approval.signal_id == Instruction.signal_id,
                        Approval.user_id == Device.owner_id,
                    ),
                )
                .outerjoin(UserSettings, UserSettings.user_id == Device.owner_id)
                .outerjoin(DeviceState, DeviceState.device_id == Device.id)
                .where(Instruction.public_id.in_(part))
            )
            for row in (await self.session.execute(query)).all():
                found[str(row[0])] = EventTarget(
                    instruction_pk=int(row[1]),
                    device_pk=int(row[2]),
                    signal_pk=row[3],
                    action=str(row[4]),
                    symbol=row[5],
                    side=row[6],
                    device_name=str(row[7]),
                    owner_id=int(row[8]),
                    approval_id=row[9],
                    notify_closes=True if row[10] is None else bool(row[10]),
                    currency=row[11],
                )
        return found

    async def by_report_id(
        self, keys: Iterable[tuple[int, str]]
    ) -> dict[tuple[int, str], tuple[str, str]]:
        """(device pk, report_id) → (event public id, content hash) of stored events."""
        return await stored_report_ids(self.session, PositionEvent, keys)

    async def add(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            await self.session.execute(_INSERT_EVENT, list(rows))

    async def for_signals(self, signal_pks: Sequence[int]) -> list[PositionEvent]:
        """Every event on these signals, in the order they arrived."""
        found: list[PositionEvent] = []
        for part in chunks(sorted(set(signal_pks))):
            query = (
                select(PositionEvent)
                .where(PositionEvent.signal_id.in_(part))
                .order_by(PositionEvent.id)
            )
            found.extend((await self.session.scalars(query)).all())
        return found

    async def closed_profit(self, device_pk: int, since: datetime) -> Decimal:
        """What the device's positions closed since ``since`` made: closed events, and the
        fills of the ``close`` instructions it was sent (the parts the provider closed)."""
        events = select(func.coalesce(func.sum(PositionEvent.profit), 0)).where(
            PositionEvent.device_id == device_pk,
            PositionEvent.event == "closed",
            PositionEvent.executed_at >= since,
        )
        fills = (
            select(func.coalesce(func.sum(ExecutionRecord.profit), 0))
            .join(Instruction, Instruction.id == ExecutionRecord.instruction_id)
            .where(
                ExecutionRecord.device_id == device_pk,
                ExecutionRecord.kind == "fill",
                Instruction.action == "close",
                or_(
                    ExecutionRecord.executed_at >= since,
                    and_(
                        ExecutionRecord.executed_at.is_(None), ExecutionRecord.received_at >= since
                    ),
                ),
            )
        )
        total = Decimal(0)
        for query in (events, fills):
            total += Decimal(str(await self.session.scalar(query) or 0))
        return total

    async def closed_opens(self, device_pk: int, instruction_pks: Sequence[int]) -> set[int]:
        """Of these opens of the device, those with a closed event (a position gone)."""
        if not instruction_pks:
            return set()
        query = select(PositionEvent.instruction_id).where(
            PositionEvent.device_id == device_pk,
            PositionEvent.event == "closed",
            PositionEvent.instruction_id.in_(list(instruction_pks)),
        )
        return {int(pk) for pk in (await self.session.scalars(query)).all()}
