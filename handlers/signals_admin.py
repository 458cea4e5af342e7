"""Admins: /signal (preview, then Send or Discard) and /signals (modify, close, cancel)."""

from __future__ import annotations

import secrets
from datetime import timedelta
from decimal import Decimal
from typing import Any

from aiogram import Router
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer
from sqlalchemy.ext.asyncio import AsyncSession

from bot.chat import keyboards, texts
from bot.chat.callbacks import DraftAction, ManageAction, SignalDraftCb, SignalManageCb
from bot.chat.filters import PLAIN_TEXT, AdminFilter
from bot.chat.tell import Tell
from bot.config import Settings
from bot.domain.errors import AppError, ErrorCode
from bot.domain.signal_dto import SignalDTO
from bot.domain.signal_rules import SignalDraft, SignalValidationError, validate_new_signal
from bot.domain.signal_syntax import (
    CHAT_NAMES,
    EXAMPLE,
    LEVELS_EXAMPLE,
    SignalSyntaxError,
    parse_levels,
    parse_signal_command,
)
from bot.domain.signals import SignalService
from bot.domain.users import UserDTO
from bot.infra.clock import Clock

LIST_LIMIT = 30
# Previews kept per admin; older ones answer "gone".
MAX_DRAFTS = 5
DRAFTS_KEY = "signal_drafts"
MODIFY_KEY = "modify_signal_id"


class SignalEdit(StatesGroup):
    levels = State()


def _preview(draft: SignalDraft, clock: Clock) -> SignalDTO:
    now = clock()
    return SignalDTO(
        id=0,
        public_id="",
        symbol=draft.symbol,
        side=draft.side,
        order_type=draft.order_type,
        entry=draft.entry,
        stop_loss=draft.stop_loss,
        take_profit=draft.take_profit,
        comment=draft.comment,
        issued_at=now,
        expires_at=now + timedelta(seconds=draft.expires_in),
        state="open",
        closed_fraction=Decimal(0),
        client_id=None,
        source="admin",
        created_by_id=None,
        modified_at=None,
        ended_at=None,
    )


async def cmd_signal(
    message: Message,
    command: CommandObject,
    state: FSMContext,
    signals: SignalService,
    settings: Settings,
    session: AsyncSession,
    clock: Clock,
) -> None:
    try:
        data = parse_signal_command(command.args)
        draft = validate_new_signal(data, settings.signals)
    except SignalSyntaxError as exc:
        await message.answer(texts.input_problem(exc, texts.signal_help(EXAMPLE)))
        return
    except SignalValidationError as exc:
        await message.answer(
            texts.input_invalid(exc.fields, CHAT_NAMES, texts.signal_help(EXAMPLE))
        )
        return
    token = secrets.token_urlsafe(9)
    drafts: dict[str, Any] = dict((await state.get_data()).get(DRAFTS_KEY, {}))
    drafts[token] = data
    await state.update_data({DRAFTS_KEY: dict(list(drafts.items())[-MAX_DRAFTS:])})
    recipients = len(await signals.recipients(session))
    await message.answer(
        texts.signal_preview(_preview(draft, clock), recipients),
        reply_markup=keyboards.draft_keyboard(token),
    )


async def on_draft(
    query: CallbackQuery,
    callback_data: SignalDraftCb,
    state: FSMContext,
    signals: SignalService,
    settings: Settings,
    session: AsyncSession,
    user: UserDTO,
    tell: Tell,
    callback_answer: CallbackAnswer,
) -> None:
    drafts: dict[str, Any] = dict((await state.get_data()).get(DRAFTS_KEY, {}))
    data = drafts.pop(callback_data.token, None)
    if data is None or not isinstance(query.message, Message):
        callback_answer.text = str(texts.DRAFT_GONE)
        return
    await state.update_data({DRAFTS_KEY: drafts})
    if callback_data.action == DraftAction.DISCARD:
        await query.message.edit_text(str(texts.DRAFT_DISCARDED))
        return
    # The preview's token is the client_id, so a repeated Send cannot post it twice.
    draft = validate_new_signal(
        {**data, "client_id": f"adm_{callback_data.token}"}, settings.signals
    )
    outcome = await signals.create(session, draft, source="admin", created_by_id=user.id)
    await tell.edit(session, query.message, texts.signal_sent(outcome.signal, outcome.recipients))


