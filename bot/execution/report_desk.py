"""The report writer: stores the ack / fill / error reports of devices (EA_PROTOCOL.md
section 3) and their position events (5.4), and tells the owners.

:class:`ReportDesk` stores reports idempotently by ``report_id``, with group commits, and
in the same transaction moves each instruction's state, credits a referrer's commission
on a fill, and queues in the outbox the refresh of the owner's signal message (each
device's live state) and the owner's notice of a fill, an error or a closed position:
they are sent after the commit, never before.

Position events ride the same writer and batches, with the same idempotency rules, in a
report-id space of their own: an event's ``report_id`` is unique among the device's
events (an ack and an event may carry the same one; neither is refused nor dropped).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.domain.commissions import credit_fill_commission
from bot.domain.errors import ConflictError, ErrorCode, NotFoundError
from bot.domain.notices import NoticeCode
from bot.domain.signal_rules import decimal_or_none
from bot.execution.device_keys import DeviceIdentity
from bot.execution.reports import EventKind, PositionEventReport, Report, ReportKind
from bot.infra.clock import Clock
from bot.infra.group_commit import Gathering
from bot.lifecycle import ShuttingDown
from db.ids import sortable_id
from db.repositories.instructions import InstructionRepository, ReportTarget
from db.repositories.position_events import EventTarget, PositionEventRepository

if TYPE_CHECKING:
    from bot.infra.outbox import Outbox

logger = logging.getLogger(__name__)

# Reports stored per transaction at most (bounded statements and parameters).
MAX_BATCH = 500
_STATE_OF_REPORT = {ReportKind.ACK: "acked", ReportKind.FILL: "filled", ReportKind.ERROR: "errored"}


class UnknownInstructionError(NotFoundError):
    """404 unknown_instruction: no such instruction, or not addressed to this device."""

    def __init__(self, message: str) -> None:  # the side server's answer, in English
        super().__init__(ErrorCode.UNKNOWN_INSTRUCTION, message=message)
        self.message = message


class ReportConflictError(ConflictError):
    """409 report_conflict: the report_id was used before with other content."""

    def __init__(self, message: str) -> None:  # the side server's answer, in English
        super().__init__(ErrorCode.REPORT_CONFLICT, message=message)
        self.message = message


@dataclass(frozen=True, slots=True)
class ReportReceipt:
    id: str
    duplicate: bool


def new_record_id() -> str:
    return sortable_id("exe_")


def new_event_id() -> str:
    return sortable_id("evt_")


AnyReport = Report | PositionEventReport


def _instant(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def content_hash(report: AnyReport) -> str:
    """The report's content in a canonical form: equal for a retry of the same report
    (decimals compared by value, times by instant), different for anything else."""
    canonical: list[object]
    if isinstance(report, PositionEventReport):
        canonical = [
            f"event:{report.event.value}",
            report.instruction_id,
            report.ticket,
            report.leg,
            report.reason,
            decimal_or_none(report.price),
            decimal_or_none(report.volume),
            decimal_or_none(report.profit),
            decimal_or_none(report.stop_loss),
            decimal_or_none(report.take_profit),
            _instant(report.executed_at),
        ]
    else:
        canonical = [
            report.kind.value,
            report.instruction_id,
            report.ticket,
            decimal_or_none(report.price),
            decimal_or_none(report.volume),
            decimal_or_none(report.profit),
            _instant(report.executed_at),
            report.code,
            report.message,
        ]
        if report.leg is not None:  # v1 reports keep the hashes they were stored with
            canonical.append(report.leg)
    encoded = json.dumps(canonical, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class _Stored:
    """A report stored in the current transaction, for what follows its commit."""

    target: ReportTarget
    report: Report


@dataclass(slots=True)
class _Queued:
    device: DeviceIdentity
    report: AnyReport
    digest: str
    future: asyncio.Future[ReportReceipt]


Outcome = ReportReceipt | NotFoundError | ConflictError


class ReportDesk:
    """Stores reports with group commits and announces them after each commit.

    Every report joins a queue; one writer task takes whatever is queued, stores it in one
    transaction (a handful of statements for the whole batch) and answers each request
    after the commit. Throughput then no longer pays a commit per request, and an idle
    server still answers at once (there is no timer). Idempotency holds inside a batch (a
    second copy of a report answers from the first) and across batches (the stored
    record). When a batch fails on the unique (device, report_id), because another
    instance stored a copy at the same moment, its reports are stored one by one.
    """

    def __init__(
        self,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        *,
        outbox: Outbox | None = None,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.clock = clock
        self.outbox = outbox
        self.max_batch = max_batch
        self._queue: list[_Queued] = []
        self._queued = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        # Answers not given yet (drain waits for them).
        self._waiting: set[asyncio.Future[ReportReceipt]] = set()
        self._closing = False
        self._gathering = Gathering()

    @property
    def waiting(self) -> int:
        """Reports taken but not answered yet."""
        return len(self._waiting)

    async def record(self, device: DeviceIdentity, report: AnyReport) -> ReportReceipt:
        """Store ``report`` (or a position event) once; a retry gets the same id, other
        content a 409, an instruction not addressed to ``device`` (for an event: not one
        of its opens) a 404."""
        if self._closing:
            raise ShuttingDown
        future: asyncio.Future[ReportReceipt] = asyncio.get_running_loop().create_future()
        self._queue.append(_Queued(device, report, content_hash(report), future))
        self._waiting.add(future)
        future.add_done_callback(self._waiting.discard)
        self._queued.set()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_forever())
        return await future

    async def _write_forever(self) -> None:
        while True:
            await self._queued.wait()
            self._queued.clear()
            while self._queue:
                # Under load, the requests the last commit answered come back first.
                await self._gathering.wait(self._queue.__len__, self._queued, self.max_batch)
                batch = self._queue[: self.max_batch]
                del self._queue[: self.max_batch]
                await self._write(batch)
                self._gathering.committed(len(batch))

    async def _write(self, batch: list[_Queued]) -> None:
        outcomes: Sequence[Outcome | Exception]
        try:
            try:
                outcomes = await self._transaction(batch)
            except IntegrityError:
                outcomes = [outcome for item in batch for outcome in await self._write_alone(item)]
        except Exception as exc:
            # The requests get a 500; the writer goes on with the next batch.
            logger.exception("storing %d reports failed", len(batch))
            outcomes = [exc] * len(batch)
        for item, outcome in zip(batch, outcomes, strict=True):
            if item.future.done():  # the client went away; the report is stored anyway
                continue
            if isinstance(outcome, ReportReceipt):
                item.future.set_result(outcome)
            else:
                item.future.set_exception(outcome)

    async def _write_alone(self, item: _Queued) -> list[Outcome]:
        try:
            return await self._transaction([item])
        except IntegrityError:
            # Stored by another instance meanwhile: answer from its record.
            return await self._transaction([item])

    async def _transaction(self, batch: Sequence[_Queued]) -> list[Outcome]:
        async with self.sessionmaker.begin() as session:
            return await self._store(session, batch)

    async def _store(self, session: AsyncSession, batch: Sequence[_Queued]) -> list[Outcome]:
        """Reports and events of one batch, each answered in its place."""
        reports = [index for index, item in enumerate(batch) if isinstance(item.report, Report)]
        if len(reports) == len(batch):
            return await self._store_reports(session, batch)
        events = [index for index in range(len(batch)) if index not in set(reports)]
        outcomes: dict[int, Outcome] = {}
        for indexes, store in ((reports, self._store_reports), (events, self._store_events)):
            if indexes:
                done = await store(session, [batch[index] for index in indexes])
                outcomes.update(zip(indexes, done, strict=True))
        return [outcomes[index] for index in range(len(batch))]

    async def _store_reports(
        self, session: AsyncSession, batch: Sequence[_Queued]
    ) -> list[Outcome]:
        repo = InstructionRepository(session)
        targets, known = await repo.report_lookup(
            [(item.report.instruction_id, item.report.report_id) for item in batch]
        )
        # A report naming no instruction of its device may still repeat one of its
        # report_ids (a 409 then, not a 404): those few are looked up on their own.
        unaddressed = {
            key
            for item in batch
            if (key := (item.device.pk, item.report.report_id)) not in known
            and _addressee(targets, item.report.instruction_id) != item.device.pk
        }
        if unaddressed:
            known.update(await repo.records_by_report_id(unaddressed))
        now = self.clock()
        rows: list[dict[str, Any]] = []
        states: list[tuple[int, str]] = []
        stored: list[_Stored] = []
        outcomes: list[Outcome] = []
        for item in batch:
            device, report = item.device, item.report
            assert isinstance(report, Report)
            key = (device.pk, report.report_id)
            if key in known:
                outcomes.append(_receipt(*known[key], item.digest))
                continue
            target = targets.get(report.instruction_id)
            if target is None or target.device_pk != device.pk:
                outcomes.append(
                    UnknownInstructionError(
                        f"Instruction {report.instruction_id} is unknown or not addressed "
                        "to this device."
                    )
                )
                continue
            public_id = new_record_id()
            known[key] = (public_id, item.digest)
            rows.append(_record_row(public_id, target, report, item.digest, now))
            states.append((target.instruction_pk, _STATE_OF_REPORT[report.kind]))
            stored.append(_Stored(target, report))
            await self._credit(session, device, target, report, now)
            outcomes.append(ReportReceipt(public_id, duplicate=False))
        if rows:
            await repo.add_records(rows)
            await repo.set_states(states)
            await self._announce(session, stored)
        return outcomes

    async def _store_events(self, session: AsyncSession, batch: Sequence[_Queued]) -> list[Outcome]:
        """Position events: an ``open`` of the reporting device, once per report_id."""
        repo = PositionEventRepository(session)
        targets = await repo.targets({item.report.instruction_id for item in batch})
        known = await repo.by_report_id({(item.device.pk, item.report.report_id) for item in batch})
        now = self.clock()
        rows: list[dict[str, Any]] = []
        stored: list[tuple[EventTarget, PositionEventReport]] = []
        outcomes: list[Outcome] = []
        for item in batch:
            device, event = item.device, item.report
            assert isinstance(event, PositionEventReport)
            key = (device.pk, event.report_id)
            if key in known:
                outcomes.append(_receipt(*known[key], item.digest))
                continue
            target = targets.get(event.instruction_id)
            if target is None or target.device_pk != device.pk or target.action != "open":
                outcomes.append(
                    UnknownInstructionError(
                        f"Instruction {event.instruction_id} is unknown, not addressed to "
                        "this device, or not an open."
                    )
                )
                continue
            public_id = new_event_id()
            known[key] = (public_id, item.digest)
            rows.append(_event_row(public_id, target, event, item.digest, now))
            stored.append((target, event))
            outcomes.append(ReportReceipt(public_id, duplicate=False))
        if rows:
            await repo.add(rows)
            if self.outbox is not None:
                approvals = [
                    (target.approval_id, target.owner_id)
                    for target, _ in stored
                    if target.approval_id is not None
                ]
                notices = [notice for t, e in stored if (notice := _close_notice(t, e))]
                await self.outbox.refresh_and_notice(session, approvals, notices)
        return outcomes

    async def _credit(
        self,
        session: AsyncSession,
        device: DeviceIdentity,
        target: ReportTarget,
        report: Report,
        now: datetime,
    ) -> None:
        """A fill of an ``open`` earns the owner's referrer a commission (once per fill)."""
        if report.kind is not ReportKind.FILL or target.action != "open" or not target.referred:
            return
        assert report.volume is not None
        await credit_fill_commission(
            session,
            settings=self.settings,
            referred_user_id=target.owner_id,
            fill_source_id=f"{device.public_id}:{report.report_id}",
            lots=report.volume,
            at=now,
        )

    # ------------------------------------------------------------------ telling the owner

    async def _announce(self, session: AsyncSession, stored: Sequence[_Stored]) -> None:
        """Queue, in the reports' own transaction, the edits of the signals' messages and
        the owners' notices: they go out once the reports are stored, never before."""
        if self.outbox is None:
            return
        approvals = [
            (item.target.approval_id, item.target.owner_id)
            for item in stored
            if item.target.approval_id is not None
        ]
        notices = [notice for item in stored if (notice := _notice(item.target, item.report))]
        await self.outbox.refresh_and_notice(session, approvals, notices)

    async def drain(self) -> None:
        """Let queued reports finish (shutdown, tests)."""
        while self._waiting:
            await asyncio.gather(*self._waiting, return_exceptions=True)

    async def close(self, within: float = math.inf) -> int:
        """Shutdown: take no more reports, and let the writer commit what is queued for up
        to ``within`` s. A report is answered only after its commit, so none that was
        acknowledged is lost; what is not committed by then is answered
        :class:`ShuttingDown` (a 503: never stored, the EA sends it again). Returns how
        many reports were turned away. (Notices and edits are outbox rows, written with
        the reports: nothing of them is lost here.)"""
        self._closing = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        if self._waiting:
            await asyncio.wait(set(self._waiting), timeout=max(0.0, deadline - loop.time()))
        # A batch still in its transaction is rolled back by the cancellation.
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None
        self._queue.clear()
        turned_away = 0
        for future in list(self._waiting):
            if not future.done():
                future.set_exception(ShuttingDown())
                turned_away += 1
        if turned_away:
            logger.warning("%d reports not stored at shutdown (answered 503)", turned_away)
        return turned_away


