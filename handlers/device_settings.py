"""A device's menu: rename, lot size, symbols, max signal age, pause, rotate key, revoke.

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
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer
from sqlalchemy.ext.asyncio import AsyncSession

from bot.chat import keyboards, texts
from bot.chat.callbacks import DeviceAction, DeviceCb
from bot.chat.filters import Is
from bot.chat.i18n import Text
from bot.chat.tell import Tell
from bot.config import DevicesSettings
from bot.container import Container
from bot.domain.devices import DeviceDTO, DeviceService
from bot.domain.errors import InvalidInputError, NotFoundError
from bot.domain.users import UserDTO
from handlers.devices import list_view, send_secret


class EditDevice(StatesGroup):
    name = State()
    lot_size = State()
    max_age = State()
    pairs = State()
    prefix = State()
    suffix = State()


Setter = Callable[[DeviceService, int, int, str], Awaitable[DeviceDTO]]
Details = Callable[[DeviceDTO, DevicesSettings], dict[str, str]]


def _no_details(_device: DeviceDTO, _settings: DevicesSettings) -> dict[str, str]:
    return {}


def _lot_details(device: DeviceDTO, settings: DevicesSettings) -> dict[str, str]:
    return {
        "min": texts.format_lot(settings.min_lot_size),
        "max": texts.format_lot(settings.max_lot_size),
        "current": texts.format_lot(device.lot_size),
    }


def _age_details(device: DeviceDTO, settings: DevicesSettings) -> dict[str, str]:
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
    in_symbols: bool = False

    def ask(self, device: DeviceDTO, settings: DevicesSettings) -> str:
        return self.question.format(name=html.quote(device.name), **self.details(device, settings))


FIELDS: dict[DeviceAction, Field] = {
    DeviceAction.RENAME: Field(EditDevice.name, texts.ASK_RENAME, DeviceService.rename),
    DeviceAction.LOT_SIZE: Field(
        EditDevice.lot_size, texts.ASK_LOT_SIZE, DeviceService.set_lot_size, _lot_details
    ),
    DeviceAction.MAX_AGE: Field(
        EditDevice.max_age, texts.ASK_MAX_AGE, DeviceService.set_max_signal_age, _age_details
    ),
    DeviceAction.PAIRS: Field(
        EditDevice.pairs,
        texts.ASK_SYMBOL_PAIRS,
        DeviceService.set_symbol_pairs,
        in_symbols=True,
    ),
    DeviceAction.PREFIX: Field(
        EditDevice.prefix,
        texts.ASK_SYMBOL_PREFIX,
        DeviceService.set_symbol_prefix,
        in_symbols=True,
    ),
    DeviceAction.SUFFIX: Field(
        EditDevice.suffix,
        texts.ASK_SYMBOL_SUFFIX,
        DeviceService.set_symbol_suffix,
        in_symbols=True,
    ),
}
FIELDS_BY_STATE = {field.state.state: field for field in FIELDS.values()}


def card(device: DeviceDTO, service: DeviceService) -> tuple[str, InlineKeyboardMarkup]:
    text = texts.device_card(device, service.now(), service.settings.online_window)
    return text, keyboards.device_menu(device)


def symbols(device: DeviceDTO) -> tuple[str, InlineKeyboardMarkup]:
    return texts.symbols_card(device), keyboards.device_symbols(device)


async def show_menu(
    query: CallbackQuery,
    callback_data: DeviceCb,
    session: AsyncSession,
    container: Container,
    user: UserDTO,
    tell: Tell,
) -> None:
    service = DeviceService(session, container)
    device = await service.get(user.id, callback_data.device)
    await tell.show(session, query, *card(device, service))


async def show_symbols(
    query: CallbackQuery,
    callback_data: DeviceCb,
    session: AsyncSession,
    container: Container,
    user: UserDTO,
    tell: Tell,
) -> None:
    device = await DeviceService(session, container).get(user.id, callback_data.device)
    await tell.show(session, query, *symbols(device))


async def ask_value(
    query: CallbackQuery,
    callback_data: DeviceCb,
    state: FSMContext,
    session: AsyncSession,
    container: Container,
    user: UserDTO,
    tell: Tell,
) -> None:
    service = DeviceService(session, container)
    device = await service.get(user.id, callback_data.device)
    field = FIELDS[callback_data.action]
    await state.set_state(field.state)
    await state.set_data({"device": device.pk})
    await tell.reply(session, query, field.ask(device, service.settings))


async def got_value(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    container: Container,
    user: UserDTO,
    tell: Tell,
) -> None:
    field = FIELDS_BY_STATE[str(await state.get_state())]
    device_pk = int((await state.get_data())["device"])
    service = DeviceService(session, container)
    try:
        device = await field.setter(service, user.id, device_pk, message.text or "")
    except InvalidInputError as exc:
        device = await service.get(user.id, device_pk)
        await tell.reply(
            session, message, f"{texts.error_text(exc)}\n\n{field.ask(device, service.settings)}"
        )
        return
    except NotFoundError:
        await state.clear()
        raise
    await state.clear()
    text, markup = symbols(device) if field.in_symbols else card(device, service)
    await tell.reply(session, message, f"{texts.DEVICE_UPDATED}\n\n{text}", markup)


async def value_not_text(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    container: Container,
    user: UserDTO,
) -> None:
    field = FIELDS_BY_STATE[str(await state.get_state())]
    service = DeviceService(session, container)
    try:
        device = await service.get(user.id, int((await state.get_data())["device"]))
    except NotFoundError:
        await state.clear()
        raise
    await message.answer(f"{texts.HINT_SEND_TEXT}\n\n{field.ask(device, service.settings)}")


async def pause_or_resume(
    query: CallbackQuery,
    callback_data: DeviceCb,
    callback_answer: CallbackAnswer,
    session: AsyncSession,
    container: Container,
    user: UserDTO,
    tell: Tell,
) -> None:
    paused = callback_data.action is DeviceAction.PAUSE
    service = DeviceService(session, container)
    device = await service.set_paused(user.id, callback_data.device, paused)
    callback_answer.text = (
        str(texts.DEVICE_PAUSED_TOAST) if paused else str(texts.DEVICE_RESUMED_TOAST)
    )
    await tell.show(session, query, *card(device, service))


async def confirm(
    query: CallbackQuery,
    callback_data: DeviceCb,
    session: AsyncSession,
    container: Container,
    user: UserDTO,
    tell: Tell,
) -> None:
    device = await DeviceService(session, container).get(user.id, callback_data.device)
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
    container: Container,
    user: UserDTO,
    tell: Tell,
) -> None:
    service = DeviceService(session, container)
    device, credentials = await service.rotate_key(
        user.id, callback_data.device, seen_version=callback_data.version
    )
    callback_answer.text = str(texts.KEY_ROTATED_TOAST)
    await tell.show(session, query, *card(device, service))
    send_secret(tell, session, query, texts.key_rotated(device, credentials))


async def revoke(
    query: CallbackQuery,
    callback_data: DeviceCb,
    session: AsyncSession,
    container: Container,
    user: UserDTO,
    tell: Tell,
) -> None:
    service = DeviceService(session, container)
    device = await service.revoke(user.id, callback_data.device)
    text, markup = await list_view(service, user)
    revoked = texts.DEVICE_REVOKED.format(name=html.quote(device.name))
    await tell.show(session, query, f"{revoked}\n\n{text}", markup)


def create_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(show_menu, DeviceCb.filter(F.action == DeviceAction.MENU))
    router.callback_query.register(show_symbols, DeviceCb.filter(F.action == DeviceAction.SYMBOLS))
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
