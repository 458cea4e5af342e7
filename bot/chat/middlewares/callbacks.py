"""Every button press is answered, so the client's spinner never hangs; an answer about a
write ("Approved") only once that write has committed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram.dispatcher.flags import get_flag
from aiogram.types import CallbackQuery, TelegramObject
from aiogram.utils.callback_answer import CallbackAnswerMiddleware
from sqlalchemy.ext.asyncio import AsyncSession

from bot.chat.tell import Tell
from db.update_session import holds_writes


class AnswerCallbackMiddleware(CallbackAnswerMiddleware):
    """aiogram's middleware, except for when it answers.

    - When the handler's transaction holds writes, the answer waits for the commit
      (``Tell.later``): it is never made if the commit fails, and then the errors handler
      answers with the apology instead.
    - Otherwise it goes at once, as aiogram's does.
    - A failing handler is answered by the errors handler: aiogram answers in a
      ``finally``, which would leave nothing for it to say (a query is answered once).

    Handlers may set ``callback_answer.text`` / ``show_alert`` or disable the answer.
    """

    def __init__(self, tell: Tell) -> None:
        super().__init__()
        self.tell = tell

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
        if callback_answer.disabled or callback_answer.answered:
            return result
        session: AsyncSession | None = data.get("session")
        if session is not None and holds_writes(session):
            self.tell.later(session, lambda: self.answer(event, callback_answer), "callback answer")
        else:
            await self.answer(event, callback_answer)
        return result
