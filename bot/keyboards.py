"""Inline keyboards as pure functions of plain data."""

from __future__ import annotations

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot import texts
from bot.callbacks import (
    DeviceAction,
    DeviceCb,
    DevicePlatformCb,
    DevicesAction,
    DevicesCb,
)
from bot.services.devices import DeviceDTO, Platform


# --- devices ---
def devices_list(devices: list[DeviceDTO]) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for device in devices:
        builder.button(
            text=device.name, callback_data=DeviceCb(action=DeviceAction.MENU, device=device.pk)
        )
    builder.button(text=texts.BUTTON_ADD_DEVICE, callback_data=DevicesCb(action=DevicesAction.ADD))
    builder.adjust(1)
    return builder.as_markup()


def device_platforms() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for platform in Platform:
        builder.button(text=platform.label, callback_data=DevicePlatformCb(platform=platform))
    return builder.as_markup()


def _device_button(
    builder: InlineKeyboardBuilder, text: str, action: DeviceAction, device: DeviceDTO
) -> None:
    builder.button(text=text, callback_data=DeviceCb(action=action, device=device.pk))


def device_menu(device: DeviceDTO) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    _device_button(builder, texts.BUTTON_RENAME, DeviceAction.RENAME, device)
    _device_button(builder, texts.BUTTON_LOT_SIZE, DeviceAction.LOT_SIZE, device)
    _device_button(builder, texts.BUTTON_SYMBOLS, DeviceAction.SYMBOLS, device)
    _device_button(builder, texts.BUTTON_MAX_AGE, DeviceAction.MAX_AGE, device)
    if device.paused:
        _device_button(builder, texts.BUTTON_RESUME, DeviceAction.RESUME, device)
    else:
        _device_button(builder, texts.BUTTON_PAUSE, DeviceAction.PAUSE, device)
    _device_button(builder, texts.BUTTON_ROTATE, DeviceAction.ROTATE, device)
    _device_button(builder, texts.BUTTON_REVOKE, DeviceAction.REVOKE, device)
    builder.button(text=texts.BUTTON_DEVICES, callback_data=DevicesCb(action=DevicesAction.LIST))
    builder.adjust(2, 2, 1, 2, 1)
    return builder.as_markup()


def device_symbols(device: DeviceDTO) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    _device_button(builder, texts.BUTTON_PAIRS, DeviceAction.PAIRS, device)
    _device_button(builder, texts.BUTTON_PREFIX, DeviceAction.PREFIX, device)
    _device_button(builder, texts.BUTTON_SUFFIX, DeviceAction.SUFFIX, device)
    _device_button(builder, texts.BUTTON_BACK, DeviceAction.MENU, device)
    builder.adjust(3, 1)
    return builder.as_markup()


def device_confirm(device: DeviceDTO, action: DeviceAction) -> InlineKeyboardMarkup:
    """Yes / No for ROTATE_CONFIRM or REVOKE_CONFIRM; Yes carries the key version shown."""
    label = (
        texts.BUTTON_CONFIRM_ROTATE
        if action is DeviceAction.ROTATE_CONFIRM
        else texts.BUTTON_CONFIRM_REVOKE
    )
    builder = InlineKeyboardBuilder()
    builder.button(
        text=label,
        callback_data=DeviceCb(action=action, device=device.pk, version=device.key_version),
    )
    _device_button(builder, texts.BUTTON_NO, DeviceAction.MENU, device)
    builder.adjust(1)
    return builder.as_markup()


def device_created(device: DeviceDTO) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    _device_button(builder, texts.BUTTON_SETTINGS, DeviceAction.MENU, device)
    builder.button(text=texts.BUTTON_DEVICES, callback_data=DevicesCb(action=DevicesAction.LIST))
    return builder.as_markup()