def _addressee(targets: dict[str, ReportTarget], instruction_id: str) -> int | None:
    target = targets.get(instruction_id)
    return None if target is None else target.device_pk


def _receipt(existing_id: str, existing_hash: str, digest: str) -> Outcome:
    if existing_hash != digest:
        return ReportConflictError(
            "This report_id was already used for a different report; "
            "use a new report_id for a new report."
        )
    return ReportReceipt(existing_id, duplicate=True)


def _record_row(
    public_id: str, target: ReportTarget, report: Report, digest: str, now: datetime
) -> dict[str, Any]:
    return {
        "public_id": public_id,
        "device_id": target.device_pk,
        "report_id": report.report_id,
        "kind": report.kind.value,
        "instruction_id": target.instruction_pk,
        "signal_id": target.signal_pk,
        "ticket": report.ticket,
        "price": report.price,
        "volume": report.volume,
        "profit": report.profit,
        "code": report.code,
        "message": report.message,
        "leg": report.leg,
        "executed_at": report.executed_at,
        "received_at": now,
        "content_hash": digest,
    }


def _event_row(
    public_id: str, target: EventTarget, event: PositionEventReport, digest: str, now: datetime
) -> dict[str, Any]:
    return {
        "public_id": public_id,
        "device_id": target.device_pk,
        "report_id": event.report_id,
        "instruction_id": target.instruction_pk,
        "signal_id": target.signal_pk,
        "leg": event.leg,
        "ticket": event.ticket,
        "event": event.event.value,
        "reason": event.reason,
        "price": event.price,
        "volume": event.volume,
        "profit": event.profit,
        "stop_loss": event.stop_loss,
        "take_profit": event.take_profit,
        "executed_at": event.executed_at or now,
        "received_at": now,
        "content_hash": digest,
    }


