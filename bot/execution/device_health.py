"""Device health alerts: what keeps a device from trading, told to its owner once per cause.

Each cause (``DeviceAlert.cause``), when it is told and when it goes away:

- ``never_seen``: added ``never_seen_minutes`` ago and never a signed request. The message
  has the WebRequest allow-list step with the server's URL. Goes away when it is seen.
- ``offline``: instructions it would be served now, and no signed request for
  ``offline_seconds``: "offline, N signals waiting". Goes away when it makes a request
  again, and then the owner hears it is back online.
- ``bad_signature``: ``bad_signature_count`` requests naming the device (existing, not
  revoked) refused for a wrong signature within ``window_minutes``: "wrong Secret? Rotate
  the key". Goes away once the device signs right again, or after a quiet window.
- ``stale_clock``: ``stale_clock_count`` correctly signed requests refused as stale within
  the window: "your terminal's clock is N s off". Goes away like a bad signature.
- ``trade_disabled``: its latest state (``device_states``) says ``trade_allowed: false``:
  "algo trading is off". Goes away when a later state says true.

A cause is told once (``raised_at``); it is told again only after it went away
(``cleared_at``) and came back, and not sooner than ``repeat_after_minutes`` after it was
last told, so a flapping connection does not flood the owner. A revoked device is never
alerted.

The side server counts refused requests in memory (:meth:`DeviceHealth.bad_signature`,
:meth:`DeviceHealth.stale_clock`: no I/O, at most :data:`MAX_TALLIES` devices between two
sweeps, so a flood costs a dict update per request). The sweep, every ``sweep_seconds``,
runs one transaction: it adds those counts into the alert rows, clears what went away,
marks what is new as told and queues the notices (outbox rows, worded when sent) in that
same transaction. Marking is a conditional UPDATE, so two instances sweeping at once never
tell one cause twice. Counts of the last seconds before a shutdown are not kept: a device
that keeps failing is counted again.

Time the process was not running does not count as a device's silence: after a start,
``never_seen`` and ``offline`` wait until the process has run that long itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import DeviceHealthSettings, Settings
from bot.domain.notices import NoticeCode
from bot.execution.device_activity import DeviceActivity
from bot.infra.clock import Clock
from bot.infra.outbox import Outbox
from db.repositories.device_alerts import ActiveAlert, DeviceAlertRepository, Tally

logger = logging.getLogger(__name__)

# Devices with refused requests counted between two sweeps, at most (each a few numbers):
# only existing devices are counted, so this bounds memory even against a flood.
MAX_TALLIES = 10_000
# At shutdown a sweep under way gets this long to finish before it is cancelled.
CLOSE_GRACE_S = 0.1


class Cause(StrEnum):
    NEVER_SEEN = "never_seen"
    OFFLINE = "offline"
    BAD_SIGNATURE = "bad_signature"
    STALE_CLOCK = "stale_clock"
    TRADE_DISABLED = "trade_disabled"


COUNTED = (Cause.BAD_SIGNATURE, Cause.STALE_CLOCK)


@dataclass(slots=True)
class _Tally:
    count: int
    first_at: datetime
    last_at: datetime
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Told:
    device_id: int
    code: NoticeCode
    params: dict[str, Any]


def _iso(at: datetime) -> str:
    return at.isoformat()


def _last_at(alert: ActiveAlert) -> datetime | None:
    """When the counted cause of ``alert`` last occurred (None: not recorded)."""
    try:
        return datetime.fromisoformat(str(alert.detail["last_at"]))
    except (KeyError, ValueError):
        return None


def _went_away(alert: ActiveAlert, seen: datetime | None, window_start: datetime) -> bool:
    """Whether the cause of ``alert`` (not trade_disabled) no longer holds: the device was
    seen at last, seen again since it went offline, or signed right since its last refused
    request (or has had none for a whole window)."""
    cause = Cause(alert.cause)
    if cause is Cause.NEVER_SEEN:
        return seen is not None
    if cause is Cause.OFFLINE:
        # Raised only for a device silent for a while: a request at the raise is new.
        return seen is not None and seen >= alert.raised_at
    last_at = _last_at(alert)
    return last_at is None or last_at < window_start or (seen is not None and seen > last_at)


def _minutes(delta: timedelta) -> int:
    return max(int(delta.total_seconds() // 60), 1)


class DeviceHealth:
    """The counts of refused requests and the sweep (see the module docstring). One per process."""

    def __init__(
        self,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        *,
        outbox: Outbox,
        activity: DeviceActivity,
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.clock = clock
        self.outbox = outbox
        self.activity = activity
        self._tallies: dict[tuple[int, Cause], _Tally] = {}
        self._dropped = 0
        self._started_at: datetime | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def config(self) -> DeviceHealthSettings:
        return self.settings.device_health

    @property
    def counted(self) -> int:
        """(Device, cause) pairs counted since the last sweep: at most :data:`MAX_TALLIES`."""
        return len(self._tallies)

    # --- counting, on the side server's hot path: memory only ---

    def bad_signature(self, device_pk: int, at: datetime) -> None:
        """A request naming this (existing, not revoked) device had a wrong signature."""
        self._count(device_pk, Cause.BAD_SIGNATURE, at, {})

    def stale_clock(self, device_pk: int, at: datetime, skew_s: int, limit_s: int) -> None:
        """A correctly signed request of this device was refused: its X-Timestamp was
        ``skew_s`` s behind the server's time (negative: ahead), more than ``limit_s``."""
        self._count(device_pk, Cause.STALE_CLOCK, at, {"skew_s": skew_s, "limit_s": limit_s})

    def _count(self, device_pk: int, cause: Cause, at: datetime, detail: dict[str, Any]) -> None:
        if not self.config.enabled:
            return
        key = (device_pk, cause)
        tally = self._tallies.get(key)
        if tally is not None:
            tally.count += 1
            tally.last_at = at
            tally.detail = detail
        elif len(self._tallies) < MAX_TALLIES:
            self._tallies[key] = _Tally(1, at, at, detail)
        else:
            self._dropped += 1

    # --- the sweep ---

    async def sweep(self) -> int:
        """One pass in one transaction (see the module docstring); returns how many
        notices it queued. On a failure nothing is told and the counts are kept."""
        if not self.config.enabled:
            return 0
        now = self.clock()
        tallies, self._tallies = self._tallies, {}
        if self._dropped:
            logger.warning(
                "device health: %d refused requests not counted (over %d devices in one sweep)",
                self._dropped,
                MAX_TALLIES,
            )
            self._dropped = 0
        try:
            async with self.sessionmaker.begin() as session:
                told = await self._sweep(session, now, tallies)
                recipients = await DeviceAlertRepository(session).recipients(
                    t.device_id for t in told
                )
                notices = [
                    (
                        recipients[t.device_id].owner_id,
                        t.code,
                        {
                            "device": recipients[t.device_id].name,
                            "platform": recipients[t.device_id].platform,
                            **t.params,
                        },
                    )
                    for t in told
                    if t.device_id in recipients
                ]
                await self.outbox.notice_many(session, notices)
        except BaseException:
            self._restore(tallies)
            raise
        if notices:
            logger.info("device health: %d alerts told", len(notices))
        return len(notices)

    def _restore(self, tallies: dict[tuple[int, Cause], _Tally]) -> None:
        for key, old in tallies.items():
            new = self._tallies.get(key)
            if new is None:
                if len(self._tallies) < MAX_TALLIES:
                    self._tallies[key] = old
            else:
                new.count += old.count
                new.first_at = min(new.first_at, old.first_at)

    def _judged(self, now: datetime, silence: timedelta) -> bool:
        """Whether this process has run long enough to call a device silent for ``silence``."""
        return self._started_at is None or now - self._started_at >= silence

    def _seen(self, device_pk: int, stored: datetime | None) -> datetime | None:
        """The device's last signed request: stored, or seen by this process since."""
        return self.activity.last_seen(device_pk, stored)

    async def _sweep(
        self, session: AsyncSession, now: datetime, tallies: dict[tuple[int, Cause], _Tally]
    ) -> list[_Told]:
        repo = DeviceAlertRepository(session)
        cfg = self.config
        window_start = now - timedelta(minutes=cfg.window_minutes)
        repeat_cutoff = now - timedelta(minutes=cfg.repeat_after_minutes)
        counted: dict[Cause, list[int]] = {}
        for cause in COUNTED:
            batch = [
                Tally(pk, t.count, t.first_at, {"last_at": _iso(t.last_at), **t.detail})
                for (pk, c), t in sorted(tallies.items(), key=lambda item: item[0])
                if c is cause
            ]
            counted[cause] = await repo.add_counts(cause, batch, window_start)
        told = await self._clear(repo, now, window_start)
        told += await self._raise_counted(repo, counted, now, window_start, repeat_cutoff)
        told += await self._raise_timed(repo, now, repeat_cutoff)
        return told

    async def _clear(
        self, repo: DeviceAlertRepository, now: datetime, window_start: datetime
    ) -> list[_Told]:
        """End the active alerts whose cause went away; "back online" for those offline."""
        gone: dict[Cause, list[int]] = {cause: [] for cause in Cause}
        trade_disabled: list[int] = []
        for alert in await repo.active(list(Cause)):
            cause = Cause(alert.cause)
            if cause is Cause.TRADE_DISABLED:
                trade_disabled.append(alert.device_id)  # the latest state says: below
            elif _went_away(alert, self._seen(alert.device_id, alert.last_seen_at), window_start):
                gone[cause].append(alert.device_id)
        if trade_disabled:
            still = await repo.trade_still_disabled(trade_disabled)
            gone[Cause.TRADE_DISABLED] = [pk for pk in trade_disabled if pk not in still]
        told: list[_Told] = []
        for cause, device_ids in gone.items():
            if not device_ids:
                continue
            cleared = await repo.clear(cause, device_ids, now)
            if cause is Cause.OFFLINE:
                told += [_Told(pk, NoticeCode.DEVICE_BACK_ONLINE, {}) for pk in cleared]
        return told

    async def _raise_counted(
        self,
        repo: DeviceAlertRepository,
        counted: dict[Cause, list[int]],
        now: datetime,
        window_start: datetime,
        repeat_cutoff: datetime,
    ) -> list[_Told]:
        """Tell the devices just counted whose count reached its threshold in the window."""
        cfg = self.config
        causes = (
            (Cause.BAD_SIGNATURE, cfg.bad_signature_count, NoticeCode.DEVICE_BAD_SIGNATURE),
            (Cause.STALE_CLOCK, cfg.stale_clock_count, NoticeCode.DEVICE_CLOCK_SKEW),
        )
        told: list[_Told] = []
        for cause, threshold, code in causes:
            for pk, count, detail in await repo.raise_counted(
                cause,
                counted[cause],
                threshold=threshold,
                window_start=window_start,
                now=now,
                repeat_cutoff=repeat_cutoff,
            ):
                if cause is Cause.BAD_SIGNATURE:
                    params = {"count": count, "minutes": cfg.window_minutes}
                else:  # how far off the latest stale request was
                    params = {"skew": int(detail["skew_s"]), "limit": int(detail["limit_s"])}
                told.append(_Told(pk, code, params))
        return told

    async def _raise_timed(
        self, repo: DeviceAlertRepository, now: datetime, repeat_cutoff: datetime
    ) -> list[_Told]:
        told = await self._raise_never_seen(repo, now, repeat_cutoff)
        told += await self._raise_offline(repo, now, repeat_cutoff)
        disabled: dict[int, dict[str, Any]] = {pk: {} for pk in await repo.trade_disabled()}
        for pk in await repo.claim(
            Cause.TRADE_DISABLED, disabled, now=now, repeat_cutoff=repeat_cutoff
        ):
            told.append(_Told(pk, NoticeCode.DEVICE_TRADE_DISABLED, {}))
        return told

    async def _raise_never_seen(
        self, repo: DeviceAlertRepository, now: datetime, repeat_cutoff: datetime
    ) -> list[_Told]:
        never_seen = timedelta(minutes=self.config.never_seen_minutes)
        if not self._judged(now, never_seen):
            return []
        added = {
            pk: created_at
            for pk, created_at in await repo.never_seen(now - never_seen)
            if self._seen(pk, None) is None  # this process saw it since the last flush
        }
        details: dict[int, dict[str, Any]] = {
            pk: {"created_at": _iso(at)} for pk, at in added.items()
        }
        url = self.settings.server.public_url
        return [
            _Told(
                pk,
                NoticeCode.DEVICE_NEVER_SEEN,
                {"server_url": url, "minutes": _minutes(now - added[pk])},
            )
            for pk in await repo.claim(
                Cause.NEVER_SEEN, details, now=now, repeat_cutoff=repeat_cutoff
            )
        ]

    async def _raise_offline(
        self, repo: DeviceAlertRepository, now: datetime, repeat_cutoff: datetime
    ) -> list[_Told]:
        offline = timedelta(seconds=self.config.offline_seconds)
        if not self._judged(now, offline):
            return []
        away: dict[int, tuple[datetime, int]] = {}
        for pk, (stored, waiting) in (await repo.waiting_while_away(now - offline, now)).items():
            seen = self._seen(pk, stored)
            if seen is not None and now - seen >= offline:
                away[pk] = (seen, waiting)
        details: dict[int, dict[str, Any]] = {
            pk: {"last_seen_at": _iso(seen), "waiting": waiting}
            for pk, (seen, waiting) in away.items()
        }
        return [
            _Told(
                pk,
                NoticeCode.DEVICE_OFFLINE,
                {"minutes": _minutes(now - away[pk][0]), "waiting": away[pk][1]},
            )
            for pk in await repo.claim(Cause.OFFLINE, details, now=now, repeat_cutoff=repeat_cutoff)
        ]

    # --- life cycle ---

    async def start(self) -> None:
        """Sweep every ``sweep_seconds`` from now on (when alerts are enabled)."""
        if self._task is not None or not self.config.enabled:
            return
        self._started_at = self.clock()
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="device-health")

    async def close(self) -> None:
        """Stop sweeping; a sweep under way gets :data:`CLOSE_GRACE_S` to finish."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), CLOSE_GRACE_S)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        interval = self.config.sweep_seconds
        while not self._stop.is_set():
            try:
                await self.sweep()
            except Exception as exc:
                logger.warning(
                    "device health: sweep failed (%s); next in %s s", type(exc).__name__, interval
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), interval)
