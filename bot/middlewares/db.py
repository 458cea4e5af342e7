"""One database transaction per update; committed when the handler returns."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


class QuietRollback(Exception):
    """Raised inside an update to roll its transaction back with no error reply."""


class DbSessionMiddleware(BaseMiddleware):
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        # An exception rolls the whole update back before the errors handler answers.
        try:
            async with self.sessionmaker() as session, session.begin():
                data["session"] = session
                return await handler(event, data)
        except QuietRollback:
            return None
