"""Injects the current user as a plain DTO (``user``), creating the row on first contact."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject
from aiogram.types import User as TelegramUser
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.services.notifier import BlockedUsers
from bot.services.users import ensure_user
from db.repositories.users import UserRepository


class UserMiddleware(BaseMiddleware):
    def __init__(
        self, admin_ids: frozenset[int], clock: Clock, blocked: BlockedUsers | None = None
    ) -> None:
        self.admin_ids = admin_ids
        self.clock = clock
        self.blocked = blocked

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        tg_user: TelegramUser | None = data.get("event_from_user")
        session: AsyncSession = data["session"]
        if tg_user is None or tg_user.is_bot:
            data["user"] = None
        else:
            if self.blocked is not None:
                # Writing to the bot again means they unblocked it.
                self.blocked.discard(tg_user.id)
            data["user"] = await ensure_user(
                UserRepository(session), tg_user, admin_ids=self.admin_ids, now=self.clock()
            )
        return await handler(event, data)
