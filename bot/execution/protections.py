"""Protections an owner sets on a device, checked before an ``open`` is issued to it.

When one trips, the open is stored with state ``skipped`` and the reason's code in
``skip_reason`` (never served; the signal's message names it on that device's line).
Checked in this order, the first that trips giving the reason:

- ``symbol_not_allowed``: the provider's symbol (as the signal names it, compared in upper
  case, before the device's mapping) is in ``symbols_denied``, or ``symbols_allowed`` is
  not empty and does not hold it;
- ``outside_trading_hours``: ``trading_hours`` ``{"days": [0..6] (Monday 0), "start":
  "HH:MM", "end": "HH:MM"}`` in UTC; a window whose end is before its start runs over
  midnight (its after-midnight part belongs to the day it started); start = end is all day;
- ``max_open_positions``, with a state (5.1): the positions the device holds, with the new
  open's (one per leg), may not exceed it. Held are the positions its last state lists,
  and those of opens not in that state: issued and not yet executed (pending or accepted,
  while their signal is open) or filled since that state, one per leg each;
- ``daily_loss_limit``, with a state: today's (UTC) result, the closed results (``closed``
  events and the fills of ``close`` instructions) plus the floating profit of the last
  state, lost at least ``daily_loss_limit_minor`` (hundredths of the account currency).
  The first trip of a UTC day sets ``loss_limit_tripped_at`` and tells the owner, once,
  with a Resume button; Resume (``resume_loss_limit``) sets ``loss_limit_resumed_at``, and
  the limit is not enforced for the rest of that UTC day.

A device that never sent a state (a v1 device) has the first two only: the others need
figures that only a state gives.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, time
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.errors import ErrorCode, NotFoundError
from bot.domain.notices import NoticeCode
from db.models import Device, DeviceState, ExecutionRecord, Instruction, Signal
from db.repositories.devices import DeviceRepository
from db.repositories.position_events import PositionEventRepository

logger = logging.getLogger(__name__)

_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


class SkipReason(StrEnum):
    SYMBOL_NOT_ALLOWED = "symbol_not_allowed"
    OUTSIDE_TRADING_HOURS = "outside_trading_hours"
    MAX_OPEN_POSITIONS = "max_open_positions"
    DAILY_LOSS_LIMIT = "daily_loss_limit"


@dataclass(frozen=True, slots=True)
class LossLimitTrip:
    """The daily loss limit tripped for the first time today: the owner's notice."""

    owner_id: int
    device_pk: int
    device_name: str
    loss: Decimal
    limit: Decimal
    currency: str


def day_start(now: datetime) -> datetime:
    moment = now.astimezone(UTC)
    return datetime.combine(moment.date(), time(0), tzinfo=UTC)


def symbol_allowed(symbol: str, allowed: list[str], denied: list[str]) -> bool:
    wanted = symbol.upper()
    if wanted in {str(item).upper() for item in denied or ()}:
        return False
    return not allowed or wanted in {str(item).upper() for item in allowed}


def _minutes(text: Any) -> int | None:
    match = _HHMM.fullmatch(text) if isinstance(text, str) else None
    return int(match.group(1)) * 60 + int(match.group(2)) if match else None


def within_trading_hours(hours: Any, now: datetime) -> bool:
    """True when ``now`` lies in the window (see the module's docstring); a window that
    cannot be read does not block (and is logged)."""
    if not hours:
        return True
    start = _minutes(hours.get("start", "00:00")) if isinstance(hours, dict) else None
    end = _minutes(hours.get("end", "00:00")) if isinstance(hours, dict) else None
    days_raw = hours.get("days", list(range(7))) if isinstance(hours, dict) else None
    if start is None or end is None or not isinstance(days_raw, list):
        logger.warning("trading_hours cannot be read: %r", hours)
        return True
    days = {day for day in days_raw if isinstance(day, int) and not isinstance(day, bool)}
    moment = now.astimezone(UTC)
    minute, weekday = moment.hour * 60 + moment.minute, moment.weekday()
    if start == end:
        return weekday in days
    if start < end:
        return weekday in days and start <= minute < end
    yesterday = (weekday - 1) % 7
    return (weekday in days and minute >= start) or (yesterday in days and minute < end)


