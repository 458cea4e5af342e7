"""Admins: /payouts and the review of a payout request (approve, reject, mark paid).

Rejecting and marking paid each ask the admin for one text (the reason, the reference):
``_ask`` checks the request may take that step and remembers which card to re-draw;
``_decided`` re-draws it, says what was decided, and tells the requester.
"""

from __future__ import annotations

from typing import Any

from aiogram import F, Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer
from sqlalchemy.ext.asyncio import AsyncSession

from bot.chat import keyboards, texts, views
from bot.chat.callbacks import PayoutReviewAction, PayoutReviewCallback
from bot.chat.filters import PLAIN_TEXT, AdminFilter
from bot.chat.i18n import Text
from bot.chat.tell import Tell
from bot.config import Settings
from bot.domain.errors import ConflictError, ErrorCode
from bot.domain.money import Money
from bot.domain.notices import NoticeCode
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


class ReviewForm(StatesGroup):
    reason = State()
    reference = State()


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
    await _tell_requester(tell, session, payout, money, NoticeCode.PAYOUT_APPROVED)


async def reject_pressed(
    query: CallbackQuery,
    callback_data: PayoutReviewCallback,
    session: AsyncSession,
    state: FSMContext,
) -> None:
    payout = await get_payout(session, callback_data.payout_id)
    takes = ("requested", "approved")
    await _ask(query, state, payout, takes, ReviewForm.reason, texts.PAYOUT_ASK_REASON)


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
    money = Money.from_settings(settings.affiliates)
    await _decided(tell, session, state, message, data, payout, money)
    await _tell_requester(
        tell, session, payout, money, NoticeCode.PAYOUT_REJECTED, reason=payout.reject_reason or ""
    )


async def paid_pressed(
    query: CallbackQuery,
    callback_data: PayoutReviewCallback,
    session: AsyncSession,
    state: FSMContext,
) -> None:
    payout = await get_payout(session, callback_data.payout_id)
    no_reference = keyboards.payout_no_reference(payout.id)
    question = texts.PAYOUT_ASK_REFERENCE
    await _ask(query, state, payout, ("approved",), ReviewForm.reference, question, no_reference)


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
    money = Money.from_settings(settings.affiliates)
    await _decided(tell, session, state, message, data, payout, money)
    await _tell_requester(
        tell,
        session,
        payout,
        money,
        NoticeCode.PAYOUT_PAID,
        destination=display_destination(payout.method, payout.destination),
        reference=payout.tx_reference,
    )


def _card(payout: PayoutDTO, money: Money) -> tuple[str, InlineKeyboardMarkup | None]:
    """A payout's card, with the buttons of its state."""
    return views.payout_card(payout, money), keyboards.payout_review(payout.id, payout.state)


async def _ask(
    query: CallbackQuery,
    state: FSMContext,
    payout: PayoutDTO,
    takes: tuple[str, ...],
    form_state: State,
    question: Text,
    reply_markup: InlineKeyboardMarkup | None = None,
) -> None:
    """Ask the admin for the step's text, if the request may take the step (``takes``: its
    states); remember which card to re-draw afterwards."""
    if payout.state not in takes:
        raise ConflictError(ErrorCode.PAYOUT_STEP_DONE, id=payout.id, state=payout.state)
    card = query.message if isinstance(query.message, Message) else None
    await state.set_state(form_state)
    await state.set_data(
        {
            "payout_id": payout.id,
            "card_chat_id": card.chat.id if card else None,
            "card_message_id": card.message_id if card else None,
        }
    )
    if card is not None:
        await card.answer(question.format(id=payout.id), reply_markup=reply_markup)


async def _decided(
    tell: Tell,
    session: AsyncSession,
    state: FSMContext,
    message: Message,
    data: dict[str, Any],
    payout: PayoutDTO,
    money: Money,
) -> None:
    """The step is done: re-draw the card the admin pressed and say what was decided
    (after the commit)."""
    await state.clear()
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


async def _tell_requester(
    tell: Tell,
    session: AsyncSession,
    payout: PayoutDTO,
    money: Money,
    code: NoticeCode,
    **details: Any,
) -> None:
    amount = money.format(payout.amount_minor)
    await tell.notice(session, payout.user_id, code, id=payout.id, amount=amount, **details)


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(AdminFilter())
    router.callback_query.filter(AdminFilter())
    review = PayoutReviewCallback.filter
    router.message.register(cmd_payouts, Command("payouts"))
    router.callback_query.register(open_pressed, review(F.action == PayoutReviewAction.OPEN))
    router.callback_query.register(approve_pressed, review(F.action == PayoutReviewAction.APPROVE))
    router.callback_query.register(reject_pressed, review(F.action == PayoutReviewAction.REJECT))
    router.message.register(reason_entered, StateFilter(ReviewForm.reason), PLAIN_TEXT)
    router.callback_query.register(paid_pressed, review(F.action == PayoutReviewAction.PAID))
    router.message.register(reference_entered, StateFilter(ReviewForm.reference), PLAIN_TEXT)
    router.callback_query.register(
        no_reference_pressed, review(F.action == PayoutReviewAction.PAID_NO_REFERENCE)
    )
    return router
