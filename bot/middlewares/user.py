"""Injects the current user as a plain DTO (``user``), creating the row on first contact.

A user seen within the last minute comes from the cache (bot/services/user_cache.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject
from aiogram.types import User as TelegramUser
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.services.notifier import BlockedUsers
from bot.services.user_cache import UserCache
from bot.services.users import ensure_user
from db.hooks import after_commit
from db.repositories.users import UserRepository


class UserMiddleware(BaseMiddleware):
    def __init__(
        self,
        admin_ids: frozenset[int],
        clock: Clock,
        blocked: BlockedUsers | None = None,
        cache: UserCache | None = None,
    ) -> None:
        self.admin_ids = admin_ids
        self.clock = clock
        self.blocked = blocked
        self.cache = cache

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
            now = self.clock()
            cached = None
            if self.blocked is not None and tg_user.id in self.blocked:
                # Writing to the bot again means they unblocked it: ensure_user clears the flag.
                self.blocked.discard(tg_user.id)
            elif self.cache is not None:
                role = "admin" if tg_user.id in self.admin_ids else "user"
                cached = self.cache.get(tg_user, role, now)
            if cached is not None:
                data["user"] = cached
            else:
                user = await ensure_user(
                    UserRepository(session), tg_user, admin_ids=self.admin_ids, now=now
                )
                data["user"] = user
                if self.cache is not None:
                    cache = self.cache
                    after_commit(session, lambda: cache.put(user, now))
        return await handler(event, data)