async def cmd_signals(message: Message, signals: SignalService, session: AsyncSession) -> None:
    text, markup = await _open_list(signals, session)
    await message.answer(text, reply_markup=markup)


async def _open_list(
    signals: SignalService, session: AsyncSession
) -> tuple[str, InlineKeyboardMarkup | None]:
    open_signals, total = await signals.list_open(session, LIST_LIMIT)
    if not open_signals:
        return str(texts.NO_OPEN_SIGNALS), None
    header = texts.OPEN_SIGNALS_HEADER.format(count=total)
    return header, keyboards.open_signals_keyboard(open_signals)


async def _show(
    query: CallbackQuery, signals: SignalService, session: AsyncSession, tell: Tell, signal_id: int
) -> None:
    signal = await signals.get_by_id(session, signal_id)
    counts = await signals.counts(session, signal.id)
    if isinstance(query.message, Message):
        await tell.edit(
            session,
            query.message,
            texts.signal_admin_view(signal, counts),
            keyboards.manage_signal_keyboard(signal),
        )


async def on_manage(
    query: CallbackQuery,
    callback_data: SignalManageCb,
    state: FSMContext,
    signals: SignalService,
    session: AsyncSession,
    tell: Tell,
    callback_answer: CallbackAnswer,
) -> None:
    action, signal_id = callback_data.action, callback_data.signal
    if action == ManageAction.LIST:
        text, markup = await _open_list(signals, session)
        if isinstance(query.message, Message):
            await query.message.edit_text(text, reply_markup=markup)
        return
    if action == ManageAction.MODIFY:
        signal = await signals.get_by_id(session, signal_id)
        if not signal.is_open:
            callback_answer.text = texts.error_text(
                AppError(ErrorCode.SIGNAL_NOT_OPEN, state=signal.state)
            )
            return
        await state.set_state(SignalEdit.levels)
        await state.update_data({MODIFY_KEY: signal_id})
        if isinstance(query.message, Message):
            await query.message.answer(
                texts.MODIFY_PROMPT.format(
                    title=texts.signal_title(signal), help=texts.levels_help(LEVELS_EXAMPLE)
                )
            )
        return
    if action == ManageAction.CLOSE:
        percent = callback_data.percent
        if percent not in keyboards.CLOSE_PERCENTS:
            callback_answer.text = str(texts.NOT_AVAILABLE)
            return
        signal, fraction = await signals.close(
            session, {"fraction": Decimal(percent) / 100}, signal_id=signal_id
        )
        callback_answer.text = texts.signal_closed_part(fraction, signal)
    elif action == ManageAction.CANCEL:
        await signals.cancel(session, signal_id=signal_id)
        callback_answer.text = str(texts.SIGNAL_CANCELLED_OK)
    await _show(query, signals, session, tell, signal_id)


async def on_levels(
    message: Message, state: FSMContext, signals: SignalService, session: AsyncSession, tell: Tell
) -> None:
    signal_id = (await state.get_data()).get(MODIFY_KEY)
    if not isinstance(signal_id, int):
        await state.set_state(None)
        await message.answer(str(texts.NOT_AVAILABLE))
        return
    try:
        data = parse_levels(message.text)
    except SignalSyntaxError as exc:
        await message.answer(texts.input_problem(exc, texts.levels_help(LEVELS_EXAMPLE)))
        return
    try:
        signal = await signals.modify(session, data, signal_id=signal_id)
    except SignalValidationError as exc:
        # The signal's row is locked (nothing written): the answer waits for the commit.
        await tell.reply(
            session,
            message,
            texts.input_invalid(exc.fields, CHAT_NAMES, texts.levels_help(LEVELS_EXAMPLE)),
        )
        return
    except AppError:
        # Gone or closed meanwhile: leave the input mode; the errors handler says why.
        await state.set_state(None)
        raise
    await state.set_state(None)
    await state.update_data({MODIFY_KEY: None})
    await tell.reply(session, message, f"{texts.SIGNAL_MODIFIED_OK}\n\n{texts.signal_card(signal)}")


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(AdminFilter())
    router.callback_query.filter(AdminFilter())
    router.message.register(cmd_signal, Command("signal"))
    router.callback_query.register(on_draft, SignalDraftCb.filter())
    router.message.register(cmd_signals, Command("signals"))
    router.callback_query.register(on_manage, SignalManageCb.filter())
    router.message.register(on_levels, StateFilter(SignalEdit.levels), PLAIN_TEXT)
    return router
