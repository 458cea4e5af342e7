"""What devices and owners read about instructions: the JSON of pending instructions
(EA_PROTOCOL.md section 3), the status of a signal's reports, and each device's line on
the owner's signal message.

An instruction is pending until its device reports on it. An ``open`` is served only
while its signal is open and unexpired, the device is not paused and the signal is not
older than the device's max age (checked again at every delivery).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.devices import map_symbol
from bot.domain.errors import ErrorCode, NotFoundError
from bot.domain.signal_dto import DeviceLine, PositionResult
from bot.domain.signal_rules import decimal_or_none, format_decimal, wire_time
from bot.execution.device_keys import DeviceIdentity
from bot.execution.device_state import PROTOCOL_V11
from bot.execution.open_plan import plan_open
from bot.execution.reports import ReportKind
from db.models import ExecutionRecord
from db.repositories.device_states import DeviceStateRepository
from db.repositories.instructions import InstructionRepository, ReportRow
from db.repositories.position_events import PositionEventRepository
from db.repositories.signals import SignalRepository

# Closed positions shown on a device's line at most (the latest), e.g. one per leg.
MAX_SHOWN_CLOSES = 10


class UnknownSignalError(NotFoundError):
    """404 unknown_signal: this device never had an instruction for that signal."""

    def __init__(self, message: str) -> None:  # the side server's answer, in English
        super().__init__(ErrorCode.UNKNOWN_SIGNAL, message=message)
        self.message = message


async def pending_instructions(
    session: AsyncSession, device: DeviceIdentity, now: datetime
) -> list[dict[str, Any]]:
    """The device's pending instructions in their wire form (section 3), oldest first."""
    served: list[dict[str, Any]] = []
    for row in await InstructionRepository(session).pending(device.pk, now):
        instruction = row.instruction
        if (
            instruction.action == "open"
            and row.signal_issued_at is not None
            and now - row.signal_issued_at > timedelta(seconds=row.max_signal_age)
        ):
            continue
        served.append(_wire(instruction, row.signal_public_id))
    return served


async def idle_devices(session: AsyncSession, now: datetime) -> set[int]:
    """The active devices that :func:`pending_instructions` would find nothing for (an
    ``open`` past the device's max age aside), for the hub's start-up."""
    return await InstructionRepository(session).idle_devices(now)


def _wire(instruction: Any, signal_public_id: str | None) -> dict[str, Any]:
    if instruction.action == "close_all":  # 5.3: no signal, no symbol
        return {
            "id": instruction.public_id,
            "action": "close_all",
            "issued_at": wire_time(instruction.issued_at),
        }
    head: dict[str, Any] = {
        "id": instruction.public_id,
        "signal_id": signal_public_id,
        "action": instruction.action,
        "symbol": instruction.symbol,
    }
    if instruction.action == "open":
        head.update(
            side=instruction.side,
            order_type=instruction.order_type,
            entry=decimal_or_none(instruction.entry),
            stop_loss=decimal_or_none(instruction.stop_loss),
            take_profit=[format_decimal(Decimal(tp)) for tp in instruction.take_profit or ()],
            volume=decimal_or_none(instruction.volume),
            comment=instruction.comment,
            issued_at=wire_time(instruction.issued_at),
            expires_at=wire_time(instruction.expires_at),
        )
        if instruction.sizing is not None:  # a v1.1 open (5.2); a v1 device's has none
            head["sizing"] = instruction.sizing
            for name in ("legs", "management", "guards"):
                if getattr(instruction, name) is not None:
                    head[name] = getattr(instruction, name)
    elif instruction.action == "modify":
        head.update(
            stop_loss=decimal_or_none(instruction.stop_loss),
            take_profit=[format_decimal(Decimal(tp)) for tp in instruction.take_profit or ()],
            issued_at=wire_time(instruction.issued_at),
        )
    elif instruction.action == "close":
        head.update(
            fraction=decimal_or_none(instruction.fraction),
            issued_at=wire_time(instruction.issued_at),
        )
    else:
        head.update(issued_at=wire_time(instruction.issued_at))
    return head


