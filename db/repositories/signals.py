"""Signals, approvals and user settings: queries only, on a session the caller owns."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar, cast

from sqlalchemy import Table, and_, exists, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Approval, Signal, User, UserSettings
from db.repositories.common import insert_ignoring_conflict

T = TypeVar("T")

# Large IN lists are split so no backend meets its bound-parameter limit.
CHUNK = 500


@dataclass(frozen=True, slots=True)
class Candidate:
    """A user who may receive a signal."""

    user_id: int
    is_admin: bool
    auto_approve: bool


@dataclass(frozen=True, slots=True)
class ApprovalRow:
    """An approval as a plain row (what rendering its message reads)."""

    id: int
    signal_id: int
    user_id: int
    decision: str
    message_id: int | None
    decided_at: datetime | None
    # The recipient's language_code as Telegram last sent it (the message is worded in it).
    language: str | None


_APPROVAL_COLUMNS = (
    Approval.id,
    Approval.signal_id,
    Approval.user_id,
    Approval.decision,
    Approval.message_id,
    Approval.decided_at,
    User.language_code,
)


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class SignalRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, signal: Signal) -> Signal:
        self.session.add(signal)
        await self.session.flush()
        return signal

    async def get(self, signal_id: int, *, lock: bool = False) -> Signal | None:
        query = select(Signal).where(Signal.id == signal_id)
        if lock:
            query = query.with_for_update()
        return (await self.session.scalars(query)).first()

    async def many(self, signal_ids: Iterable[int]) -> list[Signal]:
        found: list[Signal] = []
        for part in chunks(sorted(set(signal_ids))):
            found.extend(
                (await self.session.scalars(select(Signal).where(Signal.id.in_(part)))).all()
            )
        return found

    async def by_public_id(self, public_id: str, *, lock: bool = False) -> Signal | None:
        query = select(Signal).where(Signal.public_id == public_id)
        if lock:
            query = query.with_for_update()
        return (await self.session.scalars(query)).first()

    async def by_client_id(self, client_id: str) -> Signal | None:
        return (
            await self.session.scalars(select(Signal).where(Signal.client_id == client_id))
        ).first()

    async def list_open(self, limit: int) -> list[Signal]:
        query = (
            select(Signal)
            .where(Signal.state == "open")
            .order_by(Signal.issued_at.desc(), Signal.id.desc())
            .limit(limit)
        )
        return list((await self.session.scalars(query)).all())

    async def count_open(self) -> int:
        query = select(func.count()).select_from(Signal).where(Signal.state == "open")
        return int((await self.session.scalar(query)) or 0)

    async def candidates(self, admin_ids: Iterable[int]) -> list[Candidate]:
        """Every user who has not blocked the bot, with their auto-approve switch."""
        admins = list(admin_ids)
        is_admin = (
            or_(User.role == "admin", User.id.in_(admins)) if admins else User.role == "admin"
        )
        query = (
            select(User.id, is_admin, func.coalesce(UserSettings.auto_approve, False))
            .outerjoin(UserSettings, UserSettings.user_id == User.id)
            .where(User.is_blocked.is_(False))
            .order_by(User.id)
        )
        rows = (await self.session.execute(query)).all()
        return [Candidate(int(row[0]), bool(row[1]), bool(row[2])) for row in rows]

    async def add_approvals(self, rows: Sequence[dict[str, object]]) -> None:
        """Insert approvals in one statement (executemany: no ids come back; the outbox
        rows of their messages are made from the table, bot/infra/outbox.py)."""
        if rows:
            await self.session.execute(insert(cast(Table, Approval.__table__)), rows)

    async def approval(self, signal_id: int, user_id: int) -> Approval | None:
        query = select(Approval).where(Approval.signal_id == signal_id, Approval.user_id == user_id)
        return (await self.session.scalars(query)).first()

    async def decide(
        self, approval_id: int, decision: str, at: datetime, message_id: int | None
    ) -> bool:
        """Record a decision on a pending approval; False when it was decided already."""
        values: dict[str, object] = {"decision": decision, "decided_at": at}
        if message_id is not None:
            values["message_id"] = func.coalesce(Approval.message_id, message_id)
        result = await self.session.execute(
            update(Approval)
            .where(Approval.id == approval_id, Approval.decision == "pending")
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def set_message_ids(self, pairs: Sequence[tuple[int, int]]) -> None:
        """Store the chat message id of each (approval id, message id)."""
        if pairs:
            await self.session.execute(
                update(Approval),
                [
                    {"id": approval_id, "message_id": message_id}
                    for approval_id, message_id in pairs
                ],
            )

    async def message_approval_ids(self, signal_id: int) -> list[int]:
        """Approvals of a signal whose message was delivered (those can be edited)."""
        query = select(Approval.id).where(
            Approval.signal_id == signal_id, Approval.message_id.is_not(None)
        )
        return list((await self.session.scalars(query)).all())

    async def decision_counts(self, signal_id: int) -> dict[str, int]:
        query = (
            select(Approval.decision, func.count())
            .where(Approval.signal_id == signal_id)
            .group_by(Approval.decision)
        )
        return {str(row[0]): int(row[1]) for row in (await self.session.execute(query)).all()}

    async def with_signals(self, approval_ids: Sequence[int]) -> list[tuple[ApprovalRow, Signal]]:
        """Approvals with their signals, for rendering messages: the approvals as plain
        rows with their recipients' languages (a broadcast renders thousands), each
        distinct signal loaded once."""
        approvals: list[ApprovalRow] = []
        for part in chunks(approval_ids):
            query = (
                select(*_APPROVAL_COLUMNS)
                .join(User, User.id == Approval.user_id)
                .where(Approval.id.in_(part))
            )
            approvals.extend(ApprovalRow(*row) for row in (await self.session.execute(query)).all())
        wanted = sorted({approval.signal_id for approval in approvals})
        signals: dict[int, Signal] = {}
        for part in chunks(wanted):
            for signal in (
                await self.session.scalars(select(Signal).where(Signal.id.in_(part)))
            ).all():
                signals[signal.id] = signal
        return [(approval, signals[approval.signal_id]) for approval in approvals]

    async def expire_pending(self, now: datetime) -> list[int]:
        """Pending approvals of open signals past their expiry → expired; their ids."""
        due = (
            select(Approval.id)
            .join(Signal, Signal.id == Approval.signal_id)
            .where(
                Signal.state == "open",
                Signal.expires_at <= now,
                Approval.decision == "pending",
            )
        )
        ids = list((await self.session.scalars(due)).all())
        for part in chunks(ids):
            await self.session.execute(
                update(Approval)
                .where(Approval.id.in_(part), Approval.decision == "pending")
                .values(decision="expired", decided_at=now)
                .execution_options(synchronize_session=False)
            )
        return ids

    async def expire_unapproved_signals(self, now: datetime) -> list[int]:
        """Open signals past their expiry that nobody approved → expired; their ids."""
        approved = exists().where(
            and_(Approval.signal_id == Signal.id, Approval.decision.in_(("approved", "auto")))
        )
        due = select(Signal.id).where(Signal.state == "open", Signal.expires_at <= now, ~approved)
        ids = list((await self.session.scalars(due)).all())
        for part in chunks(ids):
            await self.session.execute(
                update(Signal)
                .where(Signal.id.in_(part), Signal.state == "open")
                .values(state="expired", ended_at=now)
                .execution_options(synchronize_session=False)
            )
        return ids


class UserSettingsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: int) -> UserSettings | None:
        return await self.session.get(UserSettings, user_id)

    async def get_or_create(self, user_id: int, now: datetime) -> UserSettings:
        """The user's row, created with the defaults if missing, locked for a change.

        An upsert (``INSERT ... ON CONFLICT DO NOTHING``) then ``SELECT ... FOR UPDATE``:
        two instances creating it at once both get the one row, and two changes to it
        run one after the other instead of overwriting each other.
        """
        await insert_ignoring_conflict(
            self.session,
            UserSettings,
            {
                "user_id": user_id,
                "auto_approve": False,
                "notify_fills": True,
                "notify_errors": True,
                "notify_closes": True,
                "updated_at": now,
            },
        )
        query = (
            select(UserSettings)
            .where(UserSettings.user_id == user_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return (await self.session.scalars(query)).one()
