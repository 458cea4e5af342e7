"""/start and /help."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import Message

from bot import texts
from bot.commands import commands_for
from bot.services.deeplink import parse_start_payload
from bot.services.users import UserDTO

router = Router(name=__name__)


@router.message(CommandStart())
async def cmd_start(message: Message, command: CommandObject, user: UserDTO) -> None:
    payload = parse_start_payload(command.args)
    _ = payload  # the referral feature attributes payload.referral_token for new users
    commands = [c for c in commands_for(is_admin=False) if c.name not in {"start", "cancel"}]
    await message.answer(texts.greeting(user.first_name, commands[:6]))


@router.message(Command("help"))
async def cmd_help(message: Message, user: UserDTO) -> None:
    user_commands = commands_for(is_admin=False)
    admin_commands = (
        [c for c in commands_for(is_admin=True) if c.admin_only] if user.is_admin else []
    )
    await message.answer(texts.help_text(user_commands, admin_commands))
