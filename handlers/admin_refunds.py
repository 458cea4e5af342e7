"""Admins: /refund of a Stars payment (Telegram first, then our records and notices)."""

from __future__ import annotations

import logging
from typing import Any

from aiogram import Bot, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.chat import texts
from bot.chat.filters import AdminFilter
from bot.chat.tell import Tell
from bot.config import Settings
from bot.domain.checkout import apply_refund, refundable_payment
from bot.domain.errors import AppError, ErrorCode
from bot.domain.money import Money
from bot.domain.notices import NoticeCode
from bot.domain.users import UserDTO
from bot.infra.clock import Clock

logger = logging.getLogger(__name__)

# Telegram's answer when the Stars went back already (e.g. our commit failed last time).
ALREADY_REFUNDED = "CHARGE_ALREADY_REFUNDED"


async def cmd_refund(
    message: Message,
    command: CommandObject,
    bot: Bot,
    user: UserDTO,
    session: AsyncSession,
    settings: Settings,
    clock: Clock,
    tell: Tell,
) -> None:
    charge_id = (command.args or "").strip()
    if not charge_id or " " in charge_id:
        await message.answer(str(texts.REFUND_USAGE))
        return
    payment = await refundable_payment(session, charge_id)
    try:
        await bot.refund_star_payment(user_id=payment.user_id, telegram_payment_charge_id=charge_id)
    except TelegramBadRequest as exc:
        if ALREADY_REFUNDED not in exc.message:
            raise AppError(ErrorCode.REFUND_TELEGRAM_REFUSED, reason=exc.message) from None
        logger.warning("payment %s was refunded at Telegram already; recording it", charge_id)
    result = await apply_refund(session, charge_id=charge_id, admin_id=user.id, now=clock())
    money = Money.from_settings(settings.affiliates)
    expires = texts.when(result.expires_at) if result.expires_at else texts.NO_SUBSCRIPTION_END
    refunded = {"charge_id": charge_id, "stars": payment.stars, "expires": expires}
    reversed_commission = result.reversed
    commission: dict[str, Any] | None = None
    if reversed_commission is not None:
        commission = {
            "amount": money.format(reversed_commission.amount_minor),
            "state": reversed_commission.previous_state.value,
            "balance": money.format(reversed_commission.balance_minor),
        }
    done = {**refunded, "user_id": payment.user_id, "commission": commission}
    notices = [
        (user.id, NoticeCode.REFUND_DONE, done),
        (payment.user_id, NoticeCode.REFUND_USER, refunded),
    ]
    if reversed_commission is not None and commission is not None:
        reversed_by = {"amount": commission["amount"], "balance": commission["balance"]}
        notices.append((reversed_commission.affiliate_id, NoticeCode.REFUND_AFFILIATE, reversed_by))
    await tell.notice_many(session, notices)


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(AdminFilter())
    router.message.register(cmd_refund, Command("refund"))
    return router
