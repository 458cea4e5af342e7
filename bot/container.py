"""Long-lived objects shared by the bot and the side server of one process."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiogram import Bot
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.clock import Clock, utcnow
from bot.config import Settings
from bot.services.notifier import Notifier
from bot.services.sending import SendPath
from bot.services.signal_publisher import SignalPublisher
from bot.services.signals import SignalService, SubscriberCheck
from bot.services.subscriptions import active_subscribers


@dataclass
class Container:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    bot: Bot | None = None
    clock: Clock = field(default=utcnow)
    notifier: Notifier | None = None
    # The one send path on the bot's session (installed by create_bot).
    send_path: SendPath | None = None
    # Which users hold an active subscription (signals.require_subscription).
    subscriber_check: SubscriberCheck = field(default=active_subscribers)
    signal_publisher: SignalPublisher | None = None
    signals: SignalService = field(init=False)

    def __post_init__(self) -> None:
        if self.notifier is None and self.bot is not None:
            self.notifier = Notifier(self.bot, self.sessionmaker, self.clock)
        if self.send_path is None and self.bot is not None:
            self.send_path = SendPath.of(self.bot)
        if self.send_path is not None and self.notifier is not None:
            self.send_path.blocked = self.notifier.blocked
        if self.signal_publisher is None and self.notifier is not None:
            self.signal_publisher = SignalPublisher(self.notifier, self.sessionmaker, self.settings)
        self.signals = SignalService(
            self.settings,
            self.clock,
            publisher=self.signal_publisher,
            subscriber_check=self.subscriber_check,
        )

    async def stop_background(self, within: float) -> int:
        """Let broadcasts, edits and blocked-user writes finish for up to ``within`` s, then
        stop them; returns how many broadcasts were cut short."""
        if self.signal_publisher is not None:
            return await self.signal_publisher.close(within)
        if self.notifier is not None:
            await self.notifier.drain()
        return 0

    def require_notifier(self) -> Notifier:
        if self.notifier is None:
            raise RuntimeError("this container has no bot, so nothing can be sent")
        return self.notifier

    @property
    def admin_ids(self) -> frozenset[int]:
        return frozenset(self.settings.telegram.admin_ids)
