"""What devices are told to do, and what they report back (EA_PROTOCOL.md section 3).

Issuing: an approval (or auto-approve) gives each of the approver's active, unpaused
devices an ``open`` with the signal's levels frozen, the symbol through the device's
mapping and the device's lot size, unless the signal is already older than the device's
max age. A provider's modify, close or cancel gives a follow-up to every device whose
``open`` was acked or filled. Issuers wake the devices' long polls after the commit.

Serving: an instruction is pending until its device reports on it. An ``open`` is served
only while its signal is open and unexpired, the device is not paused and the signal is
not older than the device's max age (checked again at every delivery).

Reports: :class:`ReportDesk` stores ack / fill / error reports idempotently by
``report_id`` and, in the same transaction, queues the refresh of the owner's approval
message and the owner's notice of a fill or error in the outbox (sent after the commit).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.domain.commissions import credit_fill_commission
from bot.domain.devices import map_symbol
from bot.domain.errors import ConflictError, ErrorCode, NotFoundError
from bot.domain.notices import NoticeCode
from bot.domain.signal_dto import DeviceLine
from bot.domain.signal_rules import decimal_or_none, format_decimal, wire_time
from bot.execution.device_keys import DeviceIdentity
from bot.execution.reports import Report, ReportKind
from bot.infra.clock import Clock
from bot.lifecycle import ShuttingDown
from db.hooks import after_commit
from db.models import Signal
from db.repositories.instructions import InstructionRepository, ReportRow, ReportTarget

if TYPE_CHECKING:
    from bot.chat.signal_publisher import SignalPublisher
    from bot.infra.outbox import Outbox

logger = logging.getLogger(__name__)

# Wakes the long polls of these devices (DeviceHub.notify for each), after a commit.
DeviceWaker = Callable[[int], None]

# Reports stored per transaction at most (bounded statements and parameters).
MAX_BATCH = 500
_STATE_OF_REPORT = {ReportKind.ACK: "acked", ReportKind.FILL: "filled", ReportKind.ERROR: "errored"}


class UnknownInstructionError(NotFoundError):
    """404 unknown_instruction: no such instruction, or not addressed to this device."""

    def __init__(self, message: str) -> None:  # the side server's answer, in English
        super().__init__(ErrorCode.UNKNOWN_INSTRUCTION, message=message)
        self.message = message


class UnknownSignalError(NotFoundError):
    """404 unknown_signal: this device never had an instruction for that signal."""

    def __init__(self, message: str) -> None:  # the side server's answer, in English
        super().__init__(ErrorCode.UNKNOWN_SIGNAL, message=message)
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


def new_instruction_id() -> str:
    return f"ins_{secrets.token_urlsafe(12)}"


def new_record_id() -> str:
    return f"exe_{secrets.token_urlsafe(12)}"


# ---------------------------------------------------------------------- issuing


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


# ---------------------------------------------------------------------- serving


async def pending_instructions(
    session: AsyncSession, device: DeviceIdentity, now: datetime
) -> list[dict[str, Any]]:
    """The device's pending instructions in their wire form (section 3), oldest first."""
    served: list[dict[str, Any]] = []
    for row in await InstructionRepository(session).pending(device.pk, now):
        instruction = row.instruction
        if instruction.action == "open" and now - row.signal_issued_at > timedelta(
            seconds=row.max_signal_age
        ):
            continue
        served.append(_wire(instruction, row.signal_public_id))
    return served


def _wire(instruction: Any, signal_public_id: str) -> dict[str, Any]:
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


# ---------------------------------------------------------------------- reports


