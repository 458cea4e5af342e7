"""The user middleware's cache: no read for a user seen a moment ago, and never a stale
or phantom user (bot/infra/user_cache.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from aiogram import Dispatcher, F
from aiogram.types import Message
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.container import Container
from bot.factory import create_container
from bot.infra.user_cache import USER_CACHE_TTL, UserCache
from db.models import User
from tests.conftest import Chat, FakeClock, make_settings
from tests.fake_bot_api import FakeBotAPI

USER_ID = 8101


@pytest.fixture
def user_reads(container: Container) -> Iterator[list[str]]:
    """The statements that read or write the users table, in order."""
    seen: list[str] = []
    engine = container.engine.sync_engine

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        text = " ".join(statement.split()).lower()
        if "users" in text.split(" where ")[0]:
            seen.append(text.split(" ")[0])

    sa_event.listen(engine, "before_cursor_execute", record)
    yield seen
    sa_event.remove(engine, "before_cursor_execute", record)


async def test_a_user_seen_a_moment_ago_costs_no_read(
    chat: Chat, user_reads: list[str], clock: FakeClock
) -> None:
    assert await chat.send(USER_ID, "/help")
    assert user_reads == ["select", "insert"]  # first contact
    user_reads.clear()
    for _ in range(3):
        clock.advance(seconds=10)
        assert await chat.send(USER_ID, "/help")
    assert user_reads == []
    clock.advance(seconds=USER_CACHE_TTL.total_seconds())
    assert await chat.send(USER_ID, "/help")
    assert user_reads == ["select"]  # expired: read again (no write: seen under 5 min ago)


async def test_a_changed_name_or_language_goes_to_the_database(
    chat: Chat, user_reads: list[str], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await chat.send(USER_ID, "/help")
    user_reads.clear()
    await chat.send(USER_ID, "/help", first_name="Renamed")
    assert user_reads == ["select", "update"]
    user_reads.clear()
    await chat.send(USER_ID, "/help", first_name="Renamed", language_code="de")
    assert user_reads == ["select", "update"]
    async with sessionmaker() as session:
        user = await session.get(User, USER_ID)
        assert user is not None and user.first_name == "Renamed" and user.language_code == "de"


async def test_a_first_contact_that_rolled_back_is_not_cached(
    chat: Chat, dp: Dispatcher, container: Container, fake_api: FakeBotAPI
) -> None:
    async def broken(message: Message) -> None:
        raise RuntimeError("bug")

    # A first contact through a link keeps the new row in the update's transaction
    # (bot/chat/middlewares/user.py): written, then rolled back with it.
    dp.message.register(broken, F.text == "/start ref_boom")
    await chat.send(USER_ID, "/start ref_boom")
    assert container.user_cache is not None and len(container.user_cache) == 0
    assert await chat.send(USER_ID, "/start")
    async with container.sessionmaker() as session:
        assert await session.get(User, USER_ID) is not None


async def test_a_new_users_flag_is_seen_once_not_from_the_cache(chat: Chat, dp: Dispatcher) -> None:
    seen: list[bool] = []

    async def remember(message: Message, user: Any) -> None:
        seen.append(user.created_now)

    dp.message.register(remember, F.text == "/whoami")
    await chat.send(USER_ID, "/whoami")
    await chat.send(USER_ID, "/whoami")
    assert seen == [True, False]


async def test_the_cache_is_off_when_several_instances_share_the_data(
    settings: Settings, fake_api: FakeBotAPI
) -> None:
    shared = make_settings(
        settings.database.url, fake_api.base_url, redis={"url": "redis://127.0.0.1:6379/0"}
    )
    for each, cached in ((shared, False), (settings, True)):
        container = create_container(each)
        try:
            assert (container.user_cache is not None) is cached
        finally:
            await container.aclose()
            await container.engine.dispose()


def test_the_oldest_entries_go_first_when_full(clock: FakeClock) -> None:
    from aiogram.types import User as TelegramUser

    from bot.domain.users import UserDTO

    cache = UserCache(ttl=timedelta(seconds=60), max_size=2)

    def dto(user_id: int) -> UserDTO:
        return UserDTO(
            id=user_id,
            first_name="A",
            last_name=None,
            username=None,
            language_code="en",
            role="user",
            is_blocked=False,
            referred_by_id=None,
            created_at=clock.now,
        )

    def tg(user_id: int) -> TelegramUser:
        return TelegramUser(id=user_id, is_bot=False, first_name="A", language_code="en")

    for user_id in (1, 2):
        cache.put(dto(user_id), clock.now)
    assert cache.get(tg(1), "user", clock.now) is not None
    cache.put(dto(1), clock.now)  # refreshed: now the newest
    cache.put(dto(3), clock.now)
    assert cache.get(tg(2), "user", clock.now) is None
    assert cache.get(tg(1), "user", clock.now) is not None
    assert cache.get(tg(1), "admin", clock.now) is None  # a role change is a miss
    assert len(cache) == 1
