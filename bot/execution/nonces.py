"""Nonces each device used in the last 600 s (EA_PROTOCOL.md section 2, check 5).

:class:`MemoryNonceStore` keeps them in this process (one instance);
:class:`RedisNonceStore` (``redis.url`` set) shares them between instances with one
``SET NX EX`` per request. Only requests with a valid signature reach the store
(bot/web/device_auth.py checks the signature first; tests/test_ea_auth.py holds it to
that), so nobody can fill it with another device's nonces.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from typing import Any

NONCE_TTL_S = 600


class NonceStore(ABC):
    @abstractmethod
    async def remember(self, device_pk: int, nonce: str, now: float) -> bool:
        """Record ``nonce`` for the device at Unix time ``now``; False if it was used before
        within the last :data:`NONCE_TTL_S` seconds (a replay)."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections."""


class MemoryNonceStore(NonceStore):
    """A dict of expiry times plus a queue in insertion order for pruning.

    Times come from the caller (the container's clock), so tests can move them.
    """

    def __init__(self, ttl: float = NONCE_TTL_S) -> None:
        self._ttl = ttl
        self._expires: dict[tuple[int, str], float] = {}
        self._order: deque[tuple[float, tuple[int, str]]] = deque()

    async def remember(self, device_pk: int, nonce: str, now: float) -> bool:
        self._prune(now)
        key = (device_pk, nonce)
        expires = self._expires.get(key)
        if expires is not None and expires > now:
            return False
        self._expires[key] = now + self._ttl
        self._order.append((now + self._ttl, key))
        return True

    async def close(self) -> None:
        self._expires.clear()
        self._order.clear()

    def __len__(self) -> int:
        return len(self._expires)

    def _prune(self, now: float) -> None:
        order, expires = self._order, self._expires
        while order and order[0][0] <= now:
            at, key = order.popleft()
            if expires.get(key) == at:
                del expires[key]


class RedisNonceStore(NonceStore):
    """``SET <prefix>:nonce:<device>:<nonce> 1 NX EX 600``: Redis keeps time and expiry."""

    def __init__(self, url: str, *, prefix: str = "signalbridge", ttl: int = NONCE_TTL_S) -> None:
        import redis.asyncio as redis

        self._redis: Any = redis.Redis.from_url(url)
        self._prefix = f"{prefix}:nonce:"
        self._ttl = ttl

    async def remember(self, device_pk: int, nonce: str, now: float) -> bool:
        created = await self._redis.set(
            f"{self._prefix}{device_pk}:{nonce}", b"1", nx=True, ex=self._ttl
        )
        return bool(created)

    async def close(self) -> None:
        await self._redis.aclose()


def create_nonce_store(redis_url: str, prefix: str) -> NonceStore:
    return RedisNonceStore(redis_url, prefix=prefix) if redis_url else MemoryNonceStore()
