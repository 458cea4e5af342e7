"""Admins: /refund of a Stars payment, /payouts and the payout review buttons."""

from __future__ import annotations

import logging
from typing import Any

from aiogram import Bot, F, Router, html
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer
from sqlalchemy.ext.asyncio import AsyncSession

from bot.chat import keyboards, texts, views
from bot.chat.callbacks import PayoutReviewAction, PayoutReviewCallback
from bot.chat.filters import AdminFilter
from bot.chat.i18n import Text
from bot.chat.tell import Tell
from bot.config import Settings
from bot.domain.checkout import apply_refund, refundable_payment
from bot.domain.errors import AppError, ConflictError, ErrorCode
from bot.domain.money import Money
from bot.domain.payout_destinations import display_destination
from bot.domain.payouts import (
    PayoutDTO,
    approve_payout,
    get_payout,
    mark_payout_paid,
    open_payouts,
    reject_payout,
)
from bot.domain.users import UserDTO
from bot.infra.clock import Clock

logger = logging.getLogger(__name__)

# Telegram's answer when the Stars went back already (e.g. our commit failed last time).
ALREADY_REFUNDED = "CHARGE_ALREADY_REFUNDED"
PLAIN_TEXT = F.text & ~F.text.startswith("/")


class ReviewForm(StatesGroup):
    reason = State()
    reference = State()


# ---------------------------------------------------------------------------- refunds


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
    reversed_commission = result.reversed
    commission_line = str(texts.REFUND_NO_COMMISSION)
    if reversed_commission is not None:
        commission_line = texts.REFUND_COMMISSION.format(
            amount=money.format(reversed_commission.amount_minor),
            state=reversed_commission.previous_state.value,
            balance=money.format(reversed_commission.balance_minor),
        )
    notices = [
        (
            user.id,
            texts.REFUND_DONE.format(
                stars=payment.stars,
                user_id=payment.user_id,
                charge_id=html.quote(charge_id),
                expires=expires,
                commission=commission_line,
            ),
        ),
        (
            payment.user_id,
            texts.REFUND_USER.format(
                charge_id=html.quote(charge_id), stars=payment.stars, expires=expires
            ),
        ),
    ]
    if reversed_commission is not None:
        notices.append(
            (
                reversed_commission.affiliate_id,
                texts.REFUND_AFFILIATE.format(
                    amount=money.format(reversed_commission.amount_minor),
                    balance=money.format(reversed_commission.balance_minor),
                ),
            )
        )
    await tell.send_many(session, notices)


# ---------------------------------------------------------------------------- payouts


async def cmd_payouts(message: Message, session: AsyncSession, settings: Settings) -> None:
    items, total = await open_payouts(session)
    if not items:
        await message.answer(str(texts.PAYOUTS_NONE))
        return
    money = Money.from_settings(settings.affiliates)
    buttons = [
        (
            item.id,
            texts.PAYOUT_OPEN_BUTTON.format(
                id=item.id,
                amount=money.format(item.amount_minor),
                state=texts.state_name(item.state),
            ),
        )
        for item in items
    ]
    await message.answer(
        texts.PAYOUTS_HEADER.format(shown=len(items), total=total),
        reply_markup=keyboards.open_payouts(buttons),
    )


async def open_pressed(
    query: CallbackQuery,
    callback_data: PayoutReviewCallback,
    session: AsyncSession,
    settings: Settings,
) -> None:
    payout = await get_payout(session, callback_data.payout_id)
    if isinstance(query.message, Message):
        text, markup = _card(payout, Money.from_settings(settings.affiliates))
        await query.message.answer(text, reply_markup=markup)


async def approve_pressed(
    query: CallbackQuery,
    callback_data: PayoutReviewCallback,
    user: UserDTO,
    session: AsyncSession,
    settings: Settings,
    clock: Clock,
    tell: Tell,
) -> None:
    payout = await approve_payout(session, callback_data.payout_id, admin_id=user.id, now=clock())
    money = Money.from_settings(settings.affiliates)
    if isinstance(query.message, Message):
        await tell.edit(session, query.message, *_card(payout, money))
    await tell.send(
        session,
        payout.user_id,
        texts.PAYOUT_APPROVED_USER.format(id=payout.id, amount=money.format(payout.amount_minor)),
    )


async def reject_pressed(
    query: CallbackQuery,
    callback_data: PayoutReviewCallback,
    session: AsyncSession,
    state: FSMContext,
) -> None:
    payout = await get_payout(session, callback_data.payout_id)
    if payout.state not in ("requested", "approved"):
        raise ConflictError(ErrorCode.PAYOUT_STEP_DONE, id=payout.id, state=payout.state)
    await _ask(query, state, ReviewForm.reason, payout.id, texts.PAYOUT_ASK_REASON)


async def reason_entered(
    message: Message,
    user: UserDTO,
    session: AsyncSession,
    settings: Settings,
    clock: Clock,
    state: FSMContext,
    tell: Tell,
) -> None:
    data = await state.get_data()
    payout = await reject_payout(
        session, data["payout_id"], admin_id=user.id, reason=message.text or "", now=clock()
    )
    await state.clear()
    money = Money.from_settings(settings.affiliates)
    await _after_decision(tell, session, message, data, payout, money)
    await tell.send(
        session,
        payout.user_id,
        texts.PAYOUT_REJECTED_USER.format(
            id=payout.id,
            amount=money.format(payout.amount_minor),
            reason=html.quote(payout.reject_reason or ""),
        ),
    )


