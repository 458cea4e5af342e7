"""An update's read-only transaction is let go of before the bot waits on Telegram
(db/update_session.py); a call to Telegram while it holds writes is refused."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from aiogram import Bot, Dispatcher, Router
from aiogram.filters import Command
from aiogram.types import Message
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.chat.middlewares import DbSessionMiddleware
from db.models import User
from db.update_session import (
    TellBeforeCommitError,
    before_telegram,
    release_if_read_only,
    update_session,
)
from tests.conftest import Chat
from tests.fake_bot_api import FakeBotAPI, message_update

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def user_row(user_id: int) -> dict[str, Any]:
    return {
        "id": user_id,
        "first_name": f"user {user_id}",
        "role": "user",
        "created_at": NOW,
        "last_seen_at": NOW,
        "is_blocked": False,
    }


async def user_ids(sessionmaker: async_sessionmaker[AsyncSession]) -> set[int]:
    async with sessionmaker() as session:
        return set((await session.execute(select(User.id))).scalars())


async def wait_for_call(api: FakeBotAPI, method: str) -> None:
    async with asyncio.timeout(5):
        while not any(call.method == method for call in api.calls):
            await asyncio.sleep(0.005)


async def test_a_reply_that_waits_on_telegram_holds_no_database_connection(
    chat: Chat, fake_api: FakeBotAPI, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await chat.send(7001, "/help")  # first contact: the user's row is written
    # /devices reads the user's devices, then replies; Telegram takes its time to answer.
    gate = fake_api.hold("sendMessage")
    update = asyncio.create_task(chat.send(7001, "/devices"))
    await wait_for_call(fake_api, "sendMessage")
    # Meanwhile anyone else may write (on SQLite the pool has one connection: a held
    # transaction would keep this waiting for the whole round trip).
    async with asyncio.timeout(2), sessionmaker.begin() as session:
        await session.execute(insert(User), [user_row(7002)])
    assert not update.done()
    gate.set()
    replies = await asyncio.wait_for(update, 5)
    assert replies and "terminal" in replies[0].lower()
    assert {7001, 7002} <= await user_ids(sessionmaker)


def _writer_dispatcher(sessionmaker: async_sessionmaker[AsyncSession]) -> Dispatcher:
    """A handler that reads, replies and then writes; /late_fail fails after the reply."""
    router = Router()

    @router.message(Command("read_reply_write"))
    async def read_reply_write(message: Message, session: AsyncSession) -> None:
        await session.execute(select(func.count()).select_from(User))
        await message.answer("counted")
        assert not session.in_transaction()  # let go of before the reply
        await session.execute(insert(User), [user_row(8001)])

    @router.message(Command("write_reply"))
    async def write_reply(message: Message, session: AsyncSession) -> None:
        await session.execute(insert(User), [user_row(8002)])
        await message.answer("stored")  # told before the commit: refused
        await session.execute(insert(User), [user_row(8003)])

    @router.message(Command("late_fail"))
    async def late_fail(message: Message, session: AsyncSession) -> None:
        await session.execute(select(func.count()).select_from(User))
        await message.answer("about to fail")
        await session.execute(insert(User), [user_row(8004)])
        raise RuntimeError("after the reply")

    dp = Dispatcher()
    dp.update.outer_middleware(DbSessionMiddleware(sessionmaker))
    dp.include_router(router)
    return dp


async def test_what_a_handler_writes_after_a_release_is_committed_at_its_end(
    bot: Bot, fake_api: FakeBotAPI, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    dp = _writer_dispatcher(sessionmaker)
    await dp.feed_raw_update(bot, {"update_id": 1, **message_update(8000, "/read_reply_write")})
    assert 8001 in await user_ids(sessionmaker)
    assert [c.params["text"] for c in fake_api.calls if c.method == "sendMessage"] == ["counted"]


async def test_a_reply_while_the_transaction_holds_writes_is_refused(
    bot: Bot, fake_api: FakeBotAPI, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    dp = _writer_dispatcher(sessionmaker)
    update = {"update_id": 2, **message_update(8000, "/write_reply")}
    with pytest.raises(TellBeforeCommitError, match=r"sendMessage .* use container.outbox"):
        await dp.feed_raw_update(bot, update)
    assert not {8002, 8003} & await user_ids(sessionmaker)  # rolled back, nothing told
    assert fake_api.calls == []


async def test_a_failure_after_a_release_rolls_back_what_followed_it(
    bot: Bot, fake_api: FakeBotAPI, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    dp = _writer_dispatcher(sessionmaker)
    update = {"update_id": 3, **message_update(8000, "/late_fail")}
    with pytest.raises(RuntimeError, match="after the reply"):
        await dp.feed_raw_update(bot, update)
    assert 8004 not in await user_ids(sessionmaker)
    assert [c.params["text"] for c in fake_api.calls] == ["about to fail"]


async def test_release_only_lets_go_of_a_transaction_that_has_not_written(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    assert await release_if_read_only() is False  # no update's session at all
    async with sessionmaker() as session:
        with update_session(session):
            assert await release_if_read_only() is False  # no transaction yet
            await session.execute(select(func.count()).select_from(User))
            assert await release_if_read_only() is True
            assert not session.in_transaction()

            session.add(User(**user_row(9001)))  # queued, not flushed: a write
            assert await release_if_read_only() is False
            await session.flush()
            assert await release_if_read_only() is False  # flushed: written
            assert session.in_transaction()

            # Rows locked for a write to come are kept locked.
            await session.rollback()
            await session.execute(select(User.id).where(User.id == 1).with_for_update())
            assert await release_if_read_only() is False
            assert session.in_transaction()

            # Another task (one the handler started) never commits the update's session.
            await session.rollback()
            await session.execute(select(func.count()).select_from(User))
            assert await asyncio.create_task(release_if_read_only()) is False
            assert session.in_transaction()
        await session.rollback()
    assert 9001 not in await user_ids(sessionmaker)


async def test_a_call_to_telegram_while_the_transaction_holds_writes_is_refused(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    assert await before_telegram("sendMessage") is False  # no update's session at all
    async with sessionmaker() as session:
        with update_session(session):
            await session.execute(select(func.count()).select_from(User))
            assert await before_telegram("sendMessage") is True  # read only: released
            session.add(User(**user_row(9002)))  # queued, not flushed
            with pytest.raises(TellBeforeCommitError):
                await before_telegram("sendMessage")
            await session.flush()  # written
            with pytest.raises(TellBeforeCommitError):
                await before_telegram("editMessageText")
            await session.rollback()
            await session.execute(select(User.id).where(User.id == 1).with_for_update())
            with pytest.raises(TellBeforeCommitError):  # rows locked for a write to come
                await before_telegram("answerCallbackQuery")
            # A task the handler started is not the update's: it is neither checked nor
            # lets go of the session (it must not touch it at all).
            assert await asyncio.create_task(before_telegram("sendMessage")) is False
        await session.rollback()
    assert 9001 not in await user_ids(sessionmaker)
