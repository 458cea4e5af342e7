"""A device's screens in /devices as (text, keyboard): its card and each settings group."""

from __future__ import annotations

from aiogram.types import InlineKeyboardMarkup

from bot.chat import keyboards, texts
from bot.chat.callbacks import DeviceAction
from bot.domain.devices import DeviceDTO, DeviceService
from bot.domain.trade_settings import TradeView, trade_view

Screen = tuple[str, InlineKeyboardMarkup]

# The actions that show a screen (rather than change something or ask for a value).
SCREENS = frozenset(
    {
        DeviceAction.MENU,
        DeviceAction.SYMBOLS,
        DeviceAction.SIZE,
        DeviceAction.TAKE_PROFITS,
        DeviceAction.STOPS,
        DeviceAction.GUARDS,
        DeviceAction.PROTECTIONS,
    }
)


def card(device: DeviceDTO, view: TradeView, service: DeviceService) -> Screen:
    now = service.now()
    text = texts.device_card(device, now, service.settings.online_window)
    return f"{text}\n\n{texts.trade_lines(view, now)}", keyboards.device_menu(device)


async def screen(action: DeviceAction, device: DeviceDTO, service: DeviceService) -> Screen:
    """The screen ``action`` names (one of SCREENS; anything else is the card)."""
    if action is DeviceAction.SYMBOLS:
        return texts.symbols_card(device), keyboards.device_symbols(device)
    view = await trade_view(service.session, device)
    settings = view.settings
    if action is DeviceAction.SIZE:
        return texts.size_screen(device, view), keyboards.device_size(device, settings)
    if action is DeviceAction.TAKE_PROFITS:
        return (
            texts.take_profits_screen(device, view),
            keyboards.device_take_profits(device, settings),
        )
    if action is DeviceAction.STOPS:
        start = texts.trailing_start_text(settings)
        return texts.stops_screen(device, view), keyboards.device_stops(device, start)
    if action is DeviceAction.GUARDS:
        return texts.guards_screen(device, view), keyboards.device_guards(device)
    if action is DeviceAction.PROTECTIONS:
        return texts.protections_screen(device, view), keyboards.device_protections(device)
    return card(device, view, service)