async def paid_pressed(
    query: CallbackQuery,
    callback_data: PayoutReviewCallback,
    session: AsyncSession,
    state: FSMContext,
) -> None:
    payout = await get_payout(session, callback_data.payout_id)
    if payout.state != "approved":
        raise ConflictError(ErrorCode.PAYOUT_STEP_DONE, id=payout.id, state=payout.state)
    await _ask(
        query,
        state,
        ReviewForm.reference,
        payout.id,
        texts.PAYOUT_ASK_REFERENCE,
        reply_markup=keyboards.payout_no_reference(payout.id),
    )


async def reference_entered(
    message: Message,
    user: UserDTO,
    session: AsyncSession,
    settings: Settings,
    clock: Clock,
    state: FSMContext,
    tell: Tell,
) -> None:
    await _mark_paid(message, user, session, settings, clock, state, tell, message.text)


async def no_reference_pressed(
    query: CallbackQuery,
    callback_data: PayoutReviewCallback,
    user: UserDTO,
    session: AsyncSession,
    settings: Settings,
    clock: Clock,
    state: FSMContext,
    tell: Tell,
    callback_answer: CallbackAnswer,
) -> None:
    data = await state.get_data()
    if data.get("payout_id") != callback_data.payout_id or not isinstance(query.message, Message):
        callback_answer.text = str(texts.NOT_AVAILABLE)
        return
    await _mark_paid(query.message, user, session, settings, clock, state, tell, None)


async def _mark_paid(
    message: Message,
    user: UserDTO,
    session: AsyncSession,
    settings: Settings,
    clock: Clock,
    state: FSMContext,
    tell: Tell,
    reference: str | None,
) -> None:
    data = await state.get_data()
    payout = await mark_payout_paid(
        session, data["payout_id"], admin_id=user.id, tx_reference=reference, now=clock()
    )
    await state.clear()
    money = Money.from_settings(settings.affiliates)
    await _after_decision(tell, session, message, data, payout, money)
    ref = ""
    if payout.tx_reference:
        ref = texts.PAYOUT_REFERENCE.format(reference=html.quote(payout.tx_reference))
    await tell.send(
        session,
        payout.user_id,
        texts.PAYOUT_PAID_USER.format(
            id=payout.id,
            amount=money.format(payout.amount_minor),
            destination=html.quote(display_destination(payout.method, payout.destination)),
            reference=ref,
        ),
    )


def _card(payout: PayoutDTO, money: Money) -> tuple[str, InlineKeyboardMarkup | None]:
    """A payout's card, with the buttons of its state."""
    return views.payout_card(payout, money), keyboards.payout_review(payout.id, payout.state)


async def _ask(
    query: CallbackQuery,
    state: FSMContext,
    form_state: State,
    payout_id: int,
    template: Text,
    *,
    reply_markup: InlineKeyboardMarkup | None = None,
) -> None:
    """Ask the admin for text; remember which card to re-draw afterwards."""
    card = query.message if isinstance(query.message, Message) else None
    await state.set_state(form_state)
    await state.set_data(
        {
            "payout_id": payout_id,
            "card_chat_id": card.chat.id if card else None,
            "card_message_id": card.message_id if card else None,
        }
    )
    if card is not None:
        await card.answer(template.format(id=payout_id), reply_markup=reply_markup)


async def _after_decision(
    tell: Tell,
    session: AsyncSession,
    message: Message,
    data: dict[str, Any],
    payout: PayoutDTO,
    money: Money,
) -> None:
    """Re-draw the card the admin pressed and say what was decided (after the commit)."""
    if data.get("card_message_id"):
        text, markup = _card(payout, money)
        await tell.outbox.edit(
            session, data["card_chat_id"], data["card_message_id"], text, reply_markup=markup
        )
    await tell.reply(
        session,
        message,
        texts.PAYOUT_DECIDED.format(id=payout.id, state=texts.state_name(payout.state)),
    )


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(AdminFilter())
    router.callback_query.filter(AdminFilter())
    router.message.register(cmd_refund, Command("refund"))
    router.message.register(cmd_payouts, Command("payouts"))
    router.callback_query.register(
        open_pressed, PayoutReviewCallback.filter(F.action == PayoutReviewAction.OPEN)
    )
    router.callback_query.register(
        approve_pressed, PayoutReviewCallback.filter(F.action == PayoutReviewAction.APPROVE)
    )
    router.callback_query.register(
        reject_pressed, PayoutReviewCallback.filter(F.action == PayoutReviewAction.REJECT)
    )
    router.message.register(reason_entered, ReviewForm.reason, PLAIN_TEXT)
    router.callback_query.register(
        paid_pressed, PayoutReviewCallback.filter(F.action == PayoutReviewAction.PAID)
    )
    router.message.register(reference_entered, ReviewForm.reference, PLAIN_TEXT)
    router.callback_query.register(
        no_reference_pressed,
        PayoutReviewCallback.filter(F.action == PayoutReviewAction.PAID_NO_REFERENCE),
    )
    return router