def content_hash(report: Report) -> str:
    """The report's content in a canonical form: equal for a retry of the same report
    (decimals compared by value, times by instant), different for anything else."""
    canonical = [
        report.kind.value,
        report.instruction_id,
        report.ticket,
        decimal_or_none(report.price),
        decimal_or_none(report.volume),
        decimal_or_none(report.profit),
        None if report.executed_at is None else report.executed_at.astimezone(UTC).isoformat(),
        report.code,
        report.message,
    ]
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
    report: Report
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
        publisher: SignalPublisher | None = None,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.clock = clock
        self.outbox = outbox
        self.publisher = publisher
        self.max_batch = max_batch
        self._queue: list[_Queued] = []
        self._queued = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        # Answers not given yet (drain waits for them).
        self._waiting: set[asyncio.Future[ReportReceipt]] = set()
        self._closing = False

    @property
    def waiting(self) -> int:
        """Reports taken but not answered yet."""
        return len(self._waiting)

    async def record(self, device: DeviceIdentity, report: Report) -> ReportReceipt:
        """Store ``report`` once; a retry gets the same id, other content a 409, an
        instruction not addressed to ``device`` a 404."""
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
                batch = self._queue[: self.max_batch]
                del self._queue[: self.max_batch]
                await self._write(batch)

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
        repo = InstructionRepository(session)
        targets = await repo.report_targets({item.report.instruction_id for item in batch})
        known = await repo.records_by_report_id(
            {(item.device.pk, item.report.report_id) for item in batch}
        )
        now = self.clock()
        rows: list[dict[str, Any]] = []
        states: list[tuple[int, str]] = []
        stored: list[_Stored] = []
        outcomes: list[Outcome] = []
        for item in batch:
            device, report = item.device, item.report
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
        if self.publisher is not None:
            approval_ids = {
                item.target.approval_id for item in stored if item.target.approval_id is not None
            }
            await self.publisher.refresh(session, approval_ids)
        if self.outbox is not None:
            notices = [notice for item in stored if (notice := _notice(item.target, item.report))]
            await self.outbox.notice_many(session, notices)

    async def drain(self) -> None:
        """Let queued reports finish (shutdown, tests)."""
        while self._waiting:
            await asyncio.gather(*self._waiting, return_exceptions=True)

    async def close(self, within: float = math.inf) -> int:
        """Shutdown: take no more reports, and let the writer commit what is queued for up
        to ``within`` s. A report is answered only after its commit, so none that was
        acknowledged is lost; what is not committed by then is answered
        :class:`ShuttingDown` (a 503: never stored, the EA sends it again). Notices under way
        Returns how many reports were turned away. (Notices and edits are outbox rows,
        written with the reports: nothing of them is lost here.)"""
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

    # ------------------------------------------------------------------ status

    async def signal_records(
        self, session: AsyncSession, device: DeviceIdentity, signal_id: str
    ) -> list[dict[str, Any]]:
        """This device's own reports on the signal's instructions, oldest first."""
        repo = InstructionRepository(session)
        signal_pk = await repo.device_had_signal(device.pk, signal_id)
        if signal_pk is None:
            raise UnknownSignalError(f"This device has no instructions for signal {signal_id}.")
        return [
            {
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
                "executed_at": None
                if record.executed_at is None
                else wire_time(record.executed_at),
                "received_at": wire_time(record.received_at),
            }
            for record, instruction_id, action in await repo.records(device.pk, signal_pk)
        ]


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
        "executed_at": report.executed_at,
        "received_at": now,
        "content_hash": digest,
    }


def _notice(target: ReportTarget, report: Report) -> tuple[int, str, dict[str, Any]] | None:
    """The owner's notice of a fill or an error (code and values), or None (an ack, or
    switched off); the chat layer words it when it is sent."""
    what = {
        "device": target.device_name,
        "symbol": target.symbol,
        "side": target.side,
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


# ---------------------------------------------------------------------- live status


async def device_lines(
    session: AsyncSession, pairs: Sequence[tuple[int, int]]
) -> Mapping[tuple[int, int], Sequence[DeviceLine]]:
    """Each (user, signal): one line per device of the user that was sent the signal,
    with the state its reports left it in (SignalPublisher's ``device_lines`` loader)."""
    lines: dict[tuple[int, int], dict[int, DeviceLine]] = {}
    rows = await InstructionRepository(session).report_rows(pairs)
    # Reports in the order they arrived, across each device's instructions.
    rows.sort(key=lambda row: (row.device_pk, row.record_pk or 0))
    for row in rows:
        devices = lines.setdefault((row.owner_id, row.signal_pk), {})
        current = devices.get(row.device_pk)
        if current is None:
            current = DeviceLine(name=row.device_name, state="waiting")
        devices[row.device_pk] = _advance(current, row)
    return {key: list(devices.values()) for key, devices in lines.items()}


def _advance(line: DeviceLine, row: ReportRow) -> DeviceLine:
    """The line after one more report (acks of follow-ups change nothing shown)."""
    if row.kind is None:
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
        return DeviceLine(
            line.name, "filled", ticket=row.ticket, price=row.price, volume=row.volume
        )
    if row.action == "close" and row.kind == ReportKind.FILL:
        return DeviceLine(
            line.name, "closed", price=row.price, volume=row.volume, profit=row.profit
        )
    return line
