"""Inline keyboards as pure functions of plain data."""

from __future__ import annotations

from collections.abc import Sequence

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot import texts
from bot.callbacks import (
    DraftAction,
    ManageAction,
    SettingsCb,
    SettingsToggle,
    SignalDraftCb,
    SignalManageCb,
    SignalVote,
    Vote,
)
from bot.services.signal_dto import SignalDTO

# --- signals ---


def _button(text: str, data: CallbackData) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=data.pack())


def approval_keyboard(signal_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                _button(texts.BUTTON_APPROVE, SignalVote(action=Vote.APPROVE, signal=signal_id)),
                _button(texts.BUTTON_REJECT, SignalVote(action=Vote.REJECT, signal=signal_id)),
            ]
        ]
    )


def draft_keyboard(token: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                _button(texts.BUTTON_SEND, SignalDraftCb(action=DraftAction.SEND, token=token)),
                _button(
                    texts.BUTTON_DISCARD, SignalDraftCb(action=DraftAction.DISCARD, token=token)
                ),
            ]
        ]
    )


def open_signals_keyboard(signals: Sequence[SignalDTO]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                _button(
                    texts.open_signal_button(signal),
                    SignalManageCb(action=ManageAction.VIEW, signal=signal.id),
                )
            ]
            for signal in signals
        ]
    )


CLOSE_PERCENTS = (25, 50, 100)


def manage_signal_keyboard(signal: SignalDTO) -> InlineKeyboardMarkup:
    back = [_button(texts.BUTTON_BACK, SignalManageCb(action=ManageAction.LIST))]
    if not signal.is_open:
        return InlineKeyboardMarkup(inline_keyboard=[back])
    sid = signal.id
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [_button(texts.BUTTON_MODIFY, SignalManageCb(action=ManageAction.MODIFY, signal=sid))],
            [
                _button(
                    f"Close {percent}%",
                    SignalManageCb(action=ManageAction.CLOSE, signal=sid, percent=percent),
                )
                for percent in CLOSE_PERCENTS
            ],
            [
                _button(
                    texts.BUTTON_CANCEL_SIGNAL,
                    SignalManageCb(action=ManageAction.CANCEL, signal=sid),
                )
            ],
            back,
        ]
    )


def settings_keyboard(values: dict[str, bool]) -> InlineKeyboardMarkup:
    toggles = {
        "auto_approve": SettingsToggle.AUTO_APPROVE,
        "notify_fills": SettingsToggle.NOTIFY_FILLS,
        "notify_errors": SettingsToggle.NOTIFY_ERRORS,
    }
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [_button(texts.settings_button(key, values[key]), SettingsCb(toggle=toggle))]
            for key, toggle in toggles.items()
        ]
    )
