"""Instructions to devices and their execution reports: queries only, never a commit."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    Table,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from db.models import (
    Approval,
    Device,
    ExecutionRecord,
    Instruction,
    Referral,
    Signal,
    UserSettings,
)
from db.repositories.common import stored_report_ids
from db.repositories.signals import CHUNK, chunks


@dataclass(frozen=True, slots=True)
class PendingRow:
    """A pending instruction; the signal's id and time are None for close_all."""

    instruction: Instruction
    signal_public_id: str | None
    signal_issued_at: datetime | None
    max_signal_age: int


@dataclass(frozen=True, slots=True)
class ReportTarget:
    """An instruction a report names, with everything storing and announcing it needs
    (whether it is addressed to the reporting device is the caller's check)."""

    instruction_pk: int
    device_pk: int
    signal_pk: int | None  # None: close_all (and symbol, side)
    action: str
    symbol: str | None
    side: str | None
    device_name: str
    owner_id: int
    approval_id: int | None
    notify_fills: bool
    notify_errors: bool
    referred: bool


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One instruction of a device on a signal and, if any, one report on it."""

    owner_id: int
    signal_pk: int
    device_pk: int
    device_name: str
    action: str
    record_pk: int | None
    kind: str | None
    ticket: int | None
    price: Decimal | None
    volume: Decimal | None
    profit: Decimal | None
    code: int | None
    message: str | None
    instruction_pk: int
    state: str
    skip_reason: str | None
    side: str | None
    management: dict[str, Any] | None


def _servable(now: datetime) -> ColumnElement[bool]:
    """An instruction that may be served (with Signal and Device joined): a follow-up
    always, an open while its signal is open and unexpired and the device not paused."""
    servable_open = and_(Signal.state == "open", Signal.expires_at > now, Device.paused.is_(False))
    return or_(Instruction.action != "open", servable_open)


_INSTRUCTIONS = cast(Table, Instruction.__table__)
_INSERT_RECORD = insert(cast(Table, ExecutionRecord.__table__))
# Executed once per report in report order: an ack moves only a pending instruction, a
# fill or an error any (the last report of a batch wins, as it would one by one).
_SET_STATE = (
    update(_INSTRUCTIONS)
    .where(
        _INSTRUCTIONS.c.id == bindparam("pk"),
        or_(_INSTRUCTIONS.c.state == "pending", bindparam("final", type_=Boolean())),
    )
    .values(state=bindparam("to"))
)


def _table(model: Any) -> Table:
    return cast(Table, model.__table__)


def _report_lookup() -> Any:
    """The instructions that reports name, with everything storing and announcing a
    report needs, and the records their devices already stored under the reports'
    report_ids. Built once, on the tables (a Core statement: the report writer runs it for
    every batch, and reads plain tuples without the ORM's result handling)."""
    ins, sig, dev = _table(Instruction), _table(Signal), _table(Device)
    app, prefs, ref, rec = (
        _table(Approval),
        _table(UserSettings),
        _table(Referral),
        _table(ExecutionRecord),
    )
    return (
        select(
            ins.c.public_id,
            ins.c.id,
            ins.c.device_id,
            ins.c.signal_id,
            ins.c.action,
            ins.c.symbol,
            sig.c.side,
            dev.c.name,
            dev.c.owner_id,
            app.c.id,
            prefs.c.notify_fills,
            prefs.c.notify_errors,
            ref.c.referred_id,
            rec.c.report_id,
            rec.c.public_id,
            rec.c.content_hash,
        )
        .select_from(ins)
        .outerjoin(sig, sig.c.id == ins.c.signal_id)
        .join(dev, dev.c.id == ins.c.device_id)
        .outerjoin(app, and_(app.c.signal_id == ins.c.signal_id, app.c.user_id == dev.c.owner_id))
        .outerjoin(prefs, prefs.c.user_id == dev.c.owner_id)
        .outerjoin(ref, ref.c.referred_id == dev.c.owner_id)
        .outerjoin(
            rec,
            and_(
                rec.c.device_id == ins.c.device_id,
                rec.c.report_id.in_(bindparam("report_ids", expanding=True)),
            ),
        )
        .where(ins.c.public_id.in_(bindparam("instruction_ids", expanding=True)))
    )


_REPORT_LOOKUP = _report_lookup()


class InstructionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def executing_devices(self, owner_ids: Sequence[int]) -> list[Device]:
        """The owners' devices that may be sent an open: not revoked, not paused."""
        found: list[Device] = []
        for part in chunks(list(owner_ids)):
            query = (
                select(Device)
                .where(
                    Device.owner_id.in_(part),
                    Device.revoked_at.is_(None),
                    Device.paused.is_(False),
                )
                .order_by(Device.id)
            )
            found.extend((await self.session.scalars(query)).all())
        return found

    async def opened(self, signal_pk: int) -> list[tuple[int, str]]:
        """(device pk, mapped symbol) of every device whose open of the signal was acked
        or filled: they get the provider's later changes."""
        query = (
            select(Instruction.device_id, Instruction.symbol)
            .where(
                Instruction.signal_id == signal_pk,
                Instruction.action == "open",
                Instruction.state.in_(("acked", "filled")),
            )
            .order_by(Instruction.device_id)
        )
        return [(int(row[0]), str(row[1])) for row in (await self.session.execute(query)).all()]

    async def add(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            await self.session.execute(insert(Instruction), list(rows))

    async def pending(self, device_pk: int, now: datetime) -> list[PendingRow]:
        """The device's unreported instructions, oldest first; opens only while their
        signal is open and unexpired and the device is not paused (age is the caller's)."""
        # An outer join: close_all belongs to no signal.
        query = (
            select(Instruction, Signal.public_id, Signal.issued_at, Device.max_signal_age)
            .outerjoin(Signal, Signal.id == Instruction.signal_id)
            .join(Device, Device.id == Instruction.device_id)
            .where(
                Instruction.device_id == device_pk,
                Instruction.state == "pending",
                _servable(now),
            )
            .order_by(Instruction.id)
        )
        rows = (await self.session.execute(query)).all()
        return [PendingRow(row[0], row[1], row[2], int(row[3])) for row in rows]

    async def idle_devices(self, now: datetime) -> set[int]:
        """Active devices for which :meth:`pending` finds nothing, in one query (an open
        past the device's max age still counts as pending here: the caller's check)."""
        has_pending = (
            select(Instruction.id)
            .outerjoin(Signal, Signal.id == Instruction.signal_id)
            .where(
                Instruction.device_id == Device.id,
                Instruction.state == "pending",
                _servable(now),
            )
            .exists()
        )
        query = select(Device.id).where(Device.revoked_at.is_(None), ~has_pending)
        return {int(pk) for pk in (await self.session.scalars(query)).all()}

    async def report_lookup(
        self, named: Sequence[tuple[str, str]]
    ) -> tuple[dict[str, ReportTarget], dict[tuple[int, str], tuple[str, str]]]:
        """For reports as (instruction public id, report_id): the instructions they name,
        by public id, and the stored records of those instructions' devices under those
        report ids, as (device pk, report_id) → (record public id, content hash); one
        round trip per chunk. (A record of a device under a report_id that names none of
        its instructions is :meth:`records_by_report_id`'s to find.)"""
        targets: dict[str, ReportTarget] = {}
        records: dict[tuple[int, str], tuple[str, str]] = {}
        for part in chunks(sorted(set(named)), CHUNK // 2):
            params = {
                "instruction_ids": sorted({instruction_id for instruction_id, _ in part}),
                "report_ids": sorted({report_id for _, report_id in part}),
            }
            for (
                public_id,
                instruction_pk,
                device_pk,
                signal_pk,
                action,
                symbol,
                side,
                device_name,
                owner_id,
                approval_id,
                notify_fills,
                notify_errors,
                referred_id,
                report_id,
                record_id,
                content_hash,
            ) in (await self.session.execute(_REPORT_LOOKUP, params)).all():
                if record_id is not None:
                    records[(device_pk, report_id)] = (record_id, content_hash)
                if public_id not in targets:
                    targets[public_id] = ReportTarget(
                        instruction_pk=instruction_pk,
                        device_pk=device_pk,
                        signal_pk=signal_pk,
                        action=action,
                        symbol=symbol,
                        side=side,
                        device_name=device_name,
                        owner_id=owner_id,
                        approval_id=approval_id,
                        # No settings row: the defaults (on).
                        notify_fills=notify_fills is not False,
                        notify_errors=notify_errors is not False,
                        referred=referred_id is not None,
                    )
        return targets, records

    async def records_by_report_id(
        self, keys: Iterable[tuple[int, str]]
    ) -> dict[tuple[int, str], tuple[str, str]]:
        """(device pk, report_id) → (record public id, content hash) of stored records."""
        return await stored_report_ids(self.session, ExecutionRecord, keys)

    async def add_records(self, rows: Sequence[dict[str, Any]]) -> None:
        """One INSERT executed for many rows (Core: no ORM bulk-insert bookkeeping)."""
        await self.session.execute(_INSERT_RECORD, list(rows))

    async def set_states(self, changes: Sequence[tuple[int, str]]) -> None:
        """Each (instruction pk, state its report gives it), in the order reported; an ack
        only moves a pending instruction (a late ack never undoes a fill or an error)."""
        if changes:
            await self.session.execute(
                _SET_STATE,
                [{"pk": pk, "to": state, "final": state != "acked"} for pk, state in changes],
            )

    async def device_had_signal(self, device_pk: int, signal_public_id: str) -> int | None:
        """The signal's pk if the device was ever sent an instruction for it."""
        query = (
            select(Signal.id)
            .join(Instruction, Instruction.signal_id == Signal.id)
            .where(Signal.public_id == signal_public_id, Instruction.device_id == device_pk)
            .limit(1)
        )
        return await self.session.scalar(query)

    async def records(
        self, device_pk: int, signal_pk: int
    ) -> list[tuple[ExecutionRecord, str, str]]:
        """The device's records on the signal with their instruction's id and action."""
        query = (
            select(ExecutionRecord, Instruction.public_id, Instruction.action)
            .join(Instruction, Instruction.id == ExecutionRecord.instruction_id)
            .where(ExecutionRecord.device_id == device_pk, ExecutionRecord.signal_id == signal_pk)
            .order_by(ExecutionRecord.id)
        )
        rows = (await self.session.execute(query)).all()
        return [(row[0], str(row[1]), str(row[2])) for row in rows]

    async def report_rows(self, pairs: Sequence[tuple[int, int]]) -> list[ReportRow]:
        """Every instruction (and its reports) of each (owner, signal), oldest first."""
        signal_pks = sorted({signal_pk for _, signal_pk in pairs})
        wanted = set(pairs)
        found: list[ReportRow] = []
        for part in chunks(signal_pks):
            query = (
                select(
                    Device.owner_id,
                    Instruction.signal_id,
                    Device.id,
                    Device.name,
                    Instruction.action,
                    ExecutionRecord.id,
                    ExecutionRecord.kind,
                    ExecutionRecord.ticket,
                    ExecutionRecord.price,
                    ExecutionRecord.volume,
                    ExecutionRecord.profit,
                    ExecutionRecord.code,
                    ExecutionRecord.message,
                    Instruction.id,
                    Instruction.state,
                    Instruction.skip_reason,
                    Instruction.side,
                    Instruction.management,
                )
                .join(Device, Device.id == Instruction.device_id)
                .outerjoin(ExecutionRecord, ExecutionRecord.instruction_id == Instruction.id)
                .where(Instruction.signal_id.in_(part))
                .order_by(Device.id, Instruction.id, ExecutionRecord.id)
            )
            for row in (await self.session.execute(query)).all():
                if (row[0], row[1]) in wanted:
                    found.append(ReportRow(*tuple(row)))
        return found

    async def report_counts(self, signal_pk: int) -> dict[str, int]:
        query = (
            select(ExecutionRecord.kind, func.count())
            .where(ExecutionRecord.signal_id == signal_pk)
            .group_by(ExecutionRecord.kind)
        )
        return {str(row[0]): int(row[1]) for row in (await self.session.execute(query)).all()}
