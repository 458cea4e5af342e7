"""Per-user rate limit for messages and button presses; payments and admins pass."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiogram import BaseMiddleware
from aiogram.exceptions import TelegramAPIError
from aiogram.types import TelegramObject, Update
from aiogram.types import User as TelegramUser

from bot.chat import texts
from bot.chat.i18n import in_locale
from bot.infra.ratelimit import RateLimiter, Verdict
from bot.infra.updatelog import Outcome, UpdateTrace

logger = logging.getLogger(__name__)

# Handler data key the intake sets to the update's arrival instant (a UTC datetime).
RECEIVED_AT_KEY = "received_at"


def is_limited(update: Update) -> bool:
    """Messages (but never a payment) and button presses count; nothing else does."""
    if update.callback_query is not None:
        return True
    message = update.message or update.edited_message
    if message is None:
        return False
    return message.successful_payment is None and message.refunded_payment is None


class RateLimitMiddleware(BaseMiddleware):
    """Takes a token per limited update; the first one over the limit gets one answer."""

    def __init__(self, limiter: RateLimiter, exempt: frozenset[int]) -> None:
        self.limiter = limiter
        self.exempt = exempt

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        assert isinstance(event, Update)
        user: TelegramUser | None = data.get("event_from_user")
        if user is None or user.id in self.exempt or not is_limited(event):
            return await handler(event, data)
        # Counted when the update arrived, where the intake says (webhook, inbox): it may
        # have waited behind the chat's earlier updates and their paced replies.
        received_at: datetime | None = data.get(RECEIVED_AT_KEY)
        verdict = await self.limiter.hit(user.id, received_at)
        if verdict.allowed:
            return await handler(event, data)
        trace: UpdateTrace | None = data.get("trace")
        if trace is not None:
            trace.outcome = Outcome.THROTTLED
        if verdict.notify:
            await self._tell(event, verdict, user.language_code)
        return None

    @staticmethod
    async def _tell(update: Update, verdict: Verdict, language: str | None) -> None:
        # Before the i18n middleware (a throttled update goes no further): the user's
        # language is set here.
        with in_locale(language):
            text = texts.slow_down(verdict.retry_after_seconds)
        try:
            if update.callback_query is not None:
                await update.callback_query.answer(text)
            elif update.message is not None:
                await update.message.answer(text)
            elif update.edited_message is not None:
                await update.edited_message.answer(text)
        except TelegramAPIError as exc:
            # The notice is a courtesy: a blocked bot or an expired query changes nothing.
            logger.info("slow-down notice for update %s not sent: %s", update.update_id, exc)
