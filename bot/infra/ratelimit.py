"""Per-user token buckets: in this process, or in Redis when several instances run.

A bucket holds up to ``capacity`` tokens and regains ``refill_per_second``; every update
takes one. The first refusal after an allowed update says ``notify`` (the user is told
once); later refusals are silent until a token is back.

An update is counted at the instant it arrived (``at``, the intake's ``received_at``) when
that is known, not when it is processed: a chat's updates wait for each other, and their
replies for the chat's send pacing, so a burst would otherwise be processed slowly enough
for the bucket to refill meanwhile. A bucket's clock never goes back: an update that
arrived before the last one counted (another chat, another instance) refills nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from bot.config import Settings
from bot.infra.clock import Clock

# A dict of buckets is swept of full (forgettable) buckets when it grows past this.
SWEEP_AT = 10_000


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    notify: bool = False
    retry_after: float = 0.0

    @property
    def retry_after_seconds(self) -> int:
        """Whole seconds to tell the user (at least 1)."""
        return max(1, math.ceil(self.retry_after - 1e-9))


ALLOWED = Verdict(allowed=True)


class RateLimiter(Protocol):
    async def hit(self, key: int, at: datetime | None = None) -> Verdict:
        """Take one token from ``key``'s bucket, counted at ``at`` (default: now)."""
        ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float
    notified: bool = False


class MemoryRateLimiter:
    def __init__(self, capacity: int, refill_per_second: float, clock: Clock) -> None:
        self.capacity = float(capacity)
        self.rate = refill_per_second
        self.clock = clock
        self._buckets: dict[int, _Bucket] = {}
        self._sweep_at = SWEEP_AT

    async def hit(self, key: int, at: datetime | None = None) -> Verdict:
        now = (at or self.clock()).timestamp()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._sweep_at:
                self._sweep(now)
            bucket = self._buckets[key] = _Bucket(self.capacity, now)
        tokens = min(self.capacity, bucket.tokens + max(0.0, now - bucket.stamp) * self.rate)
        bucket.stamp = max(bucket.stamp, now)
        if tokens >= 1:
            bucket.tokens = tokens - 1
            bucket.notified = False
            return ALLOWED
        bucket.tokens = tokens
        notify = not bucket.notified
        bucket.notified = True
        return Verdict(allowed=False, notify=notify, retry_after=(1 - tokens) / self.rate)

    def _sweep(self, now: float) -> None:
        full_after = self.capacity / self.rate
        self._buckets = {
            key: bucket for key, bucket in self._buckets.items() if now - bucket.stamp < full_after
        }
        self._sweep_at = max(SWEEP_AT, 2 * len(self._buckets))

    @property
    def tracked(self) -> frozenset[int]:
        """The keys that have a bucket in memory."""
        return frozenset(self._buckets)

    async def close(self) -> None:
        self._buckets.clear()


# The same arithmetic as MemoryRateLimiter.hit, atomic inside Redis. The caller's clock
# (or the update's arrival) is passed in (instances keep NTP time; tests move it), and the
# key expires once full.
_LUA_TAKE = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local ttl_ms = tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 't', 's', 'n')
local tokens = tonumber(state[1])
local stamp = tonumber(state[2])
local notified = state[3]
if tokens == nil or stamp == nil then
  tokens = capacity
  stamp = now
  notified = '0'
end
local elapsed = now - stamp
if elapsed < 0 then elapsed = 0 end
tokens = math.min(capacity, tokens + elapsed * rate)
if now > stamp then stamp = now end
local allowed = 0
local notify = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
  notified = '0'
else
  wait = (1 - tokens) / rate
  if notified ~= '1' then notify = 1 end
  notified = '1'
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 's', tostring(stamp), 'n', notified)
redis.call('PEXPIRE', KEYS[1], ttl_ms)
return {allowed, notify, tostring(wait)}
"""


class RedisRateLimiter:
    def __init__(
        self,
        redis: Any,
        capacity: int,
        refill_per_second: float,
        clock: Clock,
        *,
        prefix: str = "signalbridge",
    ) -> None:
        self.redis = redis
        self.capacity = capacity
        self.rate = refill_per_second
        self.clock = clock
        self.prefix = f"{prefix}:ratelimit:"
        self._ttl_ms = math.ceil(capacity / refill_per_second * 1000) + 1000
        self._take = redis.register_script(_LUA_TAKE)

    async def hit(self, key: int, at: datetime | None = None) -> Verdict:
        now = (at or self.clock()).timestamp()
        allowed, notify, wait = await self._take(
            keys=[f"{self.prefix}{key}"],
            args=[self.capacity, repr(self.rate), repr(now), self._ttl_ms],
        )
        if int(allowed):
            return ALLOWED
        return Verdict(allowed=False, notify=bool(int(notify)), retry_after=float(wait))

    async def close(self) -> None:
        await self.redis.aclose()


def create_rate_limiter(settings: Settings, clock: Clock) -> RateLimiter:
    config = settings.rate_limit
    refill_per_second = config.refill_per_minute / 60
    if settings.redis.url:
        from redis.asyncio import Redis

        return RedisRateLimiter(
            Redis.from_url(settings.redis.url),
            config.capacity,
            refill_per_second,
            clock,
            prefix=settings.redis.prefix,
        )
    return MemoryRateLimiter(config.capacity, refill_per_second, clock)
