"""Signals: create (idempotent by client_id), change, decide, expire. Shared by the provider
API and the chat.

Methods take the caller's session and leave the commit to the caller; whatever Telegram
must show afterwards (a broadcast, edits) is queued in the outbox in the same transaction,
so nothing is announced that was not stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.domain.errors import ConflictError, ErrorCode, NotFoundError
from bot.domain.signal_dto import SignalCounts, SignalDTO
from bot.domain.signal_rules import (
    SignalDraft,
    format_decimal,
    validate_close,
    validate_level_changes,
)
from bot.domain.subscriptions import active_subscribers
from bot.execution.issuing import DeviceWaker, NoticeSink, issue_followups, issue_opens
from bot.infra.clock import Clock
from db.models import Signal
from db.repositories.instructions import InstructionRepository
from db.repositories.signals import SignalRepository

if TYPE_CHECKING:
    from bot.domain.publishing import SignalPublisher

logger = logging.getLogger(__name__)

Source = Literal["provider", "admin"]
SubscriberCheck = Callable[[AsyncSession, Sequence[int], datetime], Awaitable[set[int]]]
# Close fractions are kept to this many decimal places.
FRACTION_QUANTUM = Decimal("0.0000000001")


class SignalNotFoundError(NotFoundError):
    def __init__(self) -> None:
        super().__init__(ErrorCode.SIGNAL_NOT_FOUND)


class SignalClosedError(ConflictError):
    def __init__(self, state: str) -> None:
        super().__init__(ErrorCode.SIGNAL_NOT_OPEN, state=state)
        self.state = state


@dataclass(frozen=True, slots=True)
class CreateOutcome:
    signal: SignalDTO
    recipients: int
    created: bool


@dataclass(frozen=True, slots=True)
class DecisionOutcome:
    """What a press did: ``recorded`` it, or found it decided (``decision``), or found the
    signal over (``ended``: its state) or not sent to the presser (``decision`` "none")."""

    recorded: bool
    decision: str
    ended: str | None = None


@dataclass(frozen=True, slots=True)
class ExpiryOutcome:
    approvals: list[int]
    signals: list[int]


def new_public_id() -> str:
    return f"sig_{secrets.token_urlsafe(12)}"


class SignalService:
    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        *,
        publisher: SignalPublisher | None = None,
        subscriber_check: SubscriberCheck = active_subscribers,
        wake_device: DeviceWaker | None = None,
        notices: NoticeSink | None = None,
    ) -> None:
        self.settings = settings
        # The owners' notices of protections (a daily loss limit tripped), in the outbox.
        self.notices = notices
        self.clock = clock
        self.publisher = publisher
        self.subscriber_check = subscriber_check
        self.wake_device = wake_device

    # ------------------------------------------------------------------ creation

    async def recipients(self, session: AsyncSession) -> list[tuple[int, bool]]:
        """(user id, auto-approve) of everyone a new signal goes to now."""
        repo = SignalRepository(session)
        candidates = await repo.candidates(self.settings.telegram.admin_ids)
        if self.settings.signals.require_subscription:
            others = [c.user_id for c in candidates if not c.is_admin]
            subscribers = await self.subscriber_check(session, others, self.clock())
            candidates = [c for c in candidates if c.is_admin or c.user_id in subscribers]
        return [(c.user_id, c.auto_approve) for c in candidates]

    async def create(
        self,
        session: AsyncSession,
        draft: SignalDraft,
        *,
        source: Source,
        created_by_id: int | None = None,
    ) -> CreateOutcome:
        """Store the signal and one approval per recipient; the broadcast follows the commit.

        A ``client_id`` seen before returns that signal (``created=False``) and sends nothing.
        """
        repo = SignalRepository(session)
        if draft.client_id is not None:
            existing = await repo.by_client_id(draft.client_id)
            if existing is not None:
                return await self._existing(repo, existing)
        now = self.clock()
        signal = await repo.add(
            Signal(
                public_id=new_public_id(),
                symbol=draft.symbol,
                side=draft.side,
                order_type=draft.order_type,
                entry=draft.entry,
                stop_loss=draft.stop_loss,
                take_profit=[format_decimal(price) for price in draft.take_profit],
                comment=draft.comment,
                issued_at=now,
                expires_at=now + timedelta(seconds=draft.expires_in),
                state="open",
                closed_fraction=Decimal(0),
                client_id=draft.client_id,
                reference_price=draft.reference_price,
                source=source,
                created_by_id=created_by_id,
            )
        )
        recipients = await self.recipients(session)
        rows: list[dict[str, object]] = [
            {
                "signal_id": signal.id,
                "user_id": user_id,
                "decision": "auto" if auto else "pending",
                "message_id": None,
                "created_at": now,
                "decided_at": now if auto else None,
            }
            for user_id, auto in recipients
        ]
        await repo.add_approvals(rows)
        auto_approvers = [user_id for user_id, auto in recipients if auto]
        if auto_approvers:
            await issue_opens(
                session, signal, auto_approvers, now, self.wake_device, notices=self.notices
            )
        dto = SignalDTO.from_model(signal)
        if self.publisher is not None:
            await self.publisher.announce(session, dto)
        logger.info(
            "signal %s (%s %s) from %s to %d recipients",
            dto.public_id,
            dto.side,
            dto.symbol,
            source,
            len(rows),
        )
        return CreateOutcome(signal=dto, recipients=len(rows), created=True)

    async def submit(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        draft: SignalDraft,
        *,
        source: Source,
        created_by_id: int | None = None,
    ) -> CreateOutcome:
        """``create`` in its own transaction, safe against concurrent calls with one client_id.

        The loser of a race on the unique client_id sees the winner's signal; only the
        winner's commit announces it.
        """
        try:
            async with sessionmaker.begin() as session:
                return await self.create(session, draft, source=source, created_by_id=created_by_id)
        except IntegrityError:
            if draft.client_id is None:
                raise
            async with sessionmaker.begin() as session:
                repo = SignalRepository(session)
                existing = await repo.by_client_id(draft.client_id)
                if existing is None:
                    raise
                return await self._existing(repo, existing)

    async def _existing(self, repo: SignalRepository, signal: Signal) -> CreateOutcome:
        counts = await repo.decision_counts(signal.id)
        return CreateOutcome(
            signal=SignalDTO.from_model(signal), recipients=sum(counts.values()), created=False
        )

    # ------------------------------------------------------------------ reading

    async def get(self, session: AsyncSession, public_id: str) -> SignalDTO:
        signal = await SignalRepository(session).by_public_id(public_id)
        if signal is None:
            raise SignalNotFoundError()
        return SignalDTO.from_model(signal)

    async def get_by_id(self, session: AsyncSession, signal_id: int) -> SignalDTO:
        signal = await SignalRepository(session).get(signal_id)
        if signal is None:
            raise SignalNotFoundError()
        return SignalDTO.from_model(signal)

    async def counts(self, session: AsyncSession, signal_id: int) -> SignalCounts:
        return await count_signal(session, signal_id)

    async def list_open(self, session: AsyncSession, limit: int) -> tuple[list[SignalDTO], int]:
        repo = SignalRepository(session)
        signals = await repo.list_open(limit)
        total = await repo.count_open() if len(signals) >= limit else len(signals)
        return [SignalDTO.from_model(signal) for signal in signals], total

    # ------------------------------------------------------------------ changes

    async def _changeable(
        self, session: AsyncSession, *, public_id: str | None = None, signal_id: int | None = None
    ) -> Signal:
        repo = SignalRepository(session)
        if public_id is not None:
            signal = await repo.by_public_id(public_id, lock=True)
        else:
            assert signal_id is not None
            signal = await repo.get(signal_id, lock=True)
        if signal is None:
            raise SignalNotFoundError()
        if signal.state != "open":
            raise SignalClosedError(signal.state)
        return signal

    async def modify(
        self,
        session: AsyncSession,
        data: Mapping[str, Any],
        *,
        public_id: str | None = None,
        signal_id: int | None = None,
    ) -> SignalDTO:
        """New stop loss and/or take profits (see ``validate_level_changes``)."""
        signal = await self._changeable(session, public_id=public_id, signal_id=signal_id)
        changes = validate_level_changes(
            data,
            side=signal.side,
            entry=signal.entry,
            stop_loss=signal.stop_loss,
            take_profit=[Decimal(price) for price in signal.take_profit],
        )
        if changes.set_stop_loss:
            signal.stop_loss = changes.stop_loss
        if changes.set_take_profit:
            signal.take_profit = [format_decimal(price) for price in changes.take_profit]
        signal.modified_at = self.clock()
        return await self._changed(session, signal, "modify")

    async def close(
        self,
        session: AsyncSession,
        data: Mapping[str, Any],
        *,
        public_id: str | None = None,
        signal_id: int | None = None,
    ) -> tuple[SignalDTO, Decimal]:
        """Close ``fraction`` of what remains open (1: all of it, and the signal is closed)."""
        signal = await self._changeable(session, public_id=public_id, signal_id=signal_id)
        fraction = validate_close(data)
        if fraction == 1:
            signal.closed_fraction = Decimal(1)
            signal.state = "closed"
            signal.ended_at = self.clock()
        else:
            remaining = Decimal(1) - signal.closed_fraction
            closed = signal.closed_fraction + remaining * fraction
            signal.closed_fraction = closed.quantize(FRACTION_QUANTUM)
        return await self._changed(session, signal, "close", fraction=fraction), fraction

    async def cancel(
        self, session: AsyncSession, *, public_id: str | None = None, signal_id: int | None = None
    ) -> SignalDTO:
        signal = await self._changeable(session, public_id=public_id, signal_id=signal_id)
        signal.state = "cancelled"
        signal.ended_at = self.clock()
        return await self._changed(session, signal, "cancel")

    async def _changed(
        self,
        session: AsyncSession,
        signal: Signal,
        action: str,
        *,
        fraction: Decimal | None = None,
    ) -> SignalDTO:
        """Show the change on every delivered message and pass it to the devices that
        opened the signal."""
        await session.flush()
        await issue_followups(
            session, signal, action, self.clock(), self.wake_device, fraction=fraction
        )
        dto = SignalDTO.from_model(signal)
        if self.publisher is not None:
            await self.publisher.refresh_signal(session, dto.id)
        return dto

    # ------------------------------------------------------------------ decisions

    async def decide(
        self,
        session: AsyncSession,
        *,
        signal_id: int,
        user_id: int,
        approve: bool,
        message_id: int | None = None,
    ) -> DecisionOutcome:
        """Record the user's decision once; otherwise say what the state is, change nothing."""
        repo = SignalRepository(session)
        approval = await repo.approval(signal_id, user_id)
        if approval is None:
            return DecisionOutcome(False, "none")
        if approval.decision != "pending":
            return DecisionOutcome(False, approval.decision)
        signal = await repo.get(signal_id)
        assert signal is not None
        now = self.clock()
        if signal.state != "open":
            return DecisionOutcome(False, approval.decision, ended=signal.state)
        if now >= signal.expires_at:
            return DecisionOutcome(False, approval.decision, ended="expired")
        decision = "approved" if approve else "rejected"
        if not await repo.decide(approval.id, decision, now, message_id):
            # A second press raced this one and won; report what it recorded.
            await session.refresh(approval)
            return DecisionOutcome(False, approval.decision)
        if approve:
            await issue_opens(
                session, signal, [user_id], now, self.wake_device, notices=self.notices
            )
        if self.publisher is not None:
            await self.publisher.refresh(session, [approval.id])
        return DecisionOutcome(True, decision)

    # ------------------------------------------------------------------ expiry

    async def expire_due(self, sessionmaker: async_sessionmaker[AsyncSession]) -> ExpiryOutcome:
        """Pending approvals past their signal's expiry become expired (and their messages
        say so); a signal nobody approved in time becomes expired."""
        now = self.clock()
        async with sessionmaker.begin() as session:
            repo = SignalRepository(session)
            approvals = await repo.expire_pending(now)
            signals = await repo.expire_unapproved_signals(now)
            if approvals and self.publisher is not None:
                await self.publisher.refresh(session, approvals)
        if approvals or signals:
            logger.info("expired %d approvals and %d signals", len(approvals), len(signals))
        return ExpiryOutcome(approvals=approvals, signals=signals)

    async def run_expiry(
        self, sessionmaker: async_sessionmaker[AsyncSession], stop: asyncio.Event
    ) -> None:
        """The runner's background task: ``expire_due`` every ``expiry_poll_seconds``."""
        interval = self.settings.signals.expiry_poll_seconds
        while not stop.is_set():
            try:
                await self.expire_due(sessionmaker)
            except Exception:
                logger.exception("expiring signals failed; retrying in %s s", interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)


async def count_signal(session: AsyncSession, signal_id: int) -> SignalCounts:
    """Decisions by recipients and execution reports by devices on one signal.

    Fills and errors count the devices' reports (each stored once, retries excluded).
    """
    decisions = await SignalRepository(session).decision_counts(signal_id)
    reports = await InstructionRepository(session).report_counts(signal_id)
    return SignalCounts(
        recipients=sum(decisions.values()),
        approvals=decisions.get("approved", 0) + decisions.get("auto", 0),
        rejections=decisions.get("rejected", 0),
        pending=decisions.get("pending", 0),
        expired=decisions.get("expired", 0),
        fills=reports.get("fill", 0),
        errors=reports.get("error", 0),
    )