async def open_positions(
    session: AsyncSession, device_pk: int, state: DeviceState, now: datetime
) -> int:
    """The positions the device holds: see ``max_open_positions`` in the module's docstring."""
    listed = {str(item.get("instruction_id")) for item in state.positions}
    query = (
        select(Instruction.public_id, Instruction.legs)
        .join(Signal, Signal.id == Instruction.signal_id)
        .where(
            Instruction.device_id == device_pk,
            Instruction.action == "open",
            or_(
                and_(
                    Instruction.state.in_(("pending", "acked")),
                    Signal.state == "open",
                    Signal.expires_at > now,
                ),
                and_(
                    Instruction.state == "filled",
                    select(ExecutionRecord.id)
                    .where(
                        ExecutionRecord.instruction_id == Instruction.id,
                        ExecutionRecord.kind == "fill",
                        ExecutionRecord.received_at >= state.received_at,
                    )
                    .exists(),
                ),
            ),
        )
    )
    unlisted = [
        len(legs) if legs else 1
        for public_id, legs in (await session.execute(query)).all()
        if public_id not in listed
    ]
    return len(state.positions) + sum(unlisted)


async def todays_result(
    session: AsyncSession, device_pk: int, state: DeviceState, now: datetime
) -> Decimal:
    """Closed results of the UTC day plus the floating profit of the last state."""
    closed = await PositionEventRepository(session).closed_profit(device_pk, day_start(now))
    floating = sum((Decimal(str(item.get("profit", "0"))) for item in state.positions), Decimal(0))
    return closed + floating


def _today(moment: datetime | None, now: datetime) -> bool:
    return moment is not None and moment >= day_start(now)


async def check_open(
    session: AsyncSession,
    device: Device,
    state: DeviceState | None,
    provider_symbol: str,
    now: datetime,
    *,
    new_positions: int = 1,
) -> tuple[SkipReason | None, LossLimitTrip | None]:
    """The reason a protection refuses an open of ``device`` now (None: it may be issued),
    and the owner's loss-limit notice when this is the limit's first trip of the day.
    ``new_positions``: how many positions the open would add (its legs)."""
    if not symbol_allowed(provider_symbol, device.symbols_allowed, device.symbols_denied):
        return SkipReason.SYMBOL_NOT_ALLOWED, None
    if not within_trading_hours(device.trading_hours, now):
        return SkipReason.OUTSIDE_TRADING_HOURS, None
    if state is None:
        return None, None
    limit = device.max_open_positions
    held = await open_positions(session, device.id, state, now) if limit is not None else 0
    if limit is not None and held + new_positions > limit:
        return SkipReason.MAX_OPEN_POSITIONS, None
    if device.daily_loss_limit_minor is None or _today(device.loss_limit_resumed_at, now):
        return None, None
    result = await todays_result(session, device.id, state, now)
    limit_money = Decimal(device.daily_loss_limit_minor).scaleb(-2)
    if result >= 0 or -result < limit_money:
        return None, None
    # Told once per UTC day: only the update that moves the mark past today's start tells.
    marked = await session.execute(
        update(Device)
        .where(
            Device.id == device.id,
            or_(
                Device.loss_limit_tripped_at.is_(None),
                Device.loss_limit_tripped_at < day_start(now),
            ),
        )
        .values(loss_limit_tripped_at=now)
        .execution_options(synchronize_session=False)
    )
    if not marked.rowcount:  # type: ignore[attr-defined]
        return SkipReason.DAILY_LOSS_LIMIT, None
    trip = LossLimitTrip(
        owner_id=device.owner_id,
        device_pk=device.id,
        device_name=device.name,
        loss=-result,
        limit=limit_money,
        currency=state.currency,
    )
    return SkipReason.DAILY_LOSS_LIMIT, trip


async def resume_loss_limit(
    session: AsyncSession, owner_id: int, device_pk: int, now: datetime
) -> Device:
    """The owner lifts the daily loss limit of their device for the rest of the UTC day.

    Raises NotFoundError (not_available) for a device that is not the owner's (or gone),
    and for a limit that holds nothing today (not tripped today, or already resumed)."""
    device = await DeviceRepository(session).get_active(owner_id, device_pk)
    if device is None:
        raise NotFoundError(ErrorCode.NOT_AVAILABLE)
    if not _today(device.loss_limit_tripped_at, now) or _today(device.loss_limit_resumed_at, now):
        raise NotFoundError(ErrorCode.LOSS_LIMIT_NOT_TRIPPED)
    device.loss_limit_resumed_at = now
    await session.flush()
    return device


def trip_notice(trip: LossLimitTrip) -> tuple[int, str, dict[str, Any]]:
    """The outbox notice of a trip (bot/domain/notices.py LOSS_LIMIT_TRIPPED)."""
    return (
        trip.owner_id,
        NoticeCode.LOSS_LIMIT_TRIPPED,
        {
            "device": trip.device_name,
            "device_pk": trip.device_pk,
            "loss": f"{trip.loss:.2f}",
            "limit": f"{trip.limit:.2f}",
            "currency": trip.currency,
        },
    )
