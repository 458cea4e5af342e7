"""When a message may go to Telegram: one limit for the deployment, and each chat's pace.

Two rules, checked together for every message the send path lets go
(bot/infra/sending.py):

- **The send limit**: never more than ``sending.global_per_second`` messages in any one
  second (a moving window; a fraction is rounded down, and a rate below 1 means one
  message per 1/rate seconds). A message holds its place in the window from the moment
  it is let go until one window after Telegram answered it, so however long requests
  spend in transit, Telegram never sees more than the limit within a second; and the
  window starts empty, so there is no opening burst (a leaky bucket lets its whole
  capacity through at once, then the rate).
- **A chat's pace**: ``per_chat_burst`` messages in a row, then one per
  ``per_chat_interval_seconds`` (a token bucket kept as the chat's "theoretical arrival
  time", GCRA); the interval is counted from Telegram's answer, so a slow answer delays
  the next message rather than letting two arrive close together.

:class:`MemoryGate` keeps both in this process (one instance): a deque of the window's
answered messages and a dict of chats, O(1) per message and no I/O. :class:`RedisGate`
(``redis.url`` set) keeps them in Redis so all instances share one window and each
chat's pace: one Lua call to be let go and one after the answer, both atomic and on
Redis's own clock (``TIME``), so the instances' clocks need not agree. Keys:
``<prefix>:send:window`` (a sorted set: one member per message, scored with when it
leaves the window), ``<prefix>:send:chat:<chat id>`` (a hash: the chat's pace time and
how many messages it got) and ``<prefix>:send:pause`` (a 429 pauses every instance). A
message in flight on an instance that dies keeps its place for ``IN_FLIGHT_HOLD_S`` at
most. When Redis fails, the instance falls back to its own MemoryGate (logged) rather
than stop sending, and tries Redis again every ``REDIS_RETRY_S``.

Within one process a chat's messages go one at a time (the send path's lanes), so the
chat's pace counted from each answer covers the next message. Across instances a chat
may have several in flight (its burst); the answer then re-counts the pace for every
message let go after it, so the bound holds at Telegram, not only when messages leave.
"""

from __future__ import annotations

import itertools
import logging
import math
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from bot.config import SendingSettings

logger = logging.getLogger(__name__)

ChatKey = int | str
# How long a message let go but never answered (its instance died) holds its place in the
# shared window; an answer always comes sooner (aiogram's request timeout is 60 s, but
# Telegram answers in well under a second, or the request fails at once).
IN_FLIGHT_HOLD_S = 10.0
# After Redis failed, messages use the local gate for this long before Redis is tried again
# (a Redis that does not answer would otherwise cost every message its socket timeout).
REDIS_RETRY_S = 5.0
# The dict of chats is swept of chats whose pace no longer matters when it grows past this.
SWEEP_AT = 10_000


@dataclass(frozen=True, slots=True)
class Pacing:
    """The two rules as numbers: ``window_count`` messages per ``window`` seconds, and a
    chat's ``chat_interval`` with ``chat_slack`` (how far ahead its pace may run)."""

    window_count: int
    window: float
    chat_interval: float
    chat_slack: float

    @classmethod
    def of(cls, settings: SendingSettings) -> Pacing:
        rate = settings.global_per_second
        # Whole messages per second (2.5 allows 2); below one, one message per 1/rate s.
        count, window = (math.floor(rate), 1.0) if rate >= 1 else (1, 1 / rate)
        interval = settings.per_chat_interval_seconds
        return cls(
            window_count=count,
            window=window,
            chat_interval=interval,
            chat_slack=(settings.per_chat_burst - 1) * interval,
        )


@dataclass(frozen=True, slots=True)
class Admission:
    """The gate's answer: let go now (``wait`` 0, with a ``ticket`` to hand back on the
    answer), or ask again in ``wait`` seconds; ``everyone`` when the wait is not only this
    chat's (the window is full, or sending is paused), so nobody else may go first."""

    wait: float = 0.0
    everyone: bool = False
    ticket: str = ""


ADMITTED = Admission()


class SendGate(Protocol):
    async def enter(self, chat: ChatKey | None) -> Admission:
        """Take a place for one message (to ``chat``, or to no chat's pace)."""
        ...

    async def leave(self, chat: ChatKey | None, ticket: str) -> None:
        """Telegram answered (or the request failed): count the window and pace from now."""
        ...

    async def pause(self, seconds: float) -> None:
        """Telegram said 429: no instance may send for ``seconds``."""
        ...

    async def close(self) -> None: ...


