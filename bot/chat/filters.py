"""Filters shared by routers: the admin role, and typed text that is not a command."""

from __future__ import annotations

from aiogram import F
from aiogram.filters import Filter
from aiogram.types import TelegramObject

from bot.domain.users import UserDTO


class AdminFilter(Filter):
    """Passes for users whose role (from ``telegram.admin_ids``) is admin."""

    async def __call__(self, event: TelegramObject, user: UserDTO | None = None) -> bool:
        return user is not None and user.is_admin


# Text that is not a command: commands typed mid-flow still reach their own handlers.
PLAIN_TEXT = F.text & ~F.text.startswith("/")
