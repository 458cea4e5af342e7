"""Router-level filters."""

from __future__ import annotations

from aiogram.filters import Filter
from aiogram.types import TelegramObject

from bot.services.users import UserDTO


class IsAdmin(Filter):
    """Lets an update through only from an admin (role from config ``telegram.admin_ids``)."""

    async def __call__(self, event: TelegramObject, user: UserDTO | None = None) -> bool:
        return user is not None and user.is_admin
