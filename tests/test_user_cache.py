"""The user middleware's cache: no read for a user seen a moment ago, and never a stale
or phantom user (bot/chat/user_cache.py)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields
from datetime import timedelta
from typing import Any

import pytest
from aiogram import Dispatcher, F
from aiogram.types import Message
from sqlalchemy import event as sa_event
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.chat.user_cache import USER_CACHE_TTL, UserCache
from bot.config import Settings
from bot.container import Container
from bot.domain.users import TELEGRAM_FIELDS, UserDTO, ensure_user
from bot.factory import create_services
from db.models import User
from db.repositories.users import UserRepository
from tests.conftest import Chat, FakeClock, make_settings
from tests.fake_bot_api import FakeBotAPI

USER_ID = 8101
REFERRER_ID = 8102


def dto(user_id: int, clock: FakeClock) -> UserDTO:
    return UserDTO(
        id=user_id,
        first_name="A",
        last_name=None,
        username=None,
        language_code="en",
        role="user",
        created_at=clock.now,
    )


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
    assert len(container.user_cache) == 0
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
    settings: Settings, fake_api: FakeBotAPI, clock: FakeClock
) -> None:
    from aiogram.types import User as TelegramUser

    shared = make_settings(
        settings.database.url, fake_api.base_url, redis={"url": "redis://127.0.0.1:6379/0"}
    )
    tg_user = TelegramUser(id=USER_ID, is_bot=False, first_name="A", language_code="en")
    for each, cached in ((shared, False), (settings, True)):
        services = create_services(each)
        try:
            services.user_cache.put(dto(USER_ID, clock), clock.now)
            assert (services.user_cache.get(tg_user, "user", clock.now) is not None) is cached
        finally:
            await services.aclose()
            await services.engine.dispose()


def test_the_oldest_entries_go_first_when_full(clock: FakeClock) -> None:
    from aiogram.types import User as TelegramUser

    cache = UserCache(ttl=timedelta(seconds=60), max_size=2)

    def tg(user_id: int) -> TelegramUser:
        return TelegramUser(id=user_id, is_bot=False, first_name="A", language_code="en")

    for user_id in (1, 2):
        cache.put(dto(user_id, clock), clock.now)
    assert cache.get(tg(1), "user", clock.now) is not None
    cache.put(dto(1, clock), clock.now)  # refreshed: now the newest
    cache.put(dto(3, clock), clock.now)
    assert cache.get(tg(2), "user", clock.now) is None
    assert cache.get(tg(1), "user", clock.now) is not None
    assert cache.get(tg(1), "admin", clock.now) is None  # a role change is a miss
    assert len(cache) == 1


async def test_a_row_changed_behind_the_cache_is_never_served_stale(
    chat: Chat, dp: Dispatcher, container: Container, clock: FakeClock
) -> None:
    """Whatever other code writes to a user's row (the referrer, the blocked flag, the
    role, names), a cache hit gives the handler what a database read would have given:
    nobody who writes a user row has to tell the cache."""
    from aiogram.types import User as TelegramUser

    seen: list[UserDTO] = []

    async def remember(message: Message, user: UserDTO) -> None:
        seen.append(user)

    dp.message.register(remember, F.text == "/whoami")
    await chat.send(REFERRER_ID, "/whoami")
    await chat.send(USER_ID, "/whoami", first_name="Ann")
    assert len(container.user_cache) == 2
    changed = {
        "first_name": "Someone",
        "last_name": "Else",
        "username": "else",
        "language_code": "xx",
        "role": "admin",
        "is_blocked": True,
        "blocked_at": clock.now,
        "referred_by_id": REFERRER_ID,
        "last_seen_at": clock.now - timedelta(days=1),
    }
    writable = {c.name for c in User.__table__.columns} - {"id", "created_at"}
    assert set(changed) == writable  # a new column must be changed here too
    async with container.sessionmaker.begin() as session:
        await session.execute(update(User).where(User.id == USER_ID).values(**changed))

    # What the database path makes of that row for this update (rolled back: not kept).
    async with container.sessionmaker() as session:
        tg_user = TelegramUser(id=USER_ID, is_bot=False, first_name="Ann", language_code="en")
        fresh = await ensure_user(
            UserRepository(session), tg_user, admin_ids=container.admin_ids, now=clock()
        )
        await session.rollback()

    clock.advance(seconds=1)
    await chat.send(USER_ID, "/whoami", first_name="Ann")
    assert seen[-1] == fresh
    async with container.sessionmaker() as session:
        row = await session.get(User, USER_ID)
        assert row is not None and row.last_name == "Else"  # a hit: the row was not read


def test_a_cached_user_holds_only_what_a_hit_checks() -> None:
    """A field added to UserDTO that other code may write (say ``is_blocked``) would be
    served stale from the cache: a hit checks Telegram's fields and the role only."""
    never_change = {"id", "created_at", "created_now"}
    checked = {*TELEGRAM_FIELDS, "role"}
    assert {f.name for f in fields(UserDTO)} == never_change | checked
