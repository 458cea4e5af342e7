"""/payout: method, destination, amount, confirm; /payout history with Prev / Next."""

from __future__ import annotations

import secrets

from aiogram import F, Router, html
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer
from sqlalchemy.ext.asyncio import AsyncSession

from bot.chat import keyboards, texts, views
from bot.chat.callbacks import PayoutAction, PayoutCallback, PayoutHistoryCallback
from bot.chat.filters import PLAIN_TEXT, Is
from bot.chat.tell import Tell
from bot.config import Settings
from bot.domain.money import Money
from bot.domain.notices import NoticeCode
from bot.domain.payout_destinations import METHODS, display_destination, normalize_destination
from bot.domain.payouts import (
    available_balance,
    balance_overview,
    check_amount,
    payout_history,
    request_payout,
)
from bot.domain.users import UserDTO
from bot.infra.clock import Clock


class PayoutForm(StatesGroup):
    destination = State()
    amount = State()
    confirm = State()


async def cmd_payout(
    message: Message,
    command: CommandObject,
    user: UserDTO,
    session: AsyncSession,
    settings: Settings,
    clock: Clock,
    state: FSMContext,
    tell: Tell,
) -> None:
    if (command.args or "").strip().lower() == "history":
        text, markup = await _history(session, settings, user.id, 0)
        await message.answer(text, reply_markup=markup)
        return
    await state.clear()
    config = settings.affiliates
    money = Money.from_settings(config)
    balance = await balance_overview(session, user.id, clock())
    if balance.available_minor < config.payout_minimum_minor:
        pending = ""
        if balance.pending_minor:
            pending = texts.PAYOUT_PENDING_NOTE.format(pending=money.format(balance.pending_minor))
        await tell.reply(
            session,
            message,
            texts.PAYOUT_BELOW_MINIMUM.format(
                balance=money.format(balance.available_minor),
                minimum=money.format(config.payout_minimum_minor),
                missing=money.format(config.payout_minimum_minor - balance.available_minor),
                pending=pending,
            ),
        )
        return
    methods = [(str(code), texts.method_title(code)) for code in config.payout_methods]
    await tell.reply(
        session,
        message,
        texts.PAYOUT_CHOOSE_METHOD.format(balance=money.format(balance.available_minor)),
        keyboards.payout_methods(methods),
    )


async def method_chosen(
    query: CallbackQuery,
    callback_data: PayoutCallback,
    settings: Settings,
    state: FSMContext,
    callback_answer: CallbackAnswer,
) -> None:
    method = callback_data.value
    if method not in settings.affiliates.payout_methods or query.message is None:
        callback_answer.text = str(texts.PAYOUT_METHOD_GONE)
        callback_answer.show_alert = True
        return
    await state.set_state(PayoutForm.destination)
    await state.set_data({"method": method})
    info = METHODS[method]
    await query.message.answer(
        texts.PAYOUT_ASK_DESTINATION.format(
            asks_for=texts.METHOD_ASKS_FOR[method], example=info.example
        )
    )


async def destination_entered(
    message: Message,
    user: UserDTO,
    session: AsyncSession,
    settings: Settings,
    clock: Clock,
    state: FSMContext,
    tell: Tell,
) -> None:
    data = await state.get_data()
    destination = normalize_destination(data["method"], message.text or "")
    config = settings.affiliates
    money = Money.from_settings(config)
    balance = await available_balance(session, user.id, clock())
    check_amount(settings, config.payout_minimum_minor, balance)
    await state.update_data(destination=destination)
    await state.set_state(PayoutForm.amount)
    await tell.reply(
        session,
        message,
        texts.PAYOUT_ASK_AMOUNT.format(
            balance=money.format(balance), minimum=money.format(config.payout_minimum_minor)
        ),
        keyboards.payout_amount(texts.PAYOUT_ALL_BUTTON.format(balance=money.format(balance))),
    )


async def amount_entered(
    message: Message,
    user: UserDTO,
    session: AsyncSession,
    settings: Settings,
    clock: Clock,
    state: FSMContext,
    tell: Tell,
) -> None:
    amount = Money.from_settings(settings.affiliates).parse(message.text or "")
    check_amount(settings, amount, await available_balance(session, user.id, clock()))
    await _ask_confirmation(tell, session, message, state, settings, amount)


async def all_pressed(
    query: CallbackQuery,
    user: UserDTO,
    session: AsyncSession,
    settings: Settings,
    clock: Clock,
    state: FSMContext,
    tell: Tell,
    callback_answer: CallbackAnswer,
) -> None:
    if await state.get_state() != PayoutForm.amount.state or not isinstance(query.message, Message):
        callback_answer.text = str(texts.PAYOUT_FLOW_EXPIRED)
        callback_answer.show_alert = True
        return
    balance = await available_balance(session, user.id, clock())
    check_amount(settings, balance, balance)
    await _ask_confirmation(tell, session, query.message, state, settings, balance)


