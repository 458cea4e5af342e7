"""One send limit for the deployment, each chat's pace shared, and a short per-chat burst.

Timings come from the fake Bot API (when each request arrived). Only lower bounds and
counts are asserted: never more than the limit in any one-second window of arrivals, and
a chat's k-th message at least the pace after an earlier one; a slow machine only makes
everything later, which these bounds allow.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.filters import Command
from aiogram.types import Message

from bot.config import SendingSettings, Settings
from bot.factory import create_bot
from bot.infra.send_gate import (
    REDIS_RETRY_S,
    MemoryGate,
    Pacing,
    RedisGate,
    create_send_gate,
)
from bot.infra.sending import SendPath
from tests.conftest import Chat, make_settings
from tests.fake_bot_api import FakeBotAPI, close_bot_session
from tests.redis_support import redis_server, shared_redis

__all__ = ["shared_redis"]

# Slack for comparing the fake server's clock (monotonic) with Redis's (TIME).
EPSILON = 0.005


def most_in_one_second(times: list[float]) -> int:
    """The most arrivals within any one-second window (t - 1, t]."""
    ordered = sorted(times)
    most = first = 0
    for last, at in enumerate(ordered):
        while ordered[first] <= at - 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


def assert_paced(times: list[float], burst: int, interval: float) -> None:
    """``burst`` in a row, then one per ``interval``: the k-th after the j-th message is at
    least (k - j + 1 - burst) intervals later."""
    for (j, earlier), (k, later) in itertools.combinations(enumerate(times), 2):
        assert later - earlier >= (k - j + 1 - burst) * interval - EPSILON, (j, k, times)


def arrivals(fake_api: FakeBotAPI, chat_id: int | None = None) -> list[float]:
    return [call.at for call in fake_api.sent("sendMessage", chat_id) if call.ok]


def settings_for(fake_api: FakeBotAPI, redis: tuple[str, str] | None, **sending: Any) -> Settings:
    sections: dict[str, Any] = {"sending": sending}
    if redis is not None:
        sections["redis"] = {"url": redis[0], "prefix": redis[1]}
    return make_settings("sqlite+aiosqlite:///unused.sqlite3", fake_api.base_url, **sections)


@asynccontextmanager
async def instances(settings: Settings, count: int) -> AsyncIterator[list[Bot]]:
    """``count`` bots as separate instances would build them (each its own send path)."""
    bots = [create_bot(settings) for _ in range(count)]
    try:
        yield bots
    finally:
        for bot in bots:
            path = SendPath.of(bot)
            assert path is not None
            await path.close()
            await close_bot_session(bot)


async def send_all(bot: Bot, chat_ids: list[int], prefix: str = "m") -> None:
    # Created in order: one chat's messages keep it (the lane is first come, first served).
    await asyncio.gather(
        *(bot.send_message(chat_id, f"{prefix}{n}") for n, chat_id in enumerate(chat_ids))
    )


@pytest.fixture(params=["memory", "redis"])
def redis(request: pytest.FixtureRequest) -> tuple[str, str] | None:
    if request.param == "memory":
        return None
    found: tuple[str, str] = request.getfixturevalue("shared_redis")
    return found


# ---------------------------------------------------------------- the send limit


async def test_one_instance_never_bursts(
    fake_api: FakeBotAPI, redis: tuple[str, str] | None
) -> None:
    settings = settings_for(fake_api, redis, global_per_second=10, per_chat_interval_seconds=0)
    async with instances(settings, 1) as [bot]:
        path = SendPath.of(bot)
        assert path is not None
        await send_all(bot, list(range(7000, 7015)))
        assert path.queue_depth == 0 and path.in_flight == 0
    times = arrivals(fake_api)
    assert len(times) == 15
    # A leaky bucket lets 10 through at once and then 10/s: 15 within the first second.
    assert most_in_one_second(times) <= 10
    assert max(times) - min(times) >= 1.0 - EPSILON
    assert isinstance(path.gate, RedisGate if redis else MemoryGate)


async def test_two_instances_share_one_limit(
    fake_api: FakeBotAPI, shared_redis: tuple[str, str]
) -> None:
    limit = SendingSettings().global_per_second  # the production default, 30
    assert limit == 30
    settings = settings_for(
        fake_api, shared_redis, global_per_second=limit, per_chat_interval_seconds=0
    )
    async with instances(settings, 2) as [first, second]:
        await asyncio.gather(
            send_all(first, list(range(7100, 7145)), "a"),
            send_all(second, list(range(7200, 7245)), "b"),
        )
    calls = [call for call in fake_api.sent("sendMessage") if call.ok]
    assert len(calls) == 90
    times = [call.at for call in calls]
    # Each instance on its own would let 30 go at once: 60 and more in the first second.
    assert most_in_one_second(times) <= limit
    assert max(times) - min(times) >= 2.0 - EPSILON
    # Both instances got their turns early on: one window, not one instance after the other.
    first_window = sorted(calls, key=lambda call: call.at)[:30]
    assert {str(call.text)[0] for call in first_window} == {"a", "b"}


async def test_a_chat_keeps_its_pace_across_instances(
    fake_api: FakeBotAPI, shared_redis: tuple[str, str]
) -> None:
    settings = settings_for(
        fake_api,
        shared_redis,
        global_per_second=1000,
        per_chat_interval_seconds=0.3,
        per_chat_burst=2,
    )
    async with instances(settings, 2) as [first, second]:
        await asyncio.gather(send_all(first, [7300] * 3, "a"), send_all(second, [7300] * 3, "b"))
    to_chat = [call for call in fake_api.sent("sendMessage", 7300) if call.ok]
    assert len(to_chat) == 6
    # Each instance's own messages stay in order.
    for origin in "ab":
        assert [call.text for call in to_chat if str(call.text)[0] == origin] == [
            f"{origin}0",
            f"{origin}1",
            f"{origin}2",
        ]
    assert_paced([call.at for call in to_chat], burst=2, interval=0.3)


async def until_paused(url: str, prefix: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        async with asyncio.timeout(5):
            while not await client.exists(f"{prefix}:send:pause"):
                await asyncio.sleep(0.005)
    finally:
        await client.aclose()


async def test_a_429_pauses_every_instance(
    fake_api: FakeBotAPI, shared_redis: tuple[str, str]
) -> None:
    settings = settings_for(
        fake_api, shared_redis, global_per_second=1000, per_chat_interval_seconds=0
    )
    async with instances(settings, 2) as [first, second]:
        fake_api.fail_next("sendMessage", error="429", retry_after=1)
        await first.send_message(7400, "retried")
        [refused, retried] = fake_api.sent("sendMessage", 7400)
        assert refused.failed == 429 and retried.ok
        fake_api.fail_next("sendMessage", error="429", retry_after=1)
        attempt = asyncio.create_task(first.send_message(7401, "again"))
        [refused] = await fake_api.wait_for("sendMessage", lambda call: call.chat_id == 7401)
        await until_paused(*shared_redis)
        await second.send_message(7402, "other instance")
        await attempt
    [other] = fake_api.sent("sendMessage", 7402)
    assert other.at - refused.at >= 1.0 - EPSILON


# ---------------------------------------------------------------- a chat's burst


async def test_a_chat_gets_its_burst_then_one_per_interval(
    fake_api: FakeBotAPI, redis: tuple[str, str] | None
) -> None:
    settings = settings_for(
        fake_api, redis, global_per_second=1000, per_chat_interval_seconds=0.25, per_chat_burst=3
    )
    async with instances(settings, 1) as [bot]:
        await send_all(bot, [7500] * 6)
    to_chat = [call for call in fake_api.sent("sendMessage", 7500) if call.ok]
    assert [call.text for call in to_chat] == [f"m{n}" for n in range(6)]
    times = [call.at for call in to_chat]
    assert_paced(times, burst=3, interval=0.25)
    assert times[5] - times[0] >= 3 * 0.25 - EPSILON


@pytest.mark.parametrize(
    "settings_overrides",
    [{"sending": {"global_per_second": 1000, "per_chat_interval_seconds": 30}}],
)
async def test_a_reply_of_two_messages_is_not_held_back(
    dp: Dispatcher, chat: Chat, bot: Bot
) -> None:
    async def two_messages(message: Message) -> None:
        await message.answer("first part")
        await message.answer("second part")

    dp.message.register(two_messages, Command("two"))
    # With one message per 30 s the second part would come half a minute late.
    replies = await asyncio.wait_for(chat.send(7600, "/two"), timeout=20)
    assert replies == ["first part", "second part"]
    path = SendPath.of(bot)
    assert path is not None and path.queue_depth == 0


# ---------------------------------------------------------------- the gate's arithmetic


class Ticks:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def memory_gate(**sending: Any) -> tuple[MemoryGate, Ticks]:
    ticks = Ticks()
    gate = create_send_gate(SendingSettings(**sending), ticks)
    assert isinstance(gate, MemoryGate)
    return gate, ticks


async def test_the_window_counts_from_the_answer() -> None:
    gate, ticks = memory_gate(global_per_second=3, per_chat_interval_seconds=0)
    for _ in range(3):
        assert (await gate.enter(None)).wait == 0
    full = await gate.enter(None)
    assert full.everyone and full.wait == pytest.approx(1.0)  # all in flight
    ticks.now += 0.2
    await gate.leave(None, "")  # answered at 100.2: its place frees at 101.2
    ticks.now += 0.3
    assert (await gate.enter(None)).wait == pytest.approx(0.7)
    ticks.now += 0.7
    assert (await gate.enter(None)).wait == 0


async def test_a_rate_below_one_spaces_single_messages() -> None:
    def window(rate: float) -> tuple[int, float]:
        pacing = Pacing.of(SendingSettings(global_per_second=rate))
        return pacing.window_count, pacing.window

    assert window(30) == (30, 1.0)
    assert window(2.5) == (2, 1.0)  # never 3 in a second
    assert window(0.5) == (1, 2.0)


async def test_a_chats_burst_then_pace() -> None:
    gate, ticks = memory_gate(
        global_per_second=1000, per_chat_interval_seconds=1.0, per_chat_burst=3
    )
    for _ in range(3):
        assert (await gate.enter(5)).wait == 0
        await gate.leave(5, "")
    wait = await gate.enter(5)
    assert wait.wait == pytest.approx(1.0) and not wait.everyone
    assert (await gate.enter(6)).wait == 0  # another chat is not held
    ticks.now += 1.0
    assert (await gate.enter(5)).wait == 0
    await gate.leave(5, "")
    assert (await gate.enter(5)).wait == pytest.approx(1.0)
    ticks.now += 10  # a quiet chat has its whole burst again
    for _ in range(3):
        assert (await gate.enter(5)).wait == 0


async def test_a_slow_answer_delays_the_chats_next_message() -> None:
    gate, ticks = memory_gate(
        global_per_second=1000, per_chat_interval_seconds=1.0, per_chat_burst=1
    )
    assert (await gate.enter(5)).wait == 0
    ticks.now += 1.5
    await gate.leave(5, "")  # Telegram took 1.5 s to answer
    assert (await gate.enter(5)).wait == pytest.approx(1.0)


async def test_quiet_chats_are_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bot.infra.send_gate.SWEEP_AT", 4)
    gate, ticks = memory_gate(global_per_second=1000, per_chat_interval_seconds=1.0)
    for chat in range(4):
        await gate.enter(chat)
        await gate.leave(chat, "")
    ticks.now += 5  # their pace has passed: the fifth chat's answer sweeps them away
    await gate.enter(99)
    await gate.leave(99, "")
    assert gate.chats_paced == 1  # only the fifth chat is still paced


async def test_without_redis_an_instance_paces_on_its_own(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    socket = tmp_path / "redis.sock"
    ticks = Ticks()
    gate = create_send_gate(
        SendingSettings(global_per_second=2, per_chat_interval_seconds=0),
        ticks,
        redis_url=f"unix://{socket}",
        prefix="sbt-unreachable",
    )
    assert isinstance(gate, RedisGate)
    try:
        with caplog.at_level(logging.INFO, "bot.infra.send_gate"):
            first, second, third = [await gate.enter(None) for _ in range(3)]
            assert (first.wait, second.wait) == (0, 0) and third.everyone  # the local limit
            await gate.leave(None, first.ticket)
            async with redis_server(socket):
                assert not (await gate.enter(None)).ticket  # not asked again at once
                ticks.now += REDIS_RETRY_S
                shared = await gate.enter(None)
                assert shared.wait == 0 and shared.ticket  # a place in Redis's window
                await gate.leave(None, shared.ticket)
        assert [record.message for record in caplog.records] == [
            "send limit: Redis unavailable (ConnectionError); this instance paces on its own",
            "send limit: Redis is back; the limit is shared again",
        ]
    finally:
        await gate.close()
