"""/start (with referral attribution from ``/start ref_<token>``) and /help."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.chat import texts
from bot.chat.commands import commands_for
from bot.chat.tell import Tell
from bot.domain.deeplink import parse_start_payload
from bot.domain.notices import NoticeCode
from bot.domain.referrals import attribute_referral
from bot.domain.users import UserDTO
from bot.infra.clock import Clock


async def cmd_start(
    message: Message,
    command: CommandObject,
    user: UserDTO,
    session: AsyncSession,
    clock: Clock,
    tell: Tell,
) -> None:
    payload = parse_start_payload(command.args)
    if payload.referral_token is not None:
        attribution = await attribute_referral(
            session,
            user_id=user.id,
            is_new_user=user.created_now,
            token=payload.referral_token,
            now=clock(),
        )
        if attribution is not None:
            await tell.notice(
                session,
                attribution.referrer_id,
                NoticeCode.REFERRAL_JOINED,
                name=user.first_name,
            )
    commands = [c for c in commands_for(is_admin=False) if c.name not in {"start", "cancel"}]
    await tell.reply(session, message, texts.greeting(user.first_name, commands[:6]))


async def cmd_help(message: Message, user: UserDTO) -> None:
    user_commands = commands_for(is_admin=False)
    admin_commands = (
        [c for c in commands_for(is_admin=True) if c.admin_only] if user.is_admin else []
    )
    await message.answer(texts.help_text(user_commands, admin_commands))


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.register(cmd_start, CommandStart())
    router.message.register(cmd_help, Command("help"))
    return router