async def not_text(message: Message) -> None:
    await message.answer(str(texts.PAYOUT_TEXT_EXPECTED))


async def _ask_confirmation(
    tell: Tell,
    session: AsyncSession,
    message: Message,
    state: FSMContext,
    settings: Settings,
    amount: int,
) -> None:
    data = await state.get_data()
    # A fresh key per confirmation screen: pressing Confirm twice files one request.
    key = secrets.token_urlsafe(9)
    await state.update_data(amount=amount, key=key)
    await state.set_state(PayoutForm.confirm)
    money = Money.from_settings(settings.affiliates)
    await tell.reply(
        session,
        message,
        texts.PAYOUT_CONFIRM.format(
            amount=money.format(amount),
            method=texts.method_title(data["method"]),
            destination=html.quote(display_destination(data["method"], data["destination"])),
        ),
        keyboards.payout_confirm(key),
    )


async def confirm_pressed(
    query: CallbackQuery,
    callback_data: PayoutCallback,
    user: UserDTO,
    session: AsyncSession,
    settings: Settings,
    clock: Clock,
    state: FSMContext,
    admin_ids: frozenset[int],
    tell: Tell,
    callback_answer: CallbackAnswer,
) -> None:
    data = await state.get_data()
    if await state.get_state() != PayoutForm.confirm.state or data.get("key") != (
        callback_data.value
    ):
        callback_answer.text = str(texts.PAYOUT_FLOW_EXPIRED)
        callback_answer.show_alert = True
        return
    payout = await request_payout(
        session,
        settings,
        user_id=user.id,
        request_key=data["key"],
        method=data["method"],
        destination=data["destination"],
        amount_minor=data["amount"],
        now=clock(),
    )
    await state.clear()
    money = Money.from_settings(settings.affiliates)
    await tell.show(
        session,
        query,
        texts.PAYOUT_REQUESTED.format(
            id=payout.id,
            amount=money.format(payout.amount_minor),
            method=texts.method_title(payout.method),
        ),
    )
    card = views.payout_card_values(payout, money)
    await tell.notice_many(
        session, [(admin_id, NoticeCode.PAYOUT_CARD, card) for admin_id in sorted(admin_ids)]
    )


async def cancel_pressed(
    query: CallbackQuery, state: FSMContext, session: AsyncSession, tell: Tell
) -> None:
    await state.clear()
    await tell.show(session, query, str(texts.PAYOUT_CANCELLED))


async def history_page(
    query: CallbackQuery,
    callback_data: PayoutHistoryCallback,
    user: UserDTO,
    session: AsyncSession,
    settings: Settings,
    tell: Tell,
) -> None:
    text, markup = await _history(session, settings, user.id, callback_data.page)
    await tell.show(session, query, text, markup)


async def _history(
    session: AsyncSession, settings: Settings, user_id: int, page: int
) -> tuple[str, InlineKeyboardMarkup | None]:
    result = await payout_history(session, user_id, page)
    if not result.items:
        return str(texts.HISTORY_EMPTY), None
    money = Money.from_settings(settings.affiliates)
    lines = [views.history_line(item, money) for item in result.items]
    header = texts.HISTORY_HEADER.format(page=result.page + 1, pages=result.pages)
    return "\n".join([header, *lines]), keyboards.history_pages(result.page, result.pages)


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.register(cmd_payout, Command("payout"))
    router.callback_query.register(
        method_chosen, PayoutCallback.filter(F.action == PayoutAction.METHOD)
    )
    router.message.register(destination_entered, StateFilter(PayoutForm.destination), PLAIN_TEXT)
    router.message.register(amount_entered, StateFilter(PayoutForm.amount), PLAIN_TEXT)
    router.callback_query.register(all_pressed, PayoutCallback.filter(F.action == PayoutAction.ALL))
    router.message.register(not_text, StateFilter(PayoutForm.destination), Is(~F.text))
    router.message.register(not_text, StateFilter(PayoutForm.amount), Is(~F.text))
    router.callback_query.register(
        confirm_pressed, PayoutCallback.filter(F.action == PayoutAction.CONFIRM)
    )
    router.callback_query.register(
        cancel_pressed, PayoutCallback.filter(F.action == PayoutAction.CANCEL)
    )
    router.callback_query.register(history_page, PayoutHistoryCallback.filter())
    return router