async def signal_records(
    session: AsyncSession, device: DeviceIdentity, signal_id: str
) -> list[dict[str, Any]]:
    """This device's own reports on the signal's instructions, oldest first."""
    repo = InstructionRepository(session)
    signal_pk = await repo.device_had_signal(device.pk, signal_id)
    if signal_pk is None:
        raise UnknownSignalError(f"This device has no instructions for signal {signal_id}.")
    return [
        _record_json(record, instruction_id, action)
        for record, instruction_id, action in await repo.records(device.pk, signal_pk)
    ]


def _record_json(record: ExecutionRecord, instruction_id: str, action: str) -> dict[str, Any]:
    """One record of the status answer; ``leg`` only for a leg's fill (v1 answers are as
    they were)."""
    shown: dict[str, Any] = {
        "id": record.public_id,
        "report_id": record.report_id,
        "kind": record.kind,
        "instruction_id": instruction_id,
        "action": action,
        "ticket": record.ticket,
        "price": decimal_or_none(record.price),
        "volume": decimal_or_none(record.volume),
        "profit": decimal_or_none(record.profit),
        "code": record.code,
        "message": record.message,
        "executed_at": None if record.executed_at is None else wire_time(record.executed_at),
        "received_at": wire_time(record.received_at),
    }
    if record.leg is not None:
        shown["leg"] = record.leg
    return shown


async def device_lines(
    session: AsyncSession, pairs: Sequence[tuple[int, int]]
) -> Mapping[tuple[int, int], Sequence[DeviceLine]]:
    """Each (user, signal): one line per device of the user that was sent the signal,
    with the state its reports left it in and, for a v1.1 device, what its position
    events said (SignalPublisher's ``device_lines`` loader)."""
    lines: dict[tuple[int, int], dict[int, DeviceLine]] = {}
    rows = await InstructionRepository(session).report_rows(pairs)
    # Reports in the order they arrived, across each device's instructions.
    rows.sort(key=lambda row: (row.device_pk, row.record_pk or 0))
    opens: dict[int, ReportRow] = {}
    fill_prices: dict[int, Decimal] = {}
    for row in rows:
        devices = lines.setdefault((row.owner_id, row.signal_pk), {})
        current = devices.get(row.device_pk)
        if current is None:
            current = DeviceLine(name=row.device_name, state="waiting")
        devices[row.device_pk] = _advance(current, row)
        if row.action == "open":
            opens.setdefault(row.instruction_pk, row)
            if row.kind == ReportKind.FILL and row.price is not None:
                fill_prices.setdefault(row.instruction_pk, row.price)
    if opens:
        await _add_results(session, lines, opens, fill_prices)
    await _add_previews(session, lines, [pair for pair in pairs if pair not in lines])
    return {key: list(devices.values()) for key, devices in lines.items()}


async def _add_previews(
    session: AsyncSession,
    lines: dict[tuple[int, int], dict[int, DeviceLine]],
    undecided: Sequence[tuple[int, int]],
) -> None:
    """For a user none of whose devices was sent the signal yet: how each of their v1.1
    devices would size it (shown while the approval is open: bot/chat/texts/signals.py)."""
    if not undecided:
        return
    owners = sorted({owner for owner, _ in undecided})
    found = await DeviceStateRepository(session).executing_with_state(owners, PROTOCOL_V11)
    if not found:
        return
    states = {device.id: state for device, state in found}
    by_owner: dict[int, list[Any]] = {}
    for device, _state in found:
        by_owner.setdefault(device.owner_id, []).append(device)
    wanted = [(owner, signal_pk) for owner, signal_pk in undecided if owner in by_owner]
    if not wanted:
        return
    signals = {
        signal.id: signal for signal in await SignalRepository(session).many(pk for _, pk in wanted)
    }
    for owner, signal_pk in wanted:
        signal = signals.get(signal_pk)
        if signal is None:
            continue
        for device in by_owner[owner]:
            symbol = map_symbol(
                signal.symbol, device.symbol_map, device.symbol_prefix, device.symbol_suffix
            )
            plan = plan_open(device, states[device.id], signal, symbol)
            lines.setdefault((owner, signal_pk), {})[device.id] = DeviceLine(
                device.name, "preview", preview=plan.preview
            )