def _close_notice(
    target: EventTarget, event: PositionEventReport
) -> tuple[int, str, dict[str, Any]] | None:
    """The owner's notice of a closed position (unless switched off); worded when sent."""
    if event.event is not EventKind.CLOSED or not target.notify_closes:
        return None
    return (
        target.owner_id,
        NoticeCode.POSITION_CLOSED,
        {
            "device": target.device_name,
            "symbol": target.symbol,
            "side": target.side,
            "leg": event.leg,
            "reason": event.reason,
            "price": decimal_or_none(event.price),
            "volume": decimal_or_none(event.volume),
            "profit": decimal_or_none(event.profit),
            "currency": target.currency,
        },
    )


def _notice(target: ReportTarget, report: Report) -> tuple[int, str, dict[str, Any]] | None:
    """The owner's notice of a fill or an error (code and values), or None (an ack, or
    switched off); the chat layer words it when it is sent."""
    what = {
        "device": target.device_name,
        "symbol": target.symbol or "",  # close_all has neither
        "side": target.side or "",
        "action": target.action,
    }
    if report.kind is ReportKind.FILL and target.notify_fills:
        assert report.price is not None and report.volume is not None
        profit = None if report.profit is None else str(report.profit)
        fill = {"price": str(report.price), "volume": str(report.volume), "profit": profit}
        return target.owner_id, NoticeCode.FILL, {**what, **fill}
    if report.kind is ReportKind.ERROR and target.notify_errors:
        assert report.code is not None and report.message is not None
        error = {"code": report.code, "message": report.message}
        return target.owner_id, NoticeCode.DEVICE_ERROR, {**what, **error}
    return None
