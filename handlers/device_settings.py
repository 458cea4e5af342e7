"""A device's menu and its screens: rename, symbols, size, take profits, breakeven and
trailing, guards, protections, max signal age, pause, rotate key, revoke.

Every press and every typed value goes through DeviceService, which re-checks that the
device exists, is active and belongs to the user; anything else is "not available".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiogram import F, Router, html
from aiogram.filters import StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer
from sqlalchemy.ext.asyncio import AsyncSession

from bot.chat import keyboards, texts
from bot.chat.callbacks import DeviceAction, DeviceCb
from bot.chat.device_screens import SCREENS, Screen, screen
from bot.chat.filters import Is
from bot.chat.i18n import Text
from bot.chat.tell import Tell
from bot.config import DevicesSettings
from bot.domain import trade_settings as trade
from bot.domain.devices import DeviceDTO, DeviceService, DeviceTools
from bot.domain.errors import InvalidInputError, NotFoundError
from bot.domain.trade_settings import TradeView, trade_view
from bot.domain.users import UserDTO
from handlers.devices import list_view, send_secret


class EditDevice(StatesGroup):
    name = State()
    lot_size = State()
    max_age = State()
    pairs = State()
    prefix = State()
    suffix = State()
    risk_balance = State()
    risk_equity = State()
    risk_money = State()
    max_lots = State()
    tp_shares = State()
    breakeven = State()
    trailing = State()
    max_spread = State()
    max_distance = State()
    max_positions = State()
    loss_limit = State()
    symbols_allowed = State()
    symbols_denied = State()
    hours = State()


Setter = Callable[[DeviceService, int, int, str], Awaitable[DeviceDTO]]
Details = Callable[[DeviceDTO, DevicesSettings, TradeView], dict[str, str]]


def _no_details(_device: DeviceDTO, _settings: DevicesSettings, _view: TradeView) -> dict[str, str]:
    return {}


def _lot_details(device: DeviceDTO, settings: DevicesSettings, _view: TradeView) -> dict[str, str]:
    return {
        "min": texts.format_lot(settings.min_lot_size),
        "max": texts.format_lot(settings.max_lot_size),
        "current": texts.format_lot(device.lot_size),
    }


def _max_lots_details(
    device: DeviceDTO, settings: DevicesSettings, view: TradeView
) -> dict[str, str]:
    current = view.settings.max_lots
    return {
        **_lot_details(device, settings, view),
        "current": str(texts.NONE_SET) if current is None else texts.format_lot(current),
    }


def _currency_details(
    _device: DeviceDTO, _settings: DevicesSettings, view: TradeView
) -> dict[str, str]:
    return {"currency": texts.currency_hint(view)}


def _shares_details(
    _device: DeviceDTO, _settings: DevicesSettings, _view: TradeView
) -> dict[str, str]:
    return {"max": str(trade.MAX_TP_SHARES)}


def _age_details(device: DeviceDTO, settings: DevicesSettings, _view: TradeView) -> dict[str, str]:
    return {
        "min": str(settings.min_max_signal_age),
        "max": str(settings.max_max_signal_age),
        "current": f"{device.max_signal_age} s",
    }


@dataclass(frozen=True, slots=True)
class Field:
    """One value typed in the chat: its step, question, setter and the view shown after."""

    state: State
    question: Text
    setter: Setter
    details: Details = _no_details
    screen: DeviceAction = DeviceAction.MENU  # shown once the value is saved

    async def ask(self, device: DeviceDTO, service: DeviceService) -> str:
        view = await trade_view(service.session, device)
        details = self.details(device, service.settings, view)
        return self.question.format(name=html.quote(device.name), **details)


def _field(
    state: State,
    question: Text,
    setter: Setter,
    screen: DeviceAction,
    details: Details = _no_details,
) -> Field:
    return Field(state, question, setter, details, screen)


FIELDS: dict[DeviceAction, Field] = {
    DeviceAction.RENAME: Field(EditDevice.name, texts.ASK_RENAME, DeviceService.rename),
    DeviceAction.LOT_SIZE: Field(
        EditDevice.lot_size,
        texts.ASK_LOT_SIZE,
        DeviceService.set_lot_size,
        _lot_details,
        DeviceAction.SIZE,
    ),
    DeviceAction.MAX_AGE: Field(
        EditDevice.max_age, texts.ASK_MAX_AGE, DeviceService.set_max_signal_age, _age_details
    ),
    DeviceAction.PAIRS: Field(
        EditDevice.pairs,
        texts.ASK_SYMBOL_PAIRS,
        DeviceService.set_symbol_pairs,
        screen=DeviceAction.SYMBOLS,
    ),
    DeviceAction.PREFIX: Field(
        EditDevice.prefix,
        texts.ASK_SYMBOL_PREFIX,
        DeviceService.set_symbol_prefix,
        screen=DeviceAction.SYMBOLS,
    ),
    DeviceAction.SUFFIX: Field(
        EditDevice.suffix,
        texts.ASK_SYMBOL_SUFFIX,
        DeviceService.set_symbol_suffix,
        screen=DeviceAction.SYMBOLS,
    ),
    # trade management (protocol v1.1)
    DeviceAction.RISK_BALANCE: _field(
        EditDevice.risk_balance,
        texts.ASK_RISK_BALANCE,
        trade.set_risk_percent_of_balance,
        DeviceAction.SIZE,
    ),
    DeviceAction.RISK_EQUITY: _field(
        EditDevice.risk_equity,
        texts.ASK_RISK_EQUITY,
        trade.set_risk_percent_of_equity,
        DeviceAction.SIZE,
    ),
    DeviceAction.RISK_MONEY: _field(
        EditDevice.risk_money,
        texts.ASK_RISK_MONEY,
        trade.set_risk_money,
        DeviceAction.SIZE,
        _currency_details,
    ),
    DeviceAction.MAX_LOTS: _field(
        EditDevice.max_lots,
        texts.ASK_MAX_LOTS,
        trade.set_max_lots,
        DeviceAction.SIZE,
        _max_lots_details,
    ),
    DeviceAction.TP_SHARES: _field(
        EditDevice.tp_shares,
        texts.ASK_TP_SHARES,
        trade.set_tp_shares,
        DeviceAction.TAKE_PROFITS,
        _shares_details,
    ),
    DeviceAction.BREAKEVEN: _field(
        EditDevice.breakeven, texts.ASK_BREAKEVEN, trade.set_breakeven, DeviceAction.STOPS
    ),
    DeviceAction.TRAILING: _field(
        EditDevice.trailing, texts.ASK_TRAILING, trade.set_trailing, DeviceAction.STOPS
    ),
    DeviceAction.MAX_SPREAD: _field(
        EditDevice.max_spread, texts.ASK_MAX_SPREAD, trade.set_max_spread, DeviceAction.GUARDS
    ),
    DeviceAction.MAX_DISTANCE: _field(
        EditDevice.max_distance,
        texts.ASK_MAX_DISTANCE,
        trade.set_max_distance,
        DeviceAction.GUARDS,
    ),
    DeviceAction.MAX_POSITIONS: _field(
        EditDevice.max_positions,
        texts.ASK_MAX_POSITIONS,
        trade.set_max_open_positions,
        DeviceAction.PROTECTIONS,
    ),
    DeviceAction.LOSS_LIMIT: _field(
        EditDevice.loss_limit,
        texts.ASK_LOSS_LIMIT,
        trade.set_daily_loss_limit,
        DeviceAction.PROTECTIONS,
        _currency_details,
    ),
    DeviceAction.SYMBOLS_ALLOWED: _field(
        EditDevice.symbols_allowed,
        texts.ASK_SYMBOLS_ALLOWED,
        trade.set_symbols_allowed,
        DeviceAction.PROTECTIONS,
    ),
    DeviceAction.SYMBOLS_DENIED: _field(
        EditDevice.symbols_denied,
        texts.ASK_SYMBOLS_DENIED,
        trade.set_symbols_denied,
        DeviceAction.PROTECTIONS,
    ),
    DeviceAction.HOURS: _field(
        EditDevice.hours, texts.ASK_HOURS, trade.set_trading_hours, DeviceAction.PROTECTIONS
    ),
}
FIELDS_BY_STATE = {field.state.state: field for field in FIELDS.values()}


async def menu(device: DeviceDTO, service: DeviceService) -> Screen:
    return await screen(DeviceAction.MENU, device, service)


async def show_screen(
    query: CallbackQuery,
    callback_data: DeviceCb,
    session: AsyncSession,
    device_tools: DeviceTools,
    user: UserDTO,
    tell: Tell,
) -> None:
    service = DeviceService(session, device_tools)
    device = await service.get(user.id, callback_data.device)
    await tell.show(session, query, *await screen(callback_data.action, device, service))


async def ask_value(
    query: CallbackQuery,
    callback_data: DeviceCb,
    state: FSMContext,
    session: AsyncSession,
    device_tools: DeviceTools,
    user: UserDTO,
    tell: Tell,
) -> None:
    service = DeviceService(session, device_tools)
    device = await service.get(user.id, callback_data.device)
    field = FIELDS[callback_data.action]
    await state.set_state(field.state)
    await state.set_data({"device": device.pk})
    await tell.reply(session, query, await field.ask(device, service))


async def got_value(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    device_tools: DeviceTools,
    user: UserDTO,
    tell: Tell,
) -> None:
    field = FIELDS_BY_STATE[str(await state.get_state())]
    device_pk = int((await state.get_data())["device"])
    service = DeviceService(session, device_tools)
    try:
        device = await field.setter(service, user.id, device_pk, message.text or "")
    except InvalidInputError as exc:
        device = await service.get(user.id, device_pk)
        question = await field.ask(device, service)
        await tell.reply(session, message, f"{texts.error_text(exc)}\n\n{question}")
        return
    except NotFoundError:
        await state.clear()
        raise
    await state.clear()
    text, markup = await screen(field.screen, device, service)
    await tell.reply(session, message, f"{texts.DEVICE_UPDATED}\n\n{text}", markup)


async def value_not_text(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    device_tools: DeviceTools,
    user: UserDTO,
) -> None:
    field = FIELDS_BY_STATE[str(await state.get_state())]
    service = DeviceService(session, device_tools)
    try:
        device = await service.get(user.id, int((await state.get_data())["device"]))
    except NotFoundError:
        await state.clear()
        raise
    await message.answer(f"{texts.HINT_SEND_TEXT}\n\n{await field.ask(device, service)}")


async def pause_or_resume(
    query: CallbackQuery,
    callback_data: DeviceCb,
    callback_answer: CallbackAnswer,
    session: AsyncSession,
    device_tools: DeviceTools,
    user: UserDTO,
    tell: Tell,
) -> None:
    paused = callback_data.action is DeviceAction.PAUSE
    service = DeviceService(session, device_tools)
    device = await service.set_paused(user.id, callback_data.device, paused)
    callback_answer.text = (
        str(texts.DEVICE_PAUSED_TOAST) if paused else str(texts.DEVICE_RESUMED_TOAST)
    )
    await tell.show(session, query, *await menu(device, service))


async def confirm(
    query: CallbackQuery,
    callback_data: DeviceCb,
    session: AsyncSession,
    device_tools: DeviceTools,
    user: UserDTO,
    tell: Tell,
) -> None:
    device = await DeviceService(session, device_tools).get(user.id, callback_data.device)
    if callback_data.action is DeviceAction.ROTATE:
        question, action = texts.CONFIRM_ROTATE, DeviceAction.ROTATE_CONFIRM
    else:
        question, action = texts.CONFIRM_REVOKE, DeviceAction.REVOKE_CONFIRM
    await tell.show(
        session,
        query,
        question.format(name=html.quote(device.name)),
        keyboards.device_confirm(device, action),
    )


async def rotate_key(
    query: CallbackQuery,
    callback_data: DeviceCb,
    callback_answer: CallbackAnswer,
    session: AsyncSession,
    device_tools: DeviceTools,
    user: UserDTO,
    tell: Tell,
) -> None:
    service = DeviceService(session, device_tools)
    device, credentials = await service.rotate_key(
        user.id, callback_data.device, seen_version=callback_data.version
    )
    callback_answer.text = str(texts.KEY_ROTATED_TOAST)
    await tell.show(session, query, *await menu(device, service))
    send_secret(tell, session, query, texts.key_rotated(device, credentials))


async def revoke(
    query: CallbackQuery,
    callback_data: DeviceCb,
    session: AsyncSession,
    device_tools: DeviceTools,
    user: UserDTO,
    tell: Tell,
) -> None:
    service = DeviceService(session, device_tools)
    device = await service.revoke(user.id, callback_data.device)
    text, markup = await list_view(service, user)
    revoked = texts.DEVICE_REVOKED.format(name=html.quote(device.name))
    await tell.show(session, query, f"{revoked}\n\n{text}", markup)


def create_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(show_screen, DeviceCb.filter(F.action.in_(SCREENS)))
    router.callback_query.register(ask_value, DeviceCb.filter(F.action.in_(FIELDS)))
    router.message.register(got_value, StateFilter(EditDevice), Is(F.text))
    router.message.register(value_not_text, StateFilter(EditDevice))
    router.callback_query.register(
        pause_or_resume, DeviceCb.filter(F.action.in_({DeviceAction.PAUSE, DeviceAction.RESUME}))
    )
    router.callback_query.register(
        confirm, DeviceCb.filter(F.action.in_({DeviceAction.ROTATE, DeviceAction.REVOKE}))
    )
    router.callback_query.register(
        rotate_key, DeviceCb.filter(F.action == DeviceAction.ROTATE_CONFIRM)
    )
    router.callback_query.register(revoke, DeviceCb.filter(F.action == DeviceAction.REVOKE_CONFIRM))
    return router
