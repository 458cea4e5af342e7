"""Device health alerts: their rows, and the devices each cause looks at; queries only.

An alert row is one (device, cause). It is *active* while ``raised_at`` is set and
``cleared_at`` is not (the owner was told and the cause still holds). :meth:`claim` and
:meth:`raise_counted` set ``raised_at`` with one conditional UPDATE, so of two instances
sweeping at once only one gets a device back, and only that one tells its owner.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    JSON,
    Integer,
    Table,
    and_,
    bindparam,
    case,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from db.models import Device, DeviceAlert, DeviceState, Instruction, Signal
from db.repositories.common import dialect_insert
from db.repositories.signals import chunks
from db.types import UTCDateTime

_ALERTS = cast(Table, DeviceAlert.__table__)


@dataclass(frozen=True, slots=True)
class Tally:
    """Occurrences of a counted cause on one device, as one process saw them; ``detail``
    replaces the row's (the latest occurrence's figures)."""

    device_id: int
    count: int
    first_at: datetime
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ActiveAlert:
    device_id: int
    cause: str
    raised_at: datetime
    detail: dict[str, Any]
    last_seen_at: datetime | None


@dataclass(frozen=True, slots=True)
class Recipient:
    """Whom an alert of a device goes to, and what it names."""

    device_id: int
    owner_id: int
    name: str
    platform: str


def _active() -> ColumnElement[bool]:
    return and_(_ALERTS.c.raised_at.is_not(None), _ALERTS.c.cleared_at.is_(None))


def _claimable(repeat_cutoff: datetime) -> ColumnElement[bool]:
    """Never told, or told, cleared, and told long enough ago to be told again."""
    return or_(
        _ALERTS.c.raised_at.is_(None),
        and_(_ALERTS.c.cleared_at.is_not(None), _ALERTS.c.raised_at <= repeat_cutoff),
    )


def _device_not_revoked() -> ColumnElement[bool]:
    device = select(Device.id).where(Device.id == _ALERTS.c.device_id, Device.revoked_at.is_(None))
    return device.exists()


def _has_active(cause: str) -> ColumnElement[bool]:
    return (
        select(DeviceAlert.device_id)
        .where(
            DeviceAlert.device_id == Device.id,
            DeviceAlert.cause == cause,
            DeviceAlert.raised_at.is_not(None),
            DeviceAlert.cleared_at.is_(None),
        )
        .exists()
    )


# Built once (every sweep runs them for each device it counted): a window older than
# ``window_start`` starts again with this batch's count.
_EXPIRED_WINDOW = or_(
    _ALERTS.c.first_at.is_(None),
    _ALERTS.c.first_at < bindparam("window_start", type_=UTCDateTime()),
)
_ADD_COUNT = (
    update(_ALERTS)
    .where(_ALERTS.c.device_id == bindparam("pk"), _ALERTS.c.cause == bindparam("c"))
    .values(
        count=case(
            (_EXPIRED_WINDOW, bindparam("n", type_=Integer())),
            else_=_ALERTS.c.count + bindparam("n", type_=Integer()),
        ),
        first_at=case(
            (_EXPIRED_WINDOW, bindparam("first", type_=UTCDateTime())),
            else_=_ALERTS.c.first_at,
        ),
        detail=bindparam("d", type_=JSON()),
    )
)
_SET_DETAIL = (
    update(_ALERTS)
    .where(_ALERTS.c.device_id == bindparam("pk"), _ALERTS.c.cause == bindparam("c"))
    .values(detail=bindparam("d", type_=JSON()))
)


class DeviceAlertRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _ensure_rows(self, cause: str, device_ids: Iterable[int]) -> None:
        rows = [
            {"device_id": pk, "cause": cause, "count": 0, "detail": {}}
            for pk in sorted(set(device_ids))
        ]
        if rows:
            statement = dialect_insert(self.session, _ALERTS).on_conflict_do_nothing()
            await self.session.execute(statement, rows)

    async def _active_devices(self, device_ids: Iterable[int]) -> set[int]:
        found: set[int] = set()
        for part in chunks(sorted(set(device_ids))):
            query = select(Device.id).where(Device.id.in_(part), Device.revoked_at.is_(None))
            found.update(int(pk) for pk in (await self.session.scalars(query)).all())
        return found

    # --- counted causes (bad signatures, stale clocks) ---

    async def add_counts(
        self, cause: str, tallies: Sequence[Tally], window_start: datetime
    ) -> list[int]:
        """Add each device's count to its row's window (a window gone stale starts anew);
        return the devices counted (one revoked or deleted since it was counted is not)."""
        active = await self._active_devices(t.device_id for t in tallies)
        tallies = [t for t in tallies if t.device_id in active]
        if not tallies:
            return []
        await self._ensure_rows(cause, (t.device_id for t in tallies))
        params = [
            {
                "pk": t.device_id,
                "c": cause,
                "n": t.count,
                "first": t.first_at,
                "window_start": window_start,
                "d": t.detail,
            }
            for t in tallies
        ]
        await self.session.execute(_ADD_COUNT, params)
        return [t.device_id for t in tallies]

    async def raise_counted(
        self,
        cause: str,
        device_ids: Sequence[int],
        *,
        threshold: int,
        window_start: datetime,
        now: datetime,
        repeat_cutoff: datetime,
    ) -> list[tuple[int, int, dict[str, Any]]]:
        """Of ``device_ids`` (the rows this transaction just counted into, and so holds),
        mark told those whose count reached ``threshold`` within the window; (device,
        count, detail) of those this transaction marked. A count that another instance
        took over the threshold is raised by that instance, which counted it too."""
        found: list[tuple[int, int, dict[str, Any]]] = []
        for part in chunks(sorted(set(device_ids))):
            statement = (
                update(_ALERTS)
                .where(
                    _ALERTS.c.cause == cause,
                    _ALERTS.c.device_id.in_(part),
                    _ALERTS.c.count >= threshold,
                    _ALERTS.c.first_at >= window_start,
                    _claimable(repeat_cutoff),
                    _device_not_revoked(),
                )
                .values(raised_at=now, cleared_at=None)
                .returning(_ALERTS.c.device_id, _ALERTS.c.count, _ALERTS.c.detail)
            )
            for pk, count, detail in (await self.session.execute(statement)).all():
                found.append((int(pk), int(count), dict(detail or {})))
        return sorted(found, key=lambda row: row[0])

    # --- any cause ---

    async def claim(
        self,
        cause: str,
        details: dict[int, dict[str, Any]],
        *,
        now: datetime,
        repeat_cutoff: datetime,
    ) -> list[int]:
        """Mark told, with its detail, each device of ``details`` whose alert may be told
        now; return those this transaction marked (another instance's are not)."""
        await self._ensure_rows(cause, details)
        won: list[int] = []
        for part in chunks(sorted(details)):
            statement = (
                update(_ALERTS)
                .where(
                    _ALERTS.c.cause == cause,
                    _ALERTS.c.device_id.in_(part),
                    _claimable(repeat_cutoff),
                )
                .values(raised_at=now, cleared_at=None, count=1, first_at=now)
                .returning(_ALERTS.c.device_id)
            )
            won.extend(int(pk) for pk in (await self.session.scalars(statement)).all())
        if won:
            params = [{"pk": pk, "c": cause, "d": details[pk]} for pk in won]
            await self.session.execute(_SET_DETAIL, params)
        return sorted(won)

    async def active(self, causes: Sequence[str]) -> list[ActiveAlert]:
        """Active alerts of these causes, with their device's stored last-seen time."""
        query = (
            select(
                _ALERTS.c.device_id,
                _ALERTS.c.cause,
                _ALERTS.c.raised_at,
                _ALERTS.c.detail,
                Device.last_seen_at,
            )
            .join(Device, Device.id == _ALERTS.c.device_id)
            .where(_ALERTS.c.cause.in_(causes), _active())
            .order_by(_ALERTS.c.device_id)
        )
        return [
            ActiveAlert(int(row[0]), str(row[1]), row[2], dict(row[3] or {}), row[4])
            for row in (await self.session.execute(query)).all()
        ]

    async def clear(self, cause: str, device_ids: Iterable[int], now: datetime) -> list[int]:
        """The cause went away: active alerts of these devices end (their count too);
        return the devices this transaction cleared."""
        cleared: list[int] = []
        for part in chunks(sorted(set(device_ids))):
            statement = (
                update(_ALERTS)
                .where(_ALERTS.c.cause == cause, _ALERTS.c.device_id.in_(part), _active())
                .values(cleared_at=now, count=0, first_at=None)
                .returning(_ALERTS.c.device_id)
            )
            cleared.extend(int(pk) for pk in (await self.session.scalars(statement)).all())
        return sorted(cleared)

    async def recipients(self, device_ids: Iterable[int]) -> dict[int, Recipient]:
        found: dict[int, Recipient] = {}
        for part in chunks(sorted(set(device_ids))):
            query = select(Device.id, Device.owner_id, Device.name, Device.platform).where(
                Device.id.in_(part)
            )
            for pk, owner_id, name, platform in (await self.session.execute(query)).all():
                found[int(pk)] = Recipient(int(pk), int(owner_id), str(name), str(platform))
        return found

    # --- what the time-based causes look at ---

    async def never_seen(self, created_before: datetime) -> list[tuple[int, datetime]]:
        """(device, created at) of active devices added before ``created_before`` that
        never made a signed request and were never alerted for it."""
        told = (
            select(DeviceAlert.device_id)
            .where(
                DeviceAlert.device_id == Device.id,
                DeviceAlert.cause == "never_seen",
                DeviceAlert.raised_at.is_not(None),
            )
            .exists()
        )
        query = (
            select(Device.id, Device.created_at)
            .where(
                Device.revoked_at.is_(None),
                Device.last_seen_at.is_(None),
                Device.created_at <= created_before,
                ~told,
            )
            .order_by(Device.id)
        )
        return [(int(pk), at) for pk, at in (await self.session.execute(query)).all()]

    async def waiting_while_away(
        self, seen_before: datetime, now: datetime
    ) -> dict[int, tuple[datetime, int]]:
        """Active devices last seen before ``seen_before``, with no active offline alert,
        that have instructions they would be served now: device → (last seen, how many
        signals wait; a close_all counts as one)."""
        servable_open = and_(
            Signal.state == "open", Signal.expires_at > now, Device.paused.is_(False)
        )
        query = (
            select(
                Instruction.device_id,
                Instruction.id,
                Instruction.signal_id,
                Instruction.action,
                Signal.issued_at,
                Device.max_signal_age,
                Device.last_seen_at,
            )
            .join(Device, Device.id == Instruction.device_id)
            .outerjoin(Signal, Signal.id == Instruction.signal_id)
            .where(
                Instruction.state == "pending",
                Device.revoked_at.is_(None),
                Device.last_seen_at.is_not(None),
                Device.last_seen_at < seen_before,
                or_(Instruction.action != "open", servable_open),
                ~_has_active("offline"),
            )
        )
        signals: dict[int, set[int]] = {}
        last_seen: dict[int, datetime] = {}
        rows = (await self.session.execute(query)).all()
        for device_id, pk, signal_id, action, issued_at, max_age, seen in rows:
            if action == "open" and now - issued_at > timedelta(seconds=max_age):
                continue  # too old for this device: never served
            signals.setdefault(device_id, set()).add(signal_id if signal_id is not None else -pk)
            if seen is not None:
                last_seen[device_id] = seen
        return {pk: (last_seen[pk], len(found)) for pk, found in signals.items()}

    async def trade_disabled(self) -> list[int]:
        """Active devices whose latest state says trading is not allowed, not alerted now."""
        query = (
            select(Device.id)
            .join(DeviceState, DeviceState.device_id == Device.id)
            .where(
                Device.revoked_at.is_(None),
                DeviceState.trade_allowed.is_(False),
                ~_has_active("trade_disabled"),
            )
            .order_by(Device.id)
        )
        return [int(pk) for pk in (await self.session.scalars(query)).all()]

    async def trade_still_disabled(self, device_ids: Iterable[int]) -> set[int]:
        """Of these devices, those whose latest state still says trading is not allowed."""
        found: set[int] = set()
        for part in chunks(sorted(set(device_ids))):
            query = select(DeviceState.device_id).where(
                DeviceState.device_id.in_(part), DeviceState.trade_allowed.is_(False)
            )
            found.update(int(pk) for pk in (await self.session.scalars(query)).all())
        return found
