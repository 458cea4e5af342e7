"""The per-user limit counts an update when it arrived, not when its turn came.

A chat's webhook updates run one after another and each reply waits for the chat's send
pacing, so the last of a quick burst is processed seconds after it arrived. Here every
answer moves the clock 6 s (one token's refill at 10 a minute), as pacing would: counted
at processing time, 12 quick /help would all be answered.
"""

from __future__ import annotations

from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.session.middlewares.base import NextRequestMiddlewareType
from aiogram.methods import SendMessage, TelegramMethod
from aiogram.methods.base import Response, TelegramType
from aiogram.types import User as TelegramUser

from bot.container import Container
from bot.domain.users import ensure_user
from bot.infra.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from db.repositories.users import UserRepository
from tests.conftest import FakeClock
from tests.fake_bot_api import FakeBotAPI, message_update, user_dict
from tests.redis_support import shared_redis, started
from tests.webhook_support import WEBHOOK_OVERRIDES, ServerFactory, start_instance

__all__ = ["shared_redis", "started"]

SLOW_DOWN = "Slow down: try again in 6 s."
USER = 8101


@pytest.fixture(params=["memory", "redis"])
def settings_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    overrides: dict[str, Any] = {
        **WEBHOOK_OVERRIDES,
        "rate_limit": {"capacity": 10, "refill_per_minute": 10},
    }
    if request.param == "redis":
        url, prefix = request.getfixturevalue("shared_redis")
        overrides["redis"] = {"url": url, "prefix": prefix}
    return overrides


def answers_take_six_seconds(bot: Bot, clock: FakeClock) -> None:
    async def paced(
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        response = await make_request(bot, method)
        if isinstance(method, SendMessage):
            clock.advance(seconds=6)
        return response

    bot.session.middleware(paced)


async def test_twelve_quick_updates_get_ten_answers_and_one_notice(
    started: Container,
    bot: Bot,
    fake_api: FakeBotAPI,
    clock: FakeClock,
    aiohttp_server: ServerFactory,
) -> None:
    expected = RedisRateLimiter if started.settings.redis.url else MemoryRateLimiter
    assert isinstance(started.rate_limiter, expected)
    answers_take_six_seconds(bot, clock)
    # A known user: their updates only read, so none holds SQLite's connection while the
    # answers are held back below.
    async with started.sessionmaker.begin() as session:
        await ensure_user(
            UserRepository(session),
            TelegramUser.model_validate(user_dict(USER)),
            admin_ids=frozenset(),
            now=clock(),
        )
    instance = await start_instance(started, fake_api, aiohttp_server)
    try:
        # Telegram's answers wait until all twelve have arrived (they come in quickly).
        released = fake_api.hold("sendMessage")
        for _ in range(12):
            status, _ = await instance.deliver(message_update(USER, "/help"))
            assert status == 200
        released.set()
        await instance.intake.join()
    finally:
        await instance.close()
    texts = fake_api.texts(USER)
    assert len(texts) == 11, texts
    assert all("/start" in text for text in texts[:10])
    assert texts[10] == SLOW_DOWN


async def test_an_update_that_arrived_earlier_refills_nothing(
    shared_redis: tuple[str, str], clock: FakeClock
) -> None:
    from datetime import timedelta

    from redis.asyncio import Redis

    url, prefix = shared_redis
    client = Redis.from_url(url)
    limiters: list[RateLimiter] = [
        MemoryRateLimiter(2, 1 / 6, clock),
        RedisRateLimiter(client, 2, 1 / 6, clock, prefix=prefix),
    ]
    try:
        start = clock()
        for limiter in limiters:
            assert (await limiter.hit(1, start + timedelta(seconds=12))).allowed
            assert (await limiter.hit(1, start + timedelta(seconds=12))).allowed
            # Processed later but arrived earlier (another instance's queue): no refill.
            late = await limiter.hit(1, start)
            assert not late.allowed and late.notify
            assert late.retry_after == pytest.approx(6.0)
            assert not (await limiter.hit(1, start + timedelta(seconds=17))).allowed
            assert (await limiter.hit(1, start + timedelta(seconds=19))).allowed
    finally:
        await limiters[1].close()
