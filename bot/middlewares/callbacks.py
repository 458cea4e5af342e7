"""Every button press is answered, so the client's spinner never hangs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram.dispatcher.flags import get_flag
from aiogram.types import CallbackQuery, TelegramObject
from aiogram.utils.callback_answer import CallbackAnswerMiddleware


class AnswerCallbackMiddleware(CallbackAnswerMiddleware):
    """aiogram's middleware, except that a failing handler is answered by the errors handler.

    aiogram answers in a ``finally``, which would leave nothing for the errors handler to
    say (a callback can be answered only once); here the errors handler shows the reason.
    Handlers may set ``callback_answer.text`` / ``show_alert`` or answer themselves.
    """

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        if not isinstance(event, CallbackQuery):
            return await handler(event, data)
        callback_answer = data["callback_answer"] = self.construct_callback_answer(
            properties=get_flag(data, "callback_answer"),
        )
        result = await handler(event, data)
        if not callback_answer.disabled and not callback_answer.answered:
            await self.answer(event, callback_answer)
        return result
