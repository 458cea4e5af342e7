"""/stats: referrals, commissions by state, balance, tier; the earnings chart."""

from __future__ import annotations

import asyncio

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import BufferedInputFile, CallbackQuery, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.chat import keyboards, texts, views
from bot.chat.callbacks import StatsAction, StatsCallback
from bot.chat.charts import render_earnings_png
from bot.chat.tell import Tell
from bot.config import Settings
from bot.domain.commissions import CHART_DAYS, affiliate_stats, daily_earnings
from bot.domain.money import Money
from bot.domain.referrals import ensure_account
from bot.domain.users import UserDTO
from bot.infra.clock import Clock
from bot.infra.notifier import Notifier


async def cmd_stats(
    message: Message,
    user: UserDTO,
    session: AsyncSession,
    settings: Settings,
    clock: Clock,
    tell: Tell,
) -> None:
    now = clock()
    await ensure_account(session, user.id, now)
    stats = await affiliate_stats(session, settings, user.id, now)
    await tell.reply(
        session, message, views.stats_text(stats, settings.affiliates), keyboards.stats()
    )


async def chart_pressed(
    query: CallbackQuery,
    user: UserDTO,
    session: AsyncSession,
    settings: Settings,
    clock: Clock,
    notifier: Notifier,
) -> None:
    earnings = await daily_earnings(session, user.id, clock())
    # Rendering takes a fraction of a second in a thread: end the transaction first so the
    # (single, on SQLite) connection is not held meanwhile.
    await session.commit()
    config = settings.affiliates
    png = await asyncio.to_thread(
        render_earnings_png,
        earnings.days,
        earnings.pending_minor,
        earnings.confirmed_minor,
        currency=config.currency,
        minor_digits=config.minor_digits,
    )
    caption = texts.CHART_CAPTION.format(
        days=CHART_DAYS, total=Money.from_settings(config).format(earnings.total_minor)
    )
    await notifier.send_photo(
        user.id, BufferedInputFile(png, filename="earnings.png"), caption=caption
    )


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.register(cmd_stats, Command("stats"))
    router.callback_query.register(
        chart_pressed, StatsCallback.filter(F.action == StatsAction.CHART)
    )
    return router