class MemoryGate:
    """Both rules in this process; ``time`` is a monotonic clock in seconds."""

    def __init__(self, pacing: Pacing, time: Callable[[], float]) -> None:
        self.pacing = pacing
        self._time = time
        self._in_flight = 0
        # When each answered message leaves the window, oldest first (answers come in order
        # of time, so this stays sorted and the window is pruned from the left).
        self._answered: deque[float] = deque()
        self._chats: dict[ChatKey, float] = {}
        self._sweep_at = SWEEP_AT

    @property
    def chats_paced(self) -> int:
        """Chats whose pace is still remembered (quiet ones are forgotten in sweeps)."""
        return len(self._chats)

    async def enter(self, chat: ChatKey | None) -> Admission:
        now = self._time()
        pacing = self.pacing
        tat = now
        if chat is not None:
            tat = max(now, self._chats.get(chat, now))
            if (wait := tat - pacing.chat_slack - now) > 0:
                return Admission(wait)
        answered = self._answered
        while answered and answered[0] <= now:
            answered.popleft()
        if self._in_flight + len(answered) >= pacing.window_count:
            # A message still in flight leaves the window one window after its answer at
            # the earliest; an answered one when its time comes.
            wait = answered[0] - now if answered else pacing.window
            return Admission(wait, everyone=True)
        self._in_flight += 1
        if chat is not None:
            self._chats[chat] = tat + pacing.chat_interval
        return ADMITTED

    async def leave(self, chat: ChatKey | None, ticket: str) -> None:
        now = self._time()
        pacing = self.pacing
        self._in_flight -= 1
        self._answered.append(now + pacing.window)
        if chat is not None:
            paced_from_answer = now + pacing.chat_interval
            if self._chats.get(chat, 0.0) < paced_from_answer:
                self._chats[chat] = paced_from_answer
            if len(self._chats) > self._sweep_at:
                self._sweep(now)

    def _sweep(self, now: float) -> None:
        # A chat whose pace time has passed is as good as unknown.
        self._chats = {chat: tat for chat, tat in self._chats.items() if tat > now}
        self._sweep_at = max(SWEEP_AT, 2 * len(self._chats))

    async def pause(self, seconds: float) -> None:
        """Nothing to share: the send path pauses this process itself."""
        return None

    async def close(self) -> None:
        self._chats.clear()


# Times are microseconds of Redis's clock. A chat is a hash: its pace time ``t`` and ``n``,
# how many of its messages have been let go. KEYS: window, pause[, chat]. ARGV: window
# count, window, hold, chat interval, chat slack, member. Returns {0, n} when let go (n:
# the message's number in its chat), {1, wait} when everyone waits, {2, wait} when only
# this chat does.
_LUA_ENTER = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local paused = redis.call('PTTL', KEYS[2])
if paused > 0 then return {1, paused * 1000} end
local window = tonumber(ARGV[2])
local hold = tonumber(ARGV[3])
local tat = now
local sent = 0
if #KEYS > 2 then
  local chat = redis.call('HMGET', KEYS[3], 't', 'n')
  local stored = tonumber(chat[1])
  sent = tonumber(chat[2]) or 0
  if stored ~= nil and stored > now then tat = stored end
  local wait = tat - tonumber(ARGV[5]) - now
  if wait > 0 then return {2, wait} end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  local wait = tonumber(first[2]) - now
  if wait > window then wait = window end
  return {1, wait}
end
redis.call('ZADD', KEYS[1], string.format('%.0f', now + hold + window), ARGV[6])
redis.call('PEXPIRE', KEYS[1], math.ceil((hold + window) / 1000) + 1000)
if #KEYS > 2 then
  local paced = tat + tonumber(ARGV[4])
  redis.call('HSET', KEYS[3], 't', string.format('%.0f', paced), 'n', sent + 1)
  redis.call('PEXPIRE', KEYS[3], math.ceil((paced - now + hold) / 1000) + 1000)
end
return {0, sent + 1}
"""

# KEYS: window[, chat]. ARGV: member, window, hold, chat interval, the message's number.
# The chat's pace runs from this answer for this message and every one let go after it
# (on other instances, while this one was in flight), so a chat's k-th message reaches
# Telegram at least (k - j + 1 - burst) intervals after its j-th, whatever the transit.
_LUA_LEAVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[2])
local hold = tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], string.format('%.0f', now + window), ARGV[1])
redis.call('PEXPIRE', KEYS[1], math.ceil((hold + window) / 1000) + 1000)
if #KEYS > 1 then
  local chat = redis.call('HMGET', KEYS[2], 't', 'n')
  local after = (tonumber(chat[2]) or 0) - tonumber(ARGV[5])
  if after < 0 then after = 0 end
  local paced = now + (after + 1) * tonumber(ARGV[4])
  local stored = tonumber(chat[1])
  if stored == nil or stored < paced then
    redis.call('HSET', KEYS[2], 't', string.format('%.0f', paced))
    redis.call('PEXPIRE', KEYS[2], math.ceil((paced - now + hold) / 1000) + 1000)
  end
end
return 1
"""

