"""One place turns exceptions into answers: an AppError worded by its code, or an apology."""

from __future__ import annotations

import logging
from contextlib import suppress

from aiogram import Router
from aiogram.exceptions import TelegramAPIError
from aiogram.types import ErrorEvent

from bot.chat import texts
from bot.chat.middlewares.inbox import Attempt
from bot.domain.errors import AppError

logger = logging.getLogger(__name__)


async def on_error(event: ErrorEvent, inbox_attempt: Attempt | None = None) -> None:
    exc = event.exception
    update = event.update
    if isinstance(exc, AppError):
        reply = texts.error_text(exc)
    else:
        logger.error(
            "update %s failed: %s",
            update.update_id,
            type(exc).__name__,
            exc_info=(type(exc), exc, exc.__traceback__),
        )
        if inbox_attempt is not None:
            # A stored update is run again (bot/intake/inbox.py): one apology, on its last attempt.
            inbox_attempt.failed(exc)
            if not inbox_attempt.apologise:
                return
            reply = str(texts.APOLOGY_ADMINS_TOLD)
        else:
            reply = str(texts.APOLOGY)
    # The answer may itself fail (user blocked the bot, query too old): nothing more to do.
    with suppress(TelegramAPIError):
        if update.callback_query is not None:
            await update.callback_query.answer(reply, show_alert=True)
        elif update.message is not None:
            await update.message.answer(reply)


def create_router() -> Router:
    router = Router(name=__name__)
    router.errors.register(on_error)
    return router
