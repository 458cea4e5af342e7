"""Issuing instructions to devices: which device is told what, when (EA_PROTOCOL.md
sections 3 and 5).

An approval (or auto-approve) gives each of the approver's active, unpaused devices an
``open`` with the signal's levels frozen, the symbol through the device's mapping and the
device's lot size, unless the signal is already older than the device's max age. A v1.1
device (its last state says protocol 1.1) gets the fields of 5.2 too, frozen from its
settings (bot/execution/open_plan.py). Before that the device's protections are checked
(bot/execution/protections.py): an open one refuses is stored ``skipped`` with its reason
and never served. A provider's modify, close or cancel gives a follow-up to every device
whose ``open`` was acked or filled. (``close_all`` is the owner's: bot/domain/devices.py
``issue_close_all``.)
Issuers wake the devices' long polls after the commit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.devices import map_symbol
from bot.execution.device_state import PROTOCOL_V11
from bot.execution.open_plan import plan_open
from bot.execution.protections import check_open, trip_notice
from db.hooks import after_commit
from db.ids import sortable_id
from db.models import Signal
from db.repositories.device_states import DeviceStateRepository
from db.repositories.instructions import InstructionRepository

# Wakes the long polls of these devices (DeviceHub.notify for each), after a commit.
DeviceWaker = Callable[[int], None]
# Queues owners' notices (chat id, code, params) in the session's transaction
# (bot/infra/outbox.py Outbox.notice_many).
NoticeSink = Callable[[AsyncSession, Iterable[tuple[int, str, Mapping[str, Any]]]], Awaitable[None]]


def new_instruction_id() -> str:
    return sortable_id("ins_")


# The columns an instruction row leaves NULL unless its action sets them.
_NULLABLE = (
    *("signal_id", "symbol", "side", "order_type", "entry", "stop_loss", "take_profit"),
    *("volume", "fraction", "comment", "expires_at", "skip_reason"),
    *("sizing", "legs", "management", "guards"),
)


def _row(**values: Any) -> dict[str, Any]:
    """An instruction row: every column an action does not set is NULL (one INSERT of many
    rows needs the same keys in each)."""
    row: dict[str, Any] = dict.fromkeys(_NULLABLE)
    row.update(public_id=new_instruction_id(), state="pending")
    row.update(values)
    return row


def _wake_after_commit(session: AsyncSession, wake: DeviceWaker | None, pks: Iterable[int]) -> None:
    targets = sorted(set(pks))
    if wake is None or not targets:
        return

    def notify() -> None:
        for pk in targets:
            wake(pk)

    after_commit(session, notify)


async def issue_opens(
    session: AsyncSession,
    signal: Signal,
    owner_ids: Sequence[int],
    now: datetime,
    wake: DeviceWaker | None,
    *,
    notices: NoticeSink | None = None,
) -> int:
    """An ``open`` for each eligible device of the owners; how many were issued (the
    skipped ones are stored, not counted)."""
    if signal.state != "open" or now >= signal.expires_at:
        return 0
    repo = InstructionRepository(session)
    age = now - signal.issued_at
    devices = await repo.executing_devices(owner_ids)
    states = await DeviceStateRepository(session).for_devices(device.id for device in devices)
    rows: list[dict[str, Any]] = []
    trips: list[tuple[int, str, Mapping[str, Any]]] = []
    for device in devices:
        max_age = timedelta(seconds=device.max_signal_age)
        if age > max_age:
            continue
        symbol = map_symbol(
            signal.symbol, device.symbol_map, device.symbol_prefix, device.symbol_suffix
        )
        state = states.get(device.id)
        v11 = state if state is not None and state.protocol == PROTOCOL_V11 else None
        plan = plan_open(device, v11, signal, symbol) if v11 is not None else None
        legs = len(plan.legs) if plan is not None and plan.legs else 1
        skip, trip = await check_open(session, device, v11, signal.symbol, now, new_positions=legs)
        if trip is not None:
            trips.append(trip_notice(trip))
        row = _row(
            signal_id=signal.id,
            device_id=device.id,
            action="open",
            symbol=symbol,
            side=signal.side,
            order_type=signal.order_type,
            entry=signal.entry,
            stop_loss=signal.stop_loss,
            take_profit=list(signal.take_profit),
            volume=device.lot_size,
            comment=signal.comment,
            issued_at=now,
            # The EA may skip it after this: the approval window or the device's max age.
            expires_at=min(signal.expires_at, signal.issued_at + max_age),
            state="pending" if skip is None else "skipped",
            skip_reason=None if skip is None else skip.value,
        )
        if plan is not None:
            row.update(
                volume=plan.volume,
                sizing=plan.sizing,
                legs=plan.legs,
                management=plan.management,
                guards=plan.guards,
            )
        rows.append(row)
    await repo.add(rows)
    if trips and notices is not None:
        await notices(session, trips)
    issued = [int(row["device_id"]) for row in rows if row["state"] == "pending"]
    _wake_after_commit(session, wake, issued)
    return len(issued)


async def issue_followups(
    session: AsyncSession,
    signal: Signal,
    action: str,
    now: datetime,
    wake: DeviceWaker | None,
    *,
    fraction: Decimal | None = None,
) -> int:
    """A ``modify`` / ``close`` / ``cancel`` for every device that opened the signal."""
    repo = InstructionRepository(session)
    modify = action == "modify"
    rows: list[dict[str, Any]] = [
        _row(
            signal_id=signal.id,
            device_id=device_pk,
            action=action,
            symbol=symbol,
            stop_loss=signal.stop_loss if modify else None,
            take_profit=list(signal.take_profit) if modify else None,
            fraction=fraction if action == "close" else None,
            issued_at=now,
        )
        for device_pk, symbol in await repo.opened(signal.id)
    ]
    await repo.add(rows)
    _wake_after_commit(session, wake, (int(row["device_id"]) for row in rows))
    return len(rows)
