"""A device's trade-management presses: modes chosen with a button, and Close all.

Every press goes through DeviceService (or issue_close_all), which re-checks that the
device exists, is active and belongs to the presser; anything else is "not available".
"""

from __future__ import annotations

from aiogram import F, Router, html
from aiogram.types import CallbackQuery
from aiogram.utils.callback_answer import CallbackAnswer
from sqlalchemy.ext.asyncio import AsyncSession

from bot.chat import keyboards, texts
from bot.chat.callbacks import DeviceAction, DeviceCb
from bot.chat.device_screens import screen
from bot.chat.tell import Tell
from bot.domain import trade_settings as trade
from bot.domain.devices import DeviceService, DeviceTools, issue_close_all
from bot.domain.trade_settings import Press, trade_view
from bot.domain.users import UserDTO

# A mode button: what it changes, and the screen shown after it.
MODES: dict[DeviceAction, tuple[Press, DeviceAction]] = {
    DeviceAction.SIZE_FIXED: (trade.set_fixed_sizing, DeviceAction.SIZE),
    DeviceAction.TP_FIRST: (trade.set_tp_first, DeviceAction.TAKE_PROFITS),
    DeviceAction.TP_EQUAL: (trade.set_tp_equal, DeviceAction.TAKE_PROFITS),
    DeviceAction.TRAILING_START: (trade.toggle_trailing_start, DeviceAction.STOPS),
}


async def choose_mode(
    query: CallbackQuery,
    callback_data: DeviceCb,
    callback_answer: CallbackAnswer,
    session: AsyncSession,
    device_tools: DeviceTools,
    user: UserDTO,
    tell: Tell,
) -> None:
    press, shown = MODES[callback_data.action]
    service = DeviceService(session, device_tools)
    device = await press(service, user.id, callback_data.device)
    callback_answer.text = str(texts.DEVICE_UPDATED)
    await tell.show(session, query, *await screen(shown, device, service))


async def ask_close_all(
    query: CallbackQuery,
    callback_data: DeviceCb,
    session: AsyncSession,
    device_tools: DeviceTools,
    user: UserDTO,
    tell: Tell,
) -> None:
    device = await DeviceService(session, device_tools).get(user.id, callback_data.device)
    view = await trade_view(session, device)
    if not view.is_v11:
        text = texts.CLOSE_ALL_NEEDS_UPDATE.format(name=html.quote(device.name))
        await tell.show(session, query, text, keyboards.device_back(device))
        return
    await tell.show(
        session, query, texts.confirm_close_all(device, view), keyboards.device_close_all(device)
    )


async def close_all(
    query: CallbackQuery,
    callback_data: DeviceCb,
    callback_answer: CallbackAnswer,
    session: AsyncSession,
    device_tools: DeviceTools,
    user: UserDTO,
    tell: Tell,
) -> None:
    service = DeviceService(session, device_tools)
    await issue_close_all(
        session,
        owner_id=user.id,
        device_pk=callback_data.device,
        now=service.now(),
        wake=device_tools.device_hub.notify,
    )
    device = await service.get(user.id, callback_data.device)
    callback_answer.text = str(texts.CLOSE_ALL_SENT_TOAST)
    text, markup = await screen(DeviceAction.MENU, device, service)
    sent = texts.CLOSE_ALL_SENT.format(name=html.quote(device.name))
    await tell.show(session, query, f"{sent}\n\n{text}", markup)


def create_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(choose_mode, DeviceCb.filter(F.action.in_(MODES)))
    router.callback_query.register(
        ask_close_all, DeviceCb.filter(F.action == DeviceAction.CLOSE_ALL)
    )
    router.callback_query.register(
        close_all, DeviceCb.filter(F.action == DeviceAction.CLOSE_ALL_CONFIRM)
    )
    return router
