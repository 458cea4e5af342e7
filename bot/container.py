"""Long-lived objects shared by the bot and the side server of one process."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiogram import Bot
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.clock import Clock, utcnow
from bot.config import Settings
from bot.services.notifier import Notifier


@dataclass
class Container:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    bot: Bot | None = None
    clock: Clock = field(default=utcnow)
    notifier: Notifier | None = None

    def __post_init__(self) -> None:
        if self.notifier is None and self.bot is not None:
            self.notifier = Notifier(self.bot, self.sessionmaker, self.clock)

    def require_notifier(self) -> Notifier:
        if self.notifier is None:
            raise RuntimeError("this container has no bot, so nothing can be sent")
        return self.notifier

    @property
    def admin_ids(self) -> frozenset[int]:
        return frozenset(self.settings.telegram.admin_ids)
