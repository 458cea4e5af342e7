"""Webhook mode: accept Telegram's deliveries fast, exactly once, and process them behind.

A delivery is claimed in the inbox (bot/intake/inbox.py: its id and raw JSON stored in
``processed_updates``) before Telegram gets its 200, then processed in the background
like every update; polling mode (bot/intake/polling.py) goes through the same inbox.
"""

from __future__ import annotations

import logging

from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramBadRequest

from bot.config import ConfigError, Settings
from bot.intake.inbox import ChatQueues, Inbox, InvalidUpdate, Receipt

logger = logging.getLogger(__name__)

__all__ = ["ChatQueues", "InvalidUpdate", "Receipt", "WebhookIntake", "register_webhook"]


class WebhookIntake(Inbox):
    """The inbox as the side server's webhook view uses it."""

    async def receive(self, raw: str) -> Receipt:
        """Claim and queue one delivery. Raises InvalidUpdate, or the database's error."""
        if not self.accepting or self.queued >= self.settings.max_pending:
            return Receipt.BUSY  # before parsing: overload must stay cheap
        return await self.accept(self.parse(raw), raw)


async def register_webhook(bot: Bot, dp: Dispatcher, settings: Settings) -> list[str]:
    """setWebhook with the URL, the secret and the update types the handlers use."""
    url, secret = settings.require_webhook()
    allowed = dp.resolve_used_update_types()
    try:
        await bot.set_webhook(
            url=url,
            secret_token=secret,
            allowed_updates=allowed,
            drop_pending_updates=settings.telegram.drop_pending_updates,
            max_connections=settings.webhook.max_connections,
        )
    except TelegramBadRequest as exc:
        # Telegram checks the URL (HTTPS, port 443/80/88/8443, resolvable): name the key.
        raise ConfigError(
            f"config error: webhook.url (WEBHOOK__URL or config.toml): "
            f"Telegram refused {url}: {exc.message}"
        ) from None
    logger.info("webhook set: %s (%s)", url, ", ".join(allowed))
    return allowed
