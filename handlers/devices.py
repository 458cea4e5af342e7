"""/devices: the list of the user's devices and adding one (name, platform, credentials)."""

from __future__ import annotations

from aiogram import F, Router, html
from aiogram.enums import ChatType
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.chat import keyboards, texts
from bot.chat.callbacks import DevicePlatformCb, DevicesAction, DevicesCb
from bot.chat.filters import Is
from bot.chat.tell import Tell
from bot.config import Settings
from bot.domain.devices import DeviceService, DeviceTools, Platform
from bot.domain.errors import ConflictError, ErrorCode, InvalidInputError, NotFoundError
from bot.domain.users import UserDTO


class AddDevice(StatesGroup):
    name = State()
    platform = State()


async def list_view(service: DeviceService, user: UserDTO) -> tuple[str, InlineKeyboardMarkup]:
    devices = await service.list_owned(user.id)
    text = texts.device_list(
        devices,
        service.now(),
        limit=service.limit,
        online_window=service.settings.online_window,
    )
    return text, keyboards.devices_list(devices)


async def cmd_devices(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    device_tools: DeviceTools,
    user: UserDTO,
) -> None:
    if message.chat.type != ChatType.PRIVATE:  # credentials must never land in a group
        await message.answer(str(texts.DEVICES_PRIVATE_ONLY))
        return
    current = await state.get_state()
    if current is not None and current.startswith(("AddDevice:", "EditDevice:")):
        await state.clear()  # /devices starts over
    text, markup = await list_view(DeviceService(session, device_tools), user)
    await message.answer(text, reply_markup=markup)


async def show_list(
    query: CallbackQuery,
    session: AsyncSession,
    device_tools: DeviceTools,
    user: UserDTO,
    tell: Tell,
) -> None:
    text, markup = await list_view(DeviceService(session, device_tools), user)
    await tell.show(session, query, text, markup)


async def start_adding(
    query: CallbackQuery,
    state: FSMContext,
    session: AsyncSession,
    device_tools: DeviceTools,
    user: UserDTO,
    tell: Tell,
) -> None:
    await DeviceService(session, device_tools).ensure_room(user.id)
    await state.set_state(AddDevice.name)
    await tell.reply(session, query, str(texts.ASK_DEVICE_NAME))


async def got_name(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    device_tools: DeviceTools,
    user: UserDTO,
) -> None:
    try:
        name = await DeviceService(session, device_tools).check_name(user.id, message.text or "")
    except InvalidInputError as exc:
        await message.answer(f"{texts.error_text(exc)}\n\n{texts.ASK_DEVICE_NAME}")
        return
    await state.update_data(name=name)
    await state.set_state(AddDevice.platform)
    await message.answer(
        texts.ASK_DEVICE_PLATFORM.format(name=html.quote(name)),
        reply_markup=keyboards.device_platforms(),
    )


async def name_not_text(message: Message) -> None:
    await message.answer(f"{texts.HINT_SEND_TEXT}\n\n{texts.ASK_DEVICE_NAME}")


async def platform_not_pressed(message: Message, state: FSMContext) -> None:
    name = str((await state.get_data()).get("name", ""))
    await message.answer(
        f"{texts.HINT_USE_BUTTONS}\n\n{texts.ASK_DEVICE_PLATFORM.format(name=html.quote(name))}",
        reply_markup=keyboards.device_platforms(),
    )


async def got_platform(
    query: CallbackQuery,
    callback_data: DevicePlatformCb,
    state: FSMContext,
    session: AsyncSession,
    device_tools: DeviceTools,
    settings: Settings,
    user: UserDTO,
    tell: Tell,
) -> None:
    try:
        platform = Platform(callback_data.platform)
    except ValueError:
        raise NotFoundError(ErrorCode.NOT_AVAILABLE) from None
    name = str((await state.get_data()).get("name", ""))
    service = DeviceService(session, device_tools)
    try:
        device, credentials = await service.create(user.id, name, platform)
    except InvalidInputError as exc:  # the name was taken meanwhile: ask again
        await state.set_state(AddDevice.name)
        await tell.reply(session, query, f"{texts.error_text(exc)}\n\n{texts.ASK_DEVICE_NAME}")
        return
    except ConflictError:  # the limit was reached meanwhile: the errors handler says so
        await state.clear()
        raise
    await state.clear()
    await tell.show(
        session,
        query,
        texts.DEVICE_ADDED_PLATFORM.format(name=html.quote(device.name), platform=platform.label),
    )
    send_secret(
        tell,
        session,
        query,
        texts.credentials(device, credentials, settings.server.public_url),
        keyboards.device_created(device),
    )


def send_secret(
    tell: Tell,
    session: AsyncSession,
    query: CallbackQuery,
    text: str,
    markup: InlineKeyboardMarkup | None = None,
) -> None:
    """A message carrying a device's secret, after the commit that made the key. Never an
    outbox row: the secret must not be written to the database (it is derived from
    MASTER_KEY). If it is lost (Telegram down), Rotate key makes a new one."""
    bot = query.bot
    if bot is not None:
        chat_id = query.from_user.id
        tell.later(
            session,
            lambda: bot.send_message(chat_id, text, reply_markup=markup),
            "credentials message",
        )


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.register(cmd_devices, Command("devices"))
    router.callback_query.register(show_list, DevicesCb.filter(F.action == DevicesAction.LIST))
    router.callback_query.register(start_adding, DevicesCb.filter(F.action == DevicesAction.ADD))
    router.message.register(got_name, StateFilter(AddDevice.name), Is(F.text))
    router.message.register(name_not_text, StateFilter(AddDevice.name))
    router.message.register(platform_not_pressed, StateFilter(AddDevice.platform))
    router.callback_query.register(
        got_platform, DevicePlatformCb.filter(), StateFilter(AddDevice.platform)
    )
    return router
