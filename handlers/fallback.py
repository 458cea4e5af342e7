"""What nobody else handled: unknown commands, stray text, stale buttons."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer

from bot import texts
from bot.commands import COMMANDS

ADMIN_COMMANDS = frozenset(command.name for command in COMMANDS if command.admin_only)

router = Router(name=__name__)


@router.message(F.text.startswith("/"))
async def unknown_command(message: Message) -> None:
    # Admin routers let only admins through; everyone else learns why, not "unknown".
    name = (message.text or "").split()[0][1:].split("@")[0].lower()
    if name in ADMIN_COMMANDS:
        await message.answer(texts.ADMIN_ONLY)
        return
    await message.answer(texts.UNKNOWN_COMMAND)


@router.message()
async def stray_message(message: Message) -> None:
    await message.answer(texts.NOT_A_COMMAND)


@router.callback_query()
async def stale_button(_query: CallbackQuery, callback_answer: CallbackAnswer) -> None:
    callback_answer.text = texts.NOT_AVAILABLE
