"""One database session per update, committed when the handler returns; and the request
middleware that lets go of it before the bot waits on Telegram, and refuses a call while
it holds writes (db/update_session.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.client.session.middlewares.base import NextRequestMiddlewareType
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import TelegramObject
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.update_session import before_telegram, update_session


class QuietRollback(Exception):
    """Raised inside an update to roll its transaction back with no error reply."""


class DbSessionMiddleware(BaseMiddleware):
    """The update's session (``session`` in the data), committed when the handler returns.

    A handler that has only read when it makes its first Bot API call (a reply, an edit, a
    callback answer) finds its transaction committed at that call (``release_database_first``
    below), so it never holds the database while Telegram answers. What it runs after that
    is a transaction of its own, committed here; tests/test_update_session.py holds both.
    """

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        async with self.sessionmaker() as session:
            data["session"] = session
            try:
                with update_session(session):
                    result = await handler(event, data)
            except QuietRollback:
                await session.rollback()
                return None
            except Exception:
                # The whole update is rolled back before the errors handler answers.
                await session.rollback()
                raise
            # What the handler did after a release (if anything) is a transaction of its own;
            # with none open there is nothing left to commit.
            if session.in_transaction():
                await session.commit()
            return result


async def release_database_first(
    make_request: NextRequestMiddlewareType[TelegramType],
    bot: Bot,
    method: TelegramMethod[TelegramType],
) -> Response[TelegramType]:
    """Bot API request middleware, outermost (bot/factory.py installs it on the bot's
    session): before each call, an update's transaction that has only read is committed,
    so no read-only transaction waits on Telegram holding SQLite's one connection; a call
    while the update's transaction holds writes raises ``TellBeforeCommitError`` (what is
    said about a write goes out after its commit). db/update_session.py has the reasons."""
    await before_telegram(method.__api_method__)
    return await make_request(bot, method)