# KEYS: pause. ARGV: milliseconds. A pause is only ever lengthened.
_LUA_PAUSE = """
local ms = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) < ms then redis.call('SET', KEYS[1], '1', 'PX', ms) end
return 1
"""

_US = 1_000_000


class RedisGate:
    """Both rules in Redis, shared by every instance with the same ``redis.prefix``."""

    def __init__(
        self,
        redis: Any,
        pacing: Pacing,
        fallback: MemoryGate,
        time: Callable[[], float],
        *,
        prefix: str,
    ) -> None:
        from redis.exceptions import RedisError

        self.redis = redis
        self._time = time
        self.pacing = pacing
        self.fallback = fallback
        self._failures: tuple[type[Exception], ...] = (RedisError, OSError)
        self._window_key = f"{prefix}:send:window"
        self._pause_key = f"{prefix}:send:pause"
        self._chat_prefix = f"{prefix}:send:chat:"
        self._origin = secrets.token_hex(6)
        self._serial = itertools.count(1)
        self._enter = redis.register_script(_LUA_ENTER)
        self._leave = redis.register_script(_LUA_LEAVE)
        self._pause = redis.register_script(_LUA_PAUSE)
        self._args = (
            pacing.window_count,
            round(pacing.window * _US),
            round(IN_FLIGHT_HOLD_S * _US),
            round(pacing.chat_interval * _US),
            round(pacing.chat_slack * _US),
        )
        self._degraded = False
        self._retry_at = 0.0

    def _keys(self, chat: ChatKey | None, *first: str) -> list[str]:
        keys = [self._window_key, *first]
        if chat is not None:
            keys.append(f"{self._chat_prefix}{chat}")
        return keys

    async def enter(self, chat: ChatKey | None) -> Admission:
        if self._degraded and self._time() < self._retry_at:
            return await self.fallback.enter(chat)
        member = f"{self._origin}:{next(self._serial)}"
        try:
            verdict, wait = await self._enter(
                keys=self._keys(chat, self._pause_key), args=[*self._args, member]
            )
        except self._failures as exc:
            self._lost(exc)
            return await self.fallback.enter(chat)
        self._back()
        if int(verdict) == 0:
            return Admission(ticket=f"{member} {int(wait)}")
        return Admission(int(wait) / _US, everyone=int(verdict) == 1)

    async def leave(self, chat: ChatKey | None, ticket: str) -> None:
        if not ticket:  # let go by the fallback while Redis was away
            await self.fallback.leave(chat, ticket)
            return
        member, _, number = ticket.partition(" ")
        window, hold, interval = self._args[1], self._args[2], self._args[3]
        try:
            await self._leave(keys=self._keys(chat), args=[member, window, hold, interval, number])
        except self._failures as exc:
            # Its place expires by itself (IN_FLIGHT_HOLD_S after it was let go).
            self._lost(exc)

    async def pause(self, seconds: float) -> None:
        try:
            await self._pause(keys=[self._pause_key], args=[math.ceil(seconds * 1000)])
        except self._failures as exc:
            self._lost(exc)

    def _lost(self, exc: Exception) -> None:
        self._retry_at = self._time() + REDIS_RETRY_S
        if not self._degraded:
            self._degraded = True
            logger.warning(
                "send limit: Redis unavailable (%s); this instance paces on its own",
                type(exc).__name__,
            )

    def _back(self) -> None:
        if self._degraded:
            self._degraded = False
            logger.info("send limit: Redis is back; the limit is shared again")

    async def close(self) -> None:
        await self.redis.aclose()


def create_send_gate(
    settings: SendingSettings, time: Callable[[], float], *, redis_url: str = "", prefix: str = ""
) -> SendGate:
    pacing = Pacing.of(settings)
    local = MemoryGate(pacing, time)
    if not redis_url:
        return local
    from redis.asyncio import Redis

    # Short timeouts: a Redis that hangs must not hold every message; the fallback takes over.
    client = Redis.from_url(redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
    return RedisGate(client, pacing, local, time, prefix=prefix)
