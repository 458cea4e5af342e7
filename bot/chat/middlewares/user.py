"""Injects the current user as a plain DTO (``user``), creating the row on first contact.

A user seen within the last minute comes from the cache (bot/chat/user_cache.py).

When that creates or refreshes the row, the write is committed at once, so the handler
starts with nothing written: a read-only handler may answer at once, and only what the
handler itself writes waits for its commit (db/update_session.py). One exception: a new
user's ``/start <payload>`` (a deep link) keeps the new row in the update's transaction,
because the referral it may record is for new users only: if that commit fails, the
retried update still finds a new user, and attributes it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update
from aiogram.types import User as TelegramUser
from sqlalchemy.ext.asyncio import AsyncSession

from bot.chat.user_cache import UserCache
from bot.domain.users import ensure_user
from bot.infra.clock import Clock
from bot.infra.notifier import BlockedUsers
from db.hooks import after_commit
from db.repositories.users import UserRepository
from db.update_session import holds_writes


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
                if holds_writes(session) and not (user.created_now and _deep_link(event)):
                    await session.commit()
        return await handler(event, data)


def _deep_link(event: TelegramObject) -> bool:
    """A /start with a payload (``t.me/<bot>?start=<payload>``)."""
    message = event.message if isinstance(event, Update) else None
    text = message.text if message is not None else None
    if not text:
        return False
    command, _, payload = text.partition(" ")
    return command.split("@", 1)[0] == "/start" and bool(payload.strip())
