"""Router-level filters."""

from __future__ import annotations

from aiogram.filters import Filter
from aiogram.types import TelegramObject

from bot.domain.users import UserDTO


class AdminFilter(Filter):
    """Passes for users whose role (from ``telegram.admin_ids``) is admin."""

    async def __call__(self, event: TelegramObject, user: UserDTO | None = None) -> bool:
        return user is not None and user.is_admin
