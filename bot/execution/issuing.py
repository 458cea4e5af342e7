"""Issuing instructions to devices: which device is told what, when (EA_PROTOCOL.md section 3).

An approval (or auto-approve) gives each of the approver's active, unpaused devices an
``open`` with the signal's levels frozen, the symbol through the device's mapping and the
device's lot size, unless the signal is already older than the device's max age. A
provider's modify, close or cancel gives a follow-up to every device whose ``open`` was
acked or filled. Issuers wake the devices' long polls after the commit.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.devices import map_symbol
from db.hooks import after_commit
from db.models import Signal
from db.repositories.instructions import InstructionRepository

# Wakes the long polls of these devices (DeviceHub.notify for each), after a commit.
DeviceWaker = Callable[[int], None]


def new_instruction_id() -> str:
    return f"ins_{secrets.token_urlsafe(12)}"


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
) -> int:
    """An ``open`` for each eligible device of the owners; how many were issued."""
    if signal.state != "open" or now >= signal.expires_at:
        return 0
    repo = InstructionRepository(session)
    age = now - signal.issued_at
    rows: list[dict[str, Any]] = []
    for device in await repo.executing_devices(owner_ids):
        max_age = timedelta(seconds=device.max_signal_age)
        if age > max_age:
            continue
        rows.append(
            {
                "public_id": new_instruction_id(),
                "signal_id": signal.id,
                "device_id": device.id,
                "action": "open",
                "symbol": map_symbol(
                    signal.symbol, device.symbol_map, device.symbol_prefix, device.symbol_suffix
                ),
                "side": signal.side,
                "order_type": signal.order_type,
                "entry": signal.entry,
                "stop_loss": signal.stop_loss,
                "take_profit": list(signal.take_profit),
                "volume": device.lot_size,
                "fraction": None,
                "comment": signal.comment,
                "issued_at": now,
                # The EA may skip it after this: the approval window or the device's max age.
                "expires_at": min(signal.expires_at, signal.issued_at + max_age),
                "state": "pending",
            }
        )
    await repo.add(rows)
    _wake_after_commit(session, wake, (int(row["device_id"]) for row in rows))
    return len(rows)


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
        {
            "public_id": new_instruction_id(),
            "signal_id": signal.id,
            "device_id": device_pk,
            "action": action,
            "symbol": symbol,
            "side": None,
            "order_type": None,
            "entry": None,
            "stop_loss": signal.stop_loss if modify else None,
            "take_profit": list(signal.take_profit) if modify else None,
            "volume": None,
            "fraction": fraction if action == "close" else None,
            "comment": None,
            "issued_at": now,
            "expires_at": None,
            "state": "pending",
        }
        for device_pk, symbol in await repo.opened(signal.id)
    ]
    await repo.add(rows)
    _wake_after_commit(session, wake, (int(row["device_id"]) for row in rows))
    return len(rows)
