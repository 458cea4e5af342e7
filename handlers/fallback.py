"""What nobody else handled: unknown commands, stray text, stale buttons."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer

from bot.chat import texts
from bot.chat.commands import is_admin_command
from bot.chat.filters import Is


async def unknown_command(message: Message) -> None:
    # Admin routers filter on the role, so an admin command from anyone else lands here.
    name = (message.text or "").split(maxsplit=1)[0][1:].split("@", 1)[0].lower()
    await message.answer(
        str(texts.ADMIN_ONLY) if is_admin_command(name) else str(texts.UNKNOWN_COMMAND)
    )


async def stray_message(message: Message) -> None:
    await message.answer(str(texts.NOT_A_COMMAND))


async def stale_button(_query: CallbackQuery, callback_answer: CallbackAnswer) -> None:
    callback_answer.text = str(texts.NOT_AVAILABLE)


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.register(unknown_command, Is(F.text.startswith("/")))
    router.message.register(stray_message)
    router.callback_query.register(stale_button)
    return router
