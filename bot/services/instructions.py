"""What devices are told to do, and what they report back: the query points of the EA views.

The views of bot/web/ea.py call only these functions, inside a short transaction of their
own. Instructions are created by the signal loop (approvals and provider changes, issue
#4), which has not landed: there is no instruction table yet, so nothing is ever pending,
every ``instruction_id`` in a report is unknown (404 unknown_instruction) and no device has
a signal to ask about (404 unknown_signal). The signal loop replaces the bodies below with
its queries and keeps the signatures; it must call ``container.device_hub.notify(pk)``
after each commit that makes something pending for a device (db.hooks.after_commit).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.errors import ConflictError, NotFoundError
from bot.services.device_keys import DeviceIdentity
from bot.services.reports import Report


class UnknownInstructionError(NotFoundError):
    """404 unknown_instruction: no such instruction, or not addressed to this device."""


class UnknownSignalError(NotFoundError):
    """404 unknown_signal: this device never had an instruction for that signal."""


class ReportConflictError(ConflictError):
    """409 report_conflict: the report_id was used before with other content."""


@dataclass(frozen=True, slots=True)
class ReportReceipt:
    id: str
    duplicate: bool


async def pending_instructions(
    session: AsyncSession, device: DeviceIdentity
) -> list[dict[str, Any]]:
    """The device's pending instructions in their wire form (section 3), oldest first."""
    return []


async def record_report(
    session: AsyncSession, device: DeviceIdentity, report: Report
) -> ReportReceipt:
    """Store a report on one of the device's instructions (idempotent by report_id)."""
    raise UnknownInstructionError(
        f"Instruction {report.instruction_id} is unknown or not addressed to this device."
    )


async def signal_records(
    session: AsyncSession, device: DeviceIdentity, signal_id: str
) -> list[dict[str, Any]]:
    """This device's own reports on the signal's instructions, oldest first."""
    raise UnknownSignalError(f"This device has no instructions for signal {signal_id}.")