async def _add_results(
    session: AsyncSession,
    lines: dict[tuple[int, int], dict[int, DeviceLine]],
    opens: Mapping[int, ReportRow],
    fill_prices: Mapping[int, Decimal],
) -> None:
    """Each v1.1 device's position events on its line: every close, the latest moves."""
    signal_pks = sorted({row.signal_pk for row in opens.values()})
    events = await PositionEventRepository(session).for_signals(signal_pks)
    if not events:
        return
    currencies = {
        pk: state.currency
        for pk, state in (
            await DeviceStateRepository(session).for_devices(e.device_id for e in events)
        ).items()
    }
    results: dict[tuple[int, int, int], list[PositionResult]] = {}
    for event in events:
        row = opens.get(event.instruction_id)
        if row is None:
            continue
        found = results.setdefault((row.owner_id, row.signal_pk, row.device_pk), [])
        result = _result(event, row, fill_prices, found)
        if result.event != "closed":  # only the latest level of each kind is shown
            found[:] = [r for r in found if r.event != result.event]
        found.append(result)
    for (owner_id, signal_pk, device_pk), found in results.items():
        line = lines[(owner_id, signal_pk)][device_pk]
        closes = [r for r in found if r.event == "closed"][-MAX_SHOWN_CLOSES:]
        shown = tuple(r for r in found if r.event != "closed" or r in closes)
        lines[(owner_id, signal_pk)][device_pk] = replace(
            line, results=shown, currency=currencies.get(device_pk)
        )


def _result(
    event: Any,
    row: ReportRow,
    fill_prices: Mapping[int, Decimal],
    earlier: Sequence[PositionResult],
) -> PositionResult:
    if event.event == "closed":
        return PositionResult("closed", reason=event.reason, leg=event.leg, profit=event.profit)
    if event.event == "tp_moved":
        return PositionResult("tp_moved", level=event.take_profit)
    level = event.stop_loss
    opened_at = fill_prices.get(event.instruction_id)
    breakeven = bool(
        level is not None
        and opened_at is not None
        and row.management
        and "breakeven" in row.management
        and any(r.event == "closed" and r.reason == "tp" for r in earlier)
        and (level >= opened_at if row.side == "buy" else level <= opened_at)
    )
    return PositionResult("sl_moved", level=level, breakeven=breakeven)


def _advance(line: DeviceLine, row: ReportRow) -> DeviceLine:
    """The line after one more report (acks of follow-ups change nothing shown)."""
    if row.kind is None:
        if row.action == "open" and row.state == "skipped":
            return DeviceLine(line.name, "skipped", skip_reason=row.skip_reason)
        return line
    if row.kind == ReportKind.ERROR:
        return DeviceLine(line.name, "error", code=row.code, message=row.message)
    if row.action == "open":
        if row.kind == ReportKind.ACK:
            return (
                line
                if line.state != "waiting"
                else DeviceLine(line.name, "acked", ticket=row.ticket)
            )
        if line.state == "filled" and line.volume is not None and row.volume is not None:
            # Another leg of a v1.1 open: the volume adds up, the first price stays.
            return replace(line, volume=line.volume + row.volume)
        return DeviceLine(
            line.name, "filled", ticket=row.ticket, price=row.price, volume=row.volume
        )
    if row.action == "close" and row.kind == ReportKind.FILL:
        return DeviceLine(
            line.name, "closed", price=row.price, volume=row.volume, profit=row.profit
        )
    return line
