"""Redis for tests: the shared server under a fresh prefix, or a private server of our own.

The shared Redis on 127.0.0.1:6379 serves other runs too: a test there uses its own random
``redis.prefix`` and deletes only the keys under it (never FLUSHDB). A test that must see
*every* key and channel the code makes (nothing may escape the prefix) starts a private
``redis-server`` on a Unix socket instead; it is skipped where the binary is missing.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from bot.container import Container

SHARED_REDIS_URL = "redis://127.0.0.1:6379/0"


def fresh_prefix(kind: str) -> str:
    return f"sbt-{kind}-{uuid.uuid4().hex[:12]}"


async def answers(url: str) -> bool:
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        await asyncio.wait_for(client.ping(), timeout=1)
    except Exception:
        return False
    finally:
        await client.aclose()
    return True


async def delete_prefixed(url: str, prefix: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
async def shared_redis() -> AsyncIterator[tuple[str, str]]:
    """(url, prefix) on the shared Redis; the prefix's keys are deleted afterwards."""
    if not await answers(SHARED_REDIS_URL):
        pytest.skip(f"Redis does not answer at {SHARED_REDIS_URL}")
    prefix = fresh_prefix("instances")
    try:
        yield SHARED_REDIS_URL, prefix
    finally:
        await delete_prefixed(SHARED_REDIS_URL, prefix)


@asynccontextmanager
async def redis_server(socket: Path) -> AsyncIterator[str]:
    """Run a redis-server of our own on the Unix ``socket``; its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    process = subprocess.Popen(
        [
            binary,
            "--port",
            "0",
            "--unixsocket",
            str(socket),
            "--unixsocketperm",
            "700",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"unix://{socket}"
    try:
        async with asyncio.timeout(10):
            while not (socket.exists() and await answers(url)):
                await asyncio.sleep(0.02)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[str]:
    """The URL of a redis-server of this test's own (nothing else writes to it)."""
    async with redis_server(tmp_path / "redis.sock") as url:
        yield url


@pytest.fixture
async def started(container: Container) -> AsyncIterator[Container]:
    """The test's container, connected to its Redis and closed (Redis clients too) after."""
    await container.start()
    try:
        yield container
    finally:
        await container.aclose()


async def all_keys(url: str) -> list[str]:
    from redis.asyncio import Redis

    client: Any = Redis.from_url(url, decode_responses=True)
    try:
        return sorted([key async for key in client.scan_iter(match="*")])
    finally:
        await client.aclose()
