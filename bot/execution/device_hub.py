"""Wake-ups for long polls, per device, and the "nothing pending" marks that spare the DB.

``GET /api/v1/ea/instructions?wait=N`` holds a request open until the device has
something to do. Whoever makes something pending for a device (an approval, a provider's
change, a device resumed) calls :meth:`DeviceHub.notify` after the commit
(``db.hooks.after_commit(session, lambda: hub.notify(pk))``): every waiting poll of that
device, on every instance (bot/infra/pubsub.py), re-checks at once.

The same notifications keep a cheap "idle" mark per device: after a check found nothing
pending, the device's polls skip the database until it is notified (or ``idle_ttl``
seconds pass, a safety net for a lost message). A generation counter closes the race of
a notification arriving while a check is running: the mark is set only if no
notification came in between.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager

from bot.infra.pubsub import Broadcast

WAKE_CHANNEL = "device-wake"

# (hub-wide epoch, device's count of notifications): compared, never interpreted.
Generation = tuple[int, int]


class Waiter:
    """One long poll's registration; see :meth:`DeviceHub.waiter`."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def wake(self) -> None:
        self._event.set()

    async def wait(self, within: float) -> bool:
        """Wait up to ``within`` s; True when woken, False when the time ran out."""
        try:
            async with asyncio.timeout(within):
                await self._event.wait()
        except TimeoutError:
            return False
        return True


class DeviceHub:
    def __init__(self, broadcast: Broadcast, *, idle_ttl: float = 30.0) -> None:
        self._broadcast = broadcast
        self._idle_ttl = idle_ttl
        self._waiters: dict[int, set[Waiter]] = {}
        self._generations: dict[int, int] = {}
        self._idle: dict[int, float] = {}
        self._epoch = 0
        self._released = False
        broadcast.subscribe(WAKE_CHANNEL, self._on_message)
        broadcast.on_resync(self._wake_all)

    def notify(self, device_pk: int) -> None:
        """Something may be pending for ``device_pk``: wake its polls on every instance."""
        self._broadcast.publish(WAKE_CHANNEL, str(device_pk))

    @contextmanager
    def waiter(self, device_pk: int) -> Iterator[Waiter]:
        """Register before checking for work, so a notification during the check is kept."""
        waiter = Waiter()
        if self._released:
            waiter.wake()
        waiters = self._waiters.setdefault(device_pk, set())
        waiters.add(waiter)
        try:
            yield waiter
        finally:
            waiters.discard(waiter)
            if not waiters:
                self._waiters.pop(device_pk, None)

    @property
    def released(self) -> bool:
        """True once :meth:`release_all` ran (shutdown)."""
        return self._released

    @property
    def waiting(self) -> int:
        """Long polls waiting in this process (for metrics)."""
        return sum(len(waiters) for waiters in self._waiters.values())

    def generation(self, device_pk: int) -> Generation:
        """Read before a check; pass to :meth:`mark_idle` after it found nothing."""
        return self._epoch, self._generations.get(device_pk, 0)

    def mark_idle(self, device_pk: int, generation: Generation) -> None:
        if self.generation(device_pk) == generation:
            self._idle[device_pk] = time.monotonic() + self._idle_ttl

    def is_idle(self, device_pk: int) -> bool:
        """True when a check found nothing pending and no notification came since."""
        until = self._idle.get(device_pk)
        if until is None:
            return False
        if until > time.monotonic():
            return True
        del self._idle[device_pk]
        return False

    def release_all(self) -> None:
        """Shutdown: every waiting poll answers now, and new ones do not wait."""
        self._released = True
        self._wake_all()

    def _on_message(self, message: str) -> None:
        try:
            device_pk = int(message)
        except ValueError:
            return
        self._generations[device_pk] = self._generations.get(device_pk, 0) + 1
        self._idle.pop(device_pk, None)
        for waiter in self._waiters.get(device_pk, ()):
            waiter.wake()

    def _wake_all(self) -> None:
        self._epoch += 1
        self._idle.clear()
        for waiters in self._waiters.values():
            for waiter in waiters:
                waiter.wake()
