"""Long-lived objects shared by the bot and the side server of one process."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiogram import Bot
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.clock import Clock, utcnow
from bot.config import Settings
from bot.metrics import Metrics
from bot.services.notifier import Notifier
from bot.services.ratelimit import RateLimiter, create_rate_limiter
from bot.updatelog import UpdateLog


@dataclass
class Container:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    bot: Bot | None = None
    clock: Clock = field(default=utcnow)
    notifier: Notifier | None = None
    metrics: Metrics = field(default_factory=Metrics)
    rate_limiter: RateLimiter | None = None
    update_log: UpdateLog = field(init=False)

    def __post_init__(self) -> None:
        if self.notifier is None and self.bot is not None:
            self.notifier = Notifier(self.bot, self.sessionmaker, self.clock)
        if self.rate_limiter is None:
            self.rate_limiter = create_rate_limiter(self.settings, self.clock)
        self.update_log = UpdateLog(self.metrics)
        if self.bot is not None:
            self.bot.session.middleware(self.metrics.bot_api_middleware())

    def require_notifier(self) -> Notifier:
        if self.notifier is None:
            raise RuntimeError("this container has no bot, so nothing can be sent")
        return self.notifier

    @property
    def admin_ids(self) -> frozenset[int]:
        return frozenset(self.settings.telegram.admin_ids)

    async def close(self) -> None:
        """Release what the container opened (the bot's session is its creator's)."""
        if self.rate_limiter is not None:
            await self.rate_limiter.close()
        await self.engine.dispose()
