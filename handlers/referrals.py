"""/link: the user's referral link, a share button, their tier and its rates."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.filters import Command
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.chat import keyboards, texts, views
from bot.chat.tell import Tell
from bot.config import Settings
from bot.domain.money import Money
from bot.domain.referrals import ensure_account, referral_link, share_url, tier_status
from bot.domain.users import UserDTO
from bot.infra.clock import Clock


async def cmd_link(
    message: Message,
    bot: Bot,
    user: UserDTO,
    session: AsyncSession,
    settings: Settings,
    clock: Clock,
    tell: Tell,
) -> None:
    now = clock()
    me = await bot.me()  # before ensure_account, which may write
    account = await ensure_account(session, user.id, now)
    link = referral_link(me.username or "", account.token)
    status = await tier_status(session, settings.affiliates, user.id, now)
    money = Money.from_settings(settings.affiliates)
    await tell.reply(
        session,
        message,
        views.link_text(link, status, money),
        keyboards.share_link(share_url(link, str(texts.LINK_SHARE_TEXT))),
    )


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.register(cmd_link, Command("link"))
    return router
