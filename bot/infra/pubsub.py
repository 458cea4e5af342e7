"""Small messages to every instance: wake a device's long polls, forget a cached key.

:class:`Broadcast` delivers within this process (one instance, the default);
:class:`RedisBroadcast` (``redis.url`` set) also carries each message over Redis pub/sub to
the other instances. Either way the publishing process's own subscribers get the message
at once and synchronously, so ``publish`` can run in an after-commit hook. Pub/sub can
drop messages while a connection is down, so after a reconnect subscribers get a
``resync`` call and must assume they missed anything (clear caches, re-check work).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from typing import Any

from bot.config import ConfigError

logger = logging.getLogger(__name__)

Subscriber = Callable[[str], None]

RECONNECT_DELAYS_S = (0.1, 0.5, 1.0, 2.0, 5.0)
START_TIMEOUT_S = 5.0


class Broadcast:
    """In-process delivery; the base of the cross-instance variants."""

    def __init__(self) -> None:
        self._subscribers: dict[str, list[Subscriber]] = {}
        self._resync: list[Callable[[], None]] = []

    def subscribe(self, channel: str, callback: Subscriber) -> None:
        """Call ``callback(message)`` for every message on ``channel``, from any instance."""
        self._subscribers.setdefault(channel, []).append(callback)

    def on_resync(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after a gap in which messages may have been lost."""
        self._resync.append(callback)

    def publish(self, channel: str, message: str) -> None:
        """Deliver ``message`` here at once and, where configured, to the other instances."""
        self._deliver(channel, message)
        self._send(channel, message)

    async def start(self) -> None:
        """Connect (nothing to do in-process)."""
        return None

    async def close(self) -> None:
        """Send what is queued and disconnect (nothing to do in-process)."""
        return None

    def _send(self, channel: str, message: str) -> None:
        """Carry the message to the other instances (there are none in-process)."""
        return None

    def _deliver(self, channel: str, message: str) -> None:
        for callback in self._subscribers.get(channel, ()):
            try:
                callback(message)
            except Exception:
                logger.exception("subscriber of %s failed", channel)

    def resynced(self) -> None:
        """Messages may have been missed (a reconnect): tell every resync subscriber."""
        for callback in self._resync:
            try:
                callback()
            except Exception:
                logger.exception("resync callback failed")


class RedisBroadcast(Broadcast):
    """Local delivery plus Redis pub/sub on ``<prefix>:bc:<channel>`` for the other instances.

    Each message carries this instance's random id, so the listener skips its own echoes.
    Publishing goes through one queue and one task, so messages leave in order.
    """

    def __init__(self, url: str, *, prefix: str = "signalbridge") -> None:
        super().__init__()
        import redis.asyncio as redis

        self._redis: Any = redis.Redis.from_url(url)
        self._prefix = f"{prefix}:bc:"
        self._origin = secrets.token_hex(8)
        self._outbox: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._subscribed = asyncio.Event()

    async def start(self) -> None:
        if self._tasks:
            return
        self._tasks = [
            asyncio.create_task(self._listen(), name="broadcast-listen"),
            asyncio.create_task(self._publish_loop(), name="broadcast-publish"),
        ]
        # Messages published by others before we listen would be lost silently.
        try:
            await asyncio.wait_for(self._subscribed.wait(), timeout=START_TIMEOUT_S)
        except TimeoutError:
            await self.close()
            raise ConfigError(
                f"redis.url: Redis does not answer within {START_TIMEOUT_S:.0f} s"
            ) from None

    async def close(self) -> None:
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._outbox.join(), timeout=2.0)
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks = []
        await self._redis.aclose()

    def _send(self, channel: str, message: str) -> None:
        self._outbox.put_nowait((channel, message))

    async def _publish_loop(self) -> None:
        while True:
            channel, message = await self._outbox.get()
            try:
                for attempt, delay in enumerate((0.0, *RECONNECT_DELAYS_S)):
                    await asyncio.sleep(delay)
                    try:
                        await self._redis.publish(
                            self._prefix + channel, f"{self._origin} {message}"
                        )
                        break
                    except Exception as exc:
                        logger.warning(
                            "broadcast publish failed (attempt %d): %s",
                            attempt + 1,
                            type(exc).__name__,
                        )
                else:
                    logger.error("broadcast message on %s dropped: Redis unreachable", channel)
            finally:
                self._outbox.task_done()

    async def _listen(self) -> None:
        failures = 0
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(self._prefix + "*")
                if failures:
                    logger.info("broadcast listener reconnected")
                    self.resynced()
                failures = 0
                self._subscribed.set()
                while True:
                    item = await pubsub.get_message(timeout=30.0)
                    if item is not None:
                        self._received(item)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = RECONNECT_DELAYS_S[min(failures, len(RECONNECT_DELAYS_S) - 1)]
                failures += 1
                logger.warning(
                    "broadcast listener lost Redis (%s); retrying in %.1f s",
                    type(exc).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _received(self, item: dict[str, Any]) -> None:
        if item.get("type") != "pmessage":
            return
        channel = _text(item["channel"]).removeprefix(self._prefix)
        origin, _, message = _text(item["data"]).partition(" ")
        if origin != self._origin:
            self._deliver(channel, message)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def create_broadcast(redis_url: str, prefix: str) -> Broadcast:
    return RedisBroadcast(redis_url, prefix=prefix) if redis_url else Broadcast()
