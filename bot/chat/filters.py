"""Filters shared by routers: the admin role, typed text that is not a command, and
``Is``, which checks a magic filter on the event loop.

aiogram runs a filter that is a plain callable (a bare ``F...`` or a ``State``) on its
thread pool, a hop that costs more than the check; ``Is(F...)`` and ``StateFilter(...)``
are awaited in place. Both only read the update, so running them on the loop is safe."""

from __future__ import annotations

from aiogram import F
from aiogram.filters import Filter
from aiogram.types import TelegramObject
from aiogram.utils.magic_filter import MagicFilter

from bot.domain.users import UserDTO


class AdminFilter(Filter):
    """Passes for users whose role (from ``telegram.admin_ids``) is admin."""

    async def __call__(self, event: TelegramObject, user: UserDTO | None = None) -> bool:
        return user is not None and user.is_admin


class Is(Filter):
    """A magic filter (``F.text``, ``F.successful_payment``...) checked on the event loop."""

    def __init__(self, magic: MagicFilter) -> None:
        self.magic = magic

    async def __call__(self, event: TelegramObject) -> bool:
        return bool(self.magic.resolve(event))

    def __str__(self) -> str:
        return f"Is({self.magic!r})"


# Text that is not a command: commands typed mid-flow still reach their own handlers.
PLAIN_TEXT = Is(F.text & ~F.text.startswith("/"))
