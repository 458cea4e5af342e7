"""Every Redis key and channel starts with ``redis.prefix``; FSM keys also name the bot.

Two deployments may share one Redis: nothing of one may be seen by the other.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.fsm.storage.base import StorageKey

from bot.container import Container
from bot.factory import create_storage
from tests.conftest import Chat, make_settings
from tests.fake_bot_api import DEFAULT_BOT_ID
from tests.redis_support import all_keys, fresh_prefix, private_redis, shared_redis, started

__all__ = ["private_redis", "shared_redis", "started"]

OTHER_BOT_ID = DEFAULT_BOT_ID + 1


def storage_for(url: str, prefix: str) -> Any:
    settings = make_settings(
        "sqlite+aiosqlite:///unused.sqlite3",
        "http://127.0.0.1:1",
        redis={"url": url, "prefix": prefix},
    )
    return create_storage(settings)


async def test_fsm_state_is_kept_apart_by_prefix_and_by_bot(
    shared_redis: tuple[str, str],
) -> None:
    url, prefix = shared_redis
    other_prefix = prefix + "-b"
    here, there = storage_for(url, prefix), storage_for(url, other_prefix)
    key = StorageKey(bot_id=DEFAULT_BOT_ID, chat_id=5101, user_id=5101)
    other_bot = StorageKey(bot_id=OTHER_BOT_ID, chat_id=5101, user_id=5101)
    try:
        await here.set_state(key, "Form:amount")
        await here.set_data(key, {"amount": 5})
        assert await here.get_state(key) == "Form:amount"
        # Another deployment on the same Redis, and another bot of this one, see nothing.
        assert await there.get_state(key) is None
        assert await there.get_data(key) == {}
        assert await here.get_state(other_bot) is None
        await there.set_state(key, "Other:step")
        assert await here.get_state(key) == "Form:amount"
        keys = await here.redis.keys(f"{prefix}:*")
        assert sorted(k.decode() for k in keys) == [
            f"{prefix}:fsm:{DEFAULT_BOT_ID}:5101:5101:data",
            f"{prefix}:fsm:{DEFAULT_BOT_ID}:5101:5101:state",
        ]
    finally:
        await here.redis.delete(*(await here.redis.keys(f"{other_prefix}:*")))
        await here.close()
        await there.close()


@pytest.fixture
def prefix() -> str:
    return fresh_prefix("keys")


@pytest.fixture
def settings_overrides(private_redis: str, prefix: str) -> dict[str, Any]:
    return {
        "redis": {"url": private_redis, "prefix": prefix},
        "sending": {"global_per_second": 1000, "per_chat_interval_seconds": 0.01},
        "rate_limit": {"capacity": 10},
    }


async def test_every_key_and_channel_of_a_flow_starts_with_the_prefix(
    started: Container, dp: Dispatcher, bot: Bot, chat: Chat, private_redis: str, prefix: str
) -> None:
    from redis.asyncio import Redis

    listener: Any = Redis.from_url(private_redis, decode_responses=True)
    pubsub = listener.pubsub(ignore_subscribe_messages=True)
    await pubsub.psubscribe("*")
    channels: set[str] = set()

    async def listen() -> None:
        async for item in pubsub.listen():
            channels.add(item["channel"])

    listening = asyncio.create_task(listen())
    try:
        await chat.send(5201, "/start")
        for _ in range(12):  # past the rate limit: its bucket is in Redis
            await chat.send(5202, "/help")
        await dp.fsm.get_context(bot, chat_id=5201, user_id=5201).set_state("Form:amount")
        assert await started.nonces.remember(7, "nonce-" + "k" * 12, 0.0)
        started.device_hub.notify(7)  # a wake-up for the device's polls on other instances
        await started.notifier.send(5203, "one")
        await started.notifier.send(5203, "two")
        async with asyncio.timeout(5):
            while not channels:
                await asyncio.sleep(0.01)
    finally:
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)
        await pubsub.aclose()
        await listener.aclose()

    keys = await all_keys(private_redis)
    assert keys, "the flow wrote nothing to Redis"
    assert [key for key in keys if not key.startswith(prefix + ":")] == []
    assert [channel for channel in channels if not channel.startswith(prefix + ":")] == []
    kinds = {key.removeprefix(prefix + ":").split(":")[0] for key in keys}
    assert {"fsm", "ratelimit", "nonce", "send"} <= kinds
    assert f"{prefix}:fsm:{bot.id}:5201:5201:state" in keys
