"""The per-user rate limit: the 11th update in a minute, refills, admins, payments, Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram import Dispatcher, F
from aiogram.types import Message, PreCheckoutQuery

from bot.container import Container
from bot.infra.ratelimit import (
    MemoryRateLimiter,
    RedisRateLimiter,
    Verdict,
    create_rate_limiter,
)
from tests.conftest import ADMIN_ID, Chat, FakeClock, make_settings
from tests.fake_bot_api import (
    FakeBotAPI,
    message_update,
    pre_checkout_update,
    successful_payment_update,
)
from tests.webhook_support import WEBHOOK_OVERRIDES, start_instance

REDIS_URL = "redis://127.0.0.1:6379/0"
SLOW_DOWN_6S = "Slow down: try again in 6 s."


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # The production defaults (conftest relaxes them for the other feature tests).
    return {"rate_limit": {"capacity": 10, "refill_per_minute": 10}}


async def test_the_eleventh_message_in_a_minute_gets_one_notice_then_silence(
    chat: Chat, fake_api: FakeBotAPI, clock: FakeClock
) -> None:
    for _ in range(10):
        [reply] = await chat.send(8001, "/help")
        assert "/start" in reply
    assert await chat.send(8001, "/help") == [SLOW_DOWN_6S]
    clock.advance(seconds=3)
    assert await chat.send(8001, "/help") == []  # dropped quietly
    assert await chat.send(8001, "hello") == []
    clock.advance(seconds=3)  # one token back after 6 s
    [reply] = await chat.send(8001, "/help")
    assert "/start" in reply
    assert await chat.send(8001, "/help") == ["Slow down: try again in 6 s."]
    clock.advance(minutes=1)  # a minute refills the whole bucket
    for _ in range(10):
        assert len(await chat.send(8001, "/help")) == 1
    assert await chat.send(8001, "/help") == [SLOW_DOWN_6S]


async def test_the_notice_is_in_the_users_language(chat: Chat) -> None:
    for _ in range(10):
        await chat.send(8002, "/help", language_code="ru")
    assert await chat.send(8002, "/help", language_code="ru") == [
        "Не так быстро: попробуйте снова через 6 с."
    ]


async def test_users_have_buckets_of_their_own(chat: Chat) -> None:
    for _ in range(11):
        await chat.send(8002, "/help")
    [reply] = await chat.send(8003, "/help")
    assert "/start" in reply


async def test_a_button_press_over_the_limit_is_answered_once_then_ignored(
    chat: Chat, fake_api: FakeBotAPI
) -> None:
    for _ in range(10):
        calls = await chat.press(8004, "zz:stale")
        assert [call.method for call in calls] == ["answerCallbackQuery"]
    [notice] = await chat.press(8004, "zz:stale")
    assert notice.method == "answerCallbackQuery"
    assert notice.params["text"] == SLOW_DOWN_6S
    assert await chat.press(8004, "zz:stale") == []


async def test_admins_are_exempt(chat: Chat) -> None:
    for _ in range(25):
        [reply] = await chat.send(ADMIN_ID, "/help")
        assert "/start" in reply


async def test_payments_are_never_throttled(
    dp: Dispatcher, chat: Chat, fake_api: FakeBotAPI
) -> None:
    async def pre_checkout(query: PreCheckoutQuery) -> None:
        await query.answer(ok=True)

    async def paid(message: Message) -> None:
        await message.answer("paid")

    dp.pre_checkout_query.register(pre_checkout)
    dp.message.register(paid, F.successful_payment)
    for _ in range(11):
        await chat.send(8005, "/help")
    assert await chat.send(8005, "/help") == []  # the bucket is empty
    for number in range(3):
        await chat.feed(pre_checkout_update(8005, payload=f"plan:{number}", total_amount=100))
        await chat.feed(
            successful_payment_update(
                8005, payload=f"plan:{number}", total_amount=100, charge_id=f"charge-{number}"
            )
        )
    assert len(fake_api.sent("answerPreCheckoutQuery")) == 3
    assert fake_api.texts(8005)[-3:] == ["paid", "paid", "paid"]


async def test_the_limit_applies_to_webhook_deliveries_too(
    container: Container, fake_api: FakeBotAPI, aiohttp_server: Any
) -> None:
    settings = container.settings.model_copy(
        update={
            "telegram": container.settings.telegram.model_copy(update={"mode": "webhook"}),
            "webhook": container.settings.webhook.model_copy(
                update={"url": WEBHOOK_OVERRIDES["webhook"]["url"]}
            ),
        }
    )
    container.settings = settings
    instance = await start_instance(container, fake_api, aiohttp_server)
    try:
        for _ in range(13):
            status, _ = await instance.deliver_and_wait(message_update(8006, "/help"))
            assert status == 200
        texts = fake_api.texts(8006)
        assert len(texts) == 11
        assert texts[-1] == SLOW_DOWN_6S
    finally:
        await instance.close()


async def test_disabled_rate_limit_lets_everything_through(
    container: Container, fake_api: FakeBotAPI
) -> None:
    from bot.factory import create_dispatcher

    container.settings = container.settings.model_copy(
        update={"rate_limit": container.settings.rate_limit.model_copy(update={"enabled": False})}
    )
    dp = create_dispatcher(container)
    try:
        local = Chat(dp, container.bot, fake_api)
        for _ in range(15):
            assert len(await local.send(8007, "/help")) == 1
    finally:
        await dp.storage.close()


# ---------------------------------------------------------------- the buckets themselves


def test_retry_after_is_whole_seconds_rounded_up() -> None:
    assert Verdict(False, retry_after=5.2).retry_after_seconds == 6
    assert Verdict(False, retry_after=6.0).retry_after_seconds == 6
    assert Verdict(False, retry_after=0.01).retry_after_seconds == 1


async def test_memory_buckets_refill_continuously(clock: FakeClock) -> None:
    limiter = MemoryRateLimiter(capacity=2, refill_per_second=0.5, clock=clock)
    assert [(await limiter.hit(1)).allowed for _ in range(3)] == [True, True, False]
    clock.advance(seconds=1)
    verdict = await limiter.hit(1)
    assert not verdict.allowed and not verdict.notify
    assert verdict.retry_after == pytest.approx(1.0)
    clock.advance(seconds=1)
    assert (await limiter.hit(1)).allowed


async def test_memory_buckets_forget_full_buckets_when_many(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.infra.ratelimit.SWEEP_AT", 4)
    limiter = MemoryRateLimiter(capacity=1, refill_per_second=1, clock=clock)
    for user in range(4):
        await limiter.hit(user)
    clock.advance(seconds=5)
    await limiter.hit(99)
    assert limiter.tracked == {99}


@pytest.fixture
async def redis_client() -> AsyncIterator[Any]:
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL)
    try:
        await asyncio.wait_for(client.ping(), timeout=1)
    except Exception as exc:
        await client.aclose()
        pytest.skip(f"Redis does not answer at {REDIS_URL}: {type(exc).__name__}")
    prefix = f"signalbridge-test-webhook-{uuid.uuid4().hex[:12]}"
    try:
        yield client, prefix
    finally:
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def test_redis_buckets_match_the_memory_ones(
    redis_client: tuple[Any, str], clock: FakeClock
) -> None:
    client, prefix = redis_client
    redis = RedisRateLimiter(client, 10, 10 / 60, clock, prefix=prefix)
    memory = MemoryRateLimiter(10, 10 / 60, clock)
    for step in range(40):
        if step in (12, 20, 31):
            clock.advance(seconds=7)
        got, expected = await redis.hit(42), await memory.hit(42)
        assert got.allowed == expected.allowed, step
        assert got.notify == expected.notify, step
        assert got.retry_after == pytest.approx(expected.retry_after), step
    ttl = await client.pttl(f"{prefix}:ratelimit:42")
    assert 0 < ttl <= 61_000


async def test_redis_buckets_are_shared_and_atomic_under_concurrency(
    redis_client: tuple[Any, str], clock: FakeClock
) -> None:
    client, prefix = redis_client
    instances = [RedisRateLimiter(client, 10, 10 / 60, clock, prefix=prefix) for _ in range(3)]
    verdicts = await asyncio.gather(*(instances[n % 3].hit(7) for n in range(30)))
    assert sum(v.allowed for v in verdicts) == 10
    assert sum(v.notify for v in verdicts) == 1
    assert all(v.retry_after_seconds == 6 for v in verdicts if not v.allowed)
    clock.advance(seconds=6)
    assert (await instances[0].hit(7)).allowed
    assert not (await instances[1].hit(7)).allowed


async def test_with_a_redis_url_every_process_shares_one_bucket(
    redis_client: tuple[Any, str],
) -> None:
    _client, prefix = redis_client
    settings = make_settings(
        "sqlite+aiosqlite:///unused.sqlite3",
        "http://127.0.0.1:1",
        redis={"url": REDIS_URL, "prefix": prefix},
        rate_limit={"capacity": 2},
    )
    clock = FakeClock()
    one, other = create_rate_limiter(settings, clock), create_rate_limiter(settings, clock)
    try:
        assert [(await limiter.hit(42)).allowed for limiter in (one, other, one)] == [
            True,
            True,
            False,
        ]
    finally:
        await one.close()
        await other.close()
