"""Long polls of devices: who waits for what, and which devices have nothing pending.

``GET /api/v1/ea/instructions?wait=N`` holds a request open until the device has something
to do; :meth:`DeviceHub.poll` is that loop. The hub keeps the set of devices known to have
nothing pending, so their polls answer without a database read:

- at start-up (:meth:`DeviceHub.start`) and every ``reload_every`` seconds after, it reads
  the set from the database in one query: a restarted server knows it at once, and a
  notification lost on its way (an instance died between its commit and its publish)
  delays a device by ``reload_every`` at most;
- a poll that found nothing adds its device;
- :meth:`DeviceHub.notify` ("something may be pending for this device") removes the
  device on every instance (bot/infra/pubsub.py) and wakes its waiting polls. Issuing
  (bot/execution/issuing.py) and every change of a device's settings
  (bot/domain/devices.py) notify after their commit: a device is only ever marked
  idle by a read that saw everything committed before its notifications
  (tests/test_ea_endpoints.py drives each of those changes against an idle device).

A generation counter per device (and an epoch for the whole hub, bumped when pub/sub
reconnects and may have lost messages) closes the race of a notification arriving while
a read is running: its "nothing pending" is then dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

from bot.infra.pubsub import Broadcast

logger = logging.getLogger(__name__)

WAKE_CHANNEL = "device-wake"
RELOAD_EVERY_S = 30.0

T = TypeVar("T")
# The device pks with nothing pending, read from the database in one go.
IdleLoader = Callable[[], Awaitable[Collection[int]]]

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
    def __init__(self, broadcast: Broadcast, *, reload_every: float = RELOAD_EVERY_S) -> None:
        self._broadcast = broadcast
        self._reload_every = reload_every
        self._waiters: dict[int, set[Waiter]] = {}
        self._generations: dict[int, int] = {}
        self._idle: set[int] = set()
        self._epoch = 0
        self._released = False
        self._load: IdleLoader | None = None
        self._reload_now = asyncio.Event()
        self._reloading: asyncio.Task[None] | None = None
        broadcast.subscribe(WAKE_CHANNEL, self._on_message)
        broadcast.on_resync(self._resync)

    async def start(self, load: IdleLoader) -> None:
        """Learn which devices have nothing pending now, then again every ``reload_every``
        seconds and after every pub/sub reconnect. Until it runs, every poll reads."""
        self._load = load
        await self._reload()
        if self._reloading is None:
            self._reloading = asyncio.create_task(self._reload_forever(), name="device-hub")

    async def close(self) -> None:
        if self._reloading is not None:
            self._reloading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reloading
            self._reloading = None

    def notify(self, device_pk: int) -> None:
        """Something may be pending for ``device_pk``: wake its polls on every instance.
        Call it once the change is committed (db.hooks.after_commit)."""
        self._broadcast.publish(WAKE_CHANNEL, str(device_pk))

    async def poll(
        self, device_pk: int, check: Callable[[], Awaitable[Sequence[T]]], wait: float
    ) -> Sequence[T]:
        """What ``check`` finds for the device, waiting up to ``wait`` s for something.

        ``check`` reads the database; it is not called while the device is known to
        have nothing pending, and each wake-up calls it again."""
        if wait <= 0:
            return await self._check(device_pk, check)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            # Registered before the check: a notification during it wakes the wait at once.
            with self.waiter(device_pk) as waiter:
                found = await self._check(device_pk, check)
                remaining = deadline - loop.time()
                if found or remaining <= 0 or self._released:
                    return found
                await waiter.wait(remaining)

    @contextmanager
    def waiter(self, device_pk: int) -> Iterator[Waiter]:
        """A registration woken by the device's next notification (or at shutdown)."""
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
        """Changes with every notification of the device and every resync."""
        return self._epoch, self._generations.get(device_pk, 0)

    def is_idle(self, device_pk: int) -> bool:
        """True when the device is known to have nothing pending."""
        return device_pk in self._idle

    def release_all(self) -> None:
        """Shutdown: every waiting poll answers now, and new ones do not wait."""
        self._released = True
        self._wake_all()

    async def _check(
        self, device_pk: int, check: Callable[[], Awaitable[Sequence[T]]]
    ) -> Sequence[T]:
        if device_pk in self._idle:
            return []
        generation = self.generation(device_pk)
        found = await check()
        if not found and self.generation(device_pk) == generation:
            self._idle.add(device_pk)
        return found

    async def _reload(self) -> None:
        if self._load is None:
            return
        epoch, generations = self._epoch, dict(self._generations)
        idle = await self._load()
        if self._epoch != epoch:
            return  # a resync came meanwhile and asked for another load
        # A device notified while the load ran may have work the load did not see.
        self._idle = {pk for pk in idle if self._generations.get(pk, 0) == generations.get(pk, 0)}

    async def _reload_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._reload_every):
                    await self._reload_now.wait()
            self._reload_now.clear()
            try:
                await self._reload()
            except Exception as exc:
                # The set stays as notifications keep it; the next round tries again.
                logger.warning("device hub reload failed: %s", type(exc).__name__)

    def _on_message(self, message: str) -> None:
        try:
            device_pk = int(message)
        except ValueError:
            return
        self._generations[device_pk] = self._generations.get(device_pk, 0) + 1
        self._idle.discard(device_pk)
        for waiter in self._waiters.get(device_pk, ()):
            waiter.wake()

    def _resync(self) -> None:
        """Pub/sub reconnected and may have lost notifications: forget what is known."""
        self._epoch += 1
        self._idle.clear()
        self._reload_now.set()
        self._wake_all()

    def _wake_all(self) -> None:
        for waiters in self._waiters.values():
            for waiter in waiters:
                waiter.wake()
