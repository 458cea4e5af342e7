"""The state behind device requests: nonces, the waiter hub, the key cache, after-commit hooks,
and their Redis variants (skipped when no Redis answers on 127.0.0.1:6379)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.config import Settings
from bot.container import Container
from bot.execution.device_hub import DeviceHub
from bot.execution.device_keys import DeviceKeyring
from bot.execution.nonces import MemoryNonceStore, RedisNonceStore
from bot.factory import create_container
from bot.infra.pubsub import Broadcast, RedisBroadcast
from db.hooks import after_commit
from tests.conftest import FakeClock, make_settings
from tests.devices_support import EAClient, add_device, error_of, until
from webhook_server import create_app

REDIS_URL = "redis://127.0.0.1:6379/0"
POLL = "/api/v1/ea/instructions?wait=0"


# --- nonces ---


async def test_memory_nonces_expire_after_600_s() -> None:
    store = MemoryNonceStore()
    assert await store.remember(1, "nonce-aaaaaaaaaaaa", 1000.0)
    assert not await store.remember(1, "nonce-aaaaaaaaaaaa", 1599.9)
    assert await store.remember(2, "nonce-aaaaaaaaaaaa", 1599.9)
    assert await store.remember(1, "nonce-aaaaaaaaaaaa", 1600.0)
    assert not await store.remember(1, "nonce-aaaaaaaaaaaa", 1601.0)
    # Old entries are pruned as time moves on: memory stays bounded.
    assert await store.remember(3, "nonce-bbbbbbbbbbbb", 5000.0)
    assert len(store) == 1


# --- the waiter hub ---


async def test_hub_wakes_only_that_device() -> None:
    hub = DeviceHub(Broadcast())
    with hub.waiter(1) as first, hub.waiter(2) as second:
        assert hub.waiting == 2
        hub.notify(1)
        assert await first.wait(5)
        assert not await second.wait(0.01)
    assert hub.waiting == 0


async def test_idle_mark_is_not_set_when_a_notification_came_during_the_check() -> None:
    hub = DeviceHub(Broadcast())
    generation = hub.generation(7)
    hub.notify(7)  # arrives while the check runs
    hub.mark_idle(7, generation)
    assert not hub.is_idle(7)
    generation = hub.generation(7)
    hub.mark_idle(7, generation)
    assert hub.is_idle(7)
    hub.notify(7)
    assert not hub.is_idle(7)


async def test_idle_mark_expires() -> None:
    hub = DeviceHub(Broadcast(), idle_ttl=0.0)
    hub.mark_idle(3, hub.generation(3))
    assert not hub.is_idle(3)


async def test_released_hub_does_not_wait() -> None:
    hub = DeviceHub(Broadcast())
    with hub.waiter(1) as waiting:
        hub.release_all()
        assert await waiting.wait(5)
    with hub.waiter(1) as late:
        assert await late.wait(5)
    assert hub.released


async def test_resync_forgets_idle_marks_and_cached_keys(container: Container) -> None:
    hub, keys = container.device_hub, container.device_keys
    device, _ = await add_device(container)
    hub.mark_idle(device.pk, hub.generation(device.pk))
    assert await keys.lookup(device.public_id) is not None and len(keys) == 1
    container.broadcast.resynced()  # what a Redis reconnect triggers
    assert not hub.is_idle(device.pk)
    assert len(keys) == 0


# --- the key cache ---


async def test_key_is_derived_once_and_cached(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    device, credentials = await add_device(container)
    derivations = 0
    original = container.device_keys.secret

    def counting(public_id: str, key_version: int) -> str:
        nonlocal derivations
        derivations += 1
        return original(public_id, key_version)

    monkeypatch.setattr(container.device_keys, "secret", counting)
    for _ in range(5):
        found = await container.device_keys.lookup(device.public_id)
        assert found is not None and found.key == credentials.secret.encode()
    assert derivations == 1
    assert await container.device_keys.lookup("dev_" + "u" * 24) is None
    assert await container.device_keys.lookup("dev_" + "u" * 24) is None
    assert derivations == 1


async def test_load_overtaken_by_an_invalidation_is_not_cached(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = container.device_keys
    device, _ = await add_device(container)
    release = asyncio.Event()
    load = keys.load

    async def slow_load(public_id: str) -> Any:
        found = await load(public_id)  # read before the other side's commit...
        await release.wait()
        return found

    monkeypatch.setattr(keys, "load", slow_load)
    lookup = asyncio.create_task(keys.lookup(device.public_id))
    await asyncio.sleep(0.05)
    keys.forget(device.public_id)  # ...which lands (and invalidates) meanwhile
    release.set()
    assert await lookup is not None  # this request still used what it read
    assert len(keys) == 0  # but the next one reads again


def test_short_master_key_is_refused(container: Container) -> None:
    from bot.config import ConfigError

    with pytest.raises(ConfigError, match="MASTER_KEY is too short"):
        DeviceKeyring("short", container.sessionmaker, Broadcast())


# --- after-commit hooks ---


async def test_after_commit_runs_only_after_a_commit(container: Container) -> None:
    ran: list[str] = []
    async with container.sessionmaker.begin() as session:
        after_commit(session, lambda: ran.append("committed"))
        assert ran == []
    assert ran == ["committed"]
    with pytest.raises(RuntimeError):
        async with container.sessionmaker.begin() as session:
            after_commit(session, lambda: ran.append("rolled back"))
            raise RuntimeError
    assert ran == ["committed"]
    # A session reused for a second transaction starts with no callbacks.
    async with container.sessionmaker() as session:
        async with session.begin():
            after_commit(session, lambda: ran.append("first"))
        async with session.begin():
            pass
    assert ran == ["committed", "first"]
    # With no transaction open (all committed already) there is nothing to wait for.
    async with container.sessionmaker() as session:
        after_commit(session, lambda: ran.append("at once"))
        assert ran == ["committed", "first", "at once"]


# --- Redis ---


@pytest.fixture
async def redis_url() -> str:
    import redis.asyncio as redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        await asyncio.wait_for(client.ping(), timeout=1)
    except Exception:
        pytest.skip("no Redis on 127.0.0.1:6379")
    finally:
        await client.aclose()
    return REDIS_URL


@pytest.fixture
def prefix() -> str:
    return "test-devices-" + secrets.token_hex(4)


async def test_redis_nonces(redis_url: str, prefix: str) -> None:
    from redis.asyncio import Redis

    store = RedisNonceStore(redis_url, prefix=prefix)
    client = Redis.from_url(redis_url)
    try:
        assert await store.remember(1, "nonce-cccccccccccc", 0.0)
        assert not await store.remember(1, "nonce-cccccccccccc", 0.0)
        assert await store.remember(2, "nonce-cccccccccccc", 0.0)
        ttl = await client.ttl(f"{prefix}:nonce:1:nonce-cccccccccccc")
        assert 590 <= ttl <= 600
    finally:
        await client.delete(
            f"{prefix}:nonce:1:nonce-cccccccccccc", f"{prefix}:nonce:2:nonce-cccccccccccc"
        )
        await client.aclose()
        await store.close()


@pytest.fixture
async def two_instances(redis_url: str, prefix: str) -> AsyncIterator[tuple[Broadcast, Broadcast]]:
    first = RedisBroadcast(redis_url, prefix=prefix)
    second = RedisBroadcast(redis_url, prefix=prefix)
    await first.start()
    await second.start()
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def test_redis_broadcast_reaches_the_other_instance_once(
    two_instances: tuple[Broadcast, Broadcast],
) -> None:
    first, second = two_instances
    got_first: list[str] = []
    got_second: list[str] = []
    first.subscribe("chan", got_first.append)
    second.subscribe("chan", got_second.append)
    first.publish("chan", "hello")
    assert got_first == ["hello"]  # at once, locally
    await asyncio.wait_for(until(lambda: got_second == ["hello"]), timeout=5)
    second.publish("chan", "back")
    await asyncio.wait_for(until(lambda: got_first == ["hello", "back"]), timeout=5)
    await asyncio.sleep(0.05)
    assert got_first == ["hello", "back"] and got_second == ["hello", "back"]


async def test_redis_hub_wakes_a_poll_on_another_instance(
    two_instances: tuple[Broadcast, Broadcast],
) -> None:
    first, second = two_instances
    notifier, waiting_side = DeviceHub(first), DeviceHub(second)
    with waiting_side.waiter(42) as waiter:
        waiting_side.mark_idle(42, waiting_side.generation(42))
        notifier.notify(42)
        assert await waiter.wait(5)
    assert not waiting_side.is_idle(42)


async def test_redis_key_invalidation_reaches_the_other_instance(
    two_instances: tuple[Broadcast, Broadcast], container: Container
) -> None:
    first, second = two_instances
    master = container.settings.require_secret("master_key")
    here = DeviceKeyring(master, container.sessionmaker, first)
    there = DeviceKeyring(master, container.sessionmaker, second)
    device, _ = await add_device(container)
    assert await there.lookup(device.public_id) is not None and len(there) == 1
    here.forget(device.public_id)
    await asyncio.wait_for(until(lambda: len(there) == 0), timeout=5)


@pytest.fixture
async def redis_container(
    redis_url: str, prefix: str, settings: Settings, clock: FakeClock
) -> AsyncIterator[Container]:
    data = settings.model_dump()
    redis_settings = make_settings(
        settings.database.url,
        settings.telegram.api_base,
        redis={"url": redis_url, "prefix": prefix},
        devices=data["devices"],
    )
    instance = create_container(redis_settings, clock=clock)
    await instance.start()
    try:
        yield instance
    finally:
        await instance.aclose()
        await instance.engine.dispose()


async def test_signed_requests_with_redis_state(
    aiohttp_client: Any, redis_container: Container, clock: FakeClock
) -> None:
    server: TestClient[Any, Any] = await aiohttp_client(create_app(redis_container))
    _device, credentials = await add_device(redis_container)
    ea = EAClient(server, clock, credentials.device_id, credentials.secret)
    headers = ea.headers("GET", POLL)
    assert (await ea.get(POLL, headers=headers)).status == 200
    assert await error_of(await ea.get(POLL, headers=headers)) == (401, "replayed_nonce")
