"""Inline keyboards as pure functions of plain data."""

from __future__ import annotations

from collections.abc import Sequence

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.chat import texts
from bot.chat.callbacks import (
    DeviceAction,
    DeviceCb,
    DevicePlatformCb,
    DevicesAction,
    DevicesCb,
    DraftAction,
    ManageAction,
    PayoutAction,
    PayoutCallback,
    PayoutHistoryCallback,
    PayoutReviewAction,
    PayoutReviewCallback,
    PlanCallback,
    ProtectionAction,
    ProtectionCb,
    SettingsCb,
    SettingsToggle,
    SignalDraftCb,
    SignalManageCb,
    SignalVote,
    StatsAction,
    StatsCallback,
    Vote,
)
from bot.config import PlanSettings
from bot.domain.devices import DeviceDTO, Platform
from bot.domain.signal_dto import SignalDTO
from bot.domain.trade_settings import SizingMode, TpMode, TradeSettings

# --- affiliates and checkout ---


def _button(text: str, data: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=data)


def share_link(url: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=str(texts.LINK_SHARE_BUTTON), url=url)]]
    )


def plans(items: list[PlanSettings]) -> InlineKeyboardMarkup:
    rows = [
        [
            _button(
                texts.PLAN_BUTTON.format(name=plan.name, stars=plan.stars, days=plan.days),
                PlanCallback(code=plan.code).pack(),
            )
        ]
        for plan in items
    ]
    return InlineKeyboardMarkup(inline_keyboard=rows)


def stats() -> InlineKeyboardMarkup:
    data = StatsCallback(action=StatsAction.CHART).pack()
    return InlineKeyboardMarkup(inline_keyboard=[[_button(str(texts.STATS_CHART_BUTTON), data)]])


def payout_methods(methods: list[tuple[str, str]]) -> InlineKeyboardMarkup:
    """(code, title) pairs, one per row."""
    rows = [
        [_button(title, PayoutCallback(action=PayoutAction.METHOD, value=code).pack())]
        for code, title in methods
    ]
    return InlineKeyboardMarkup(inline_keyboard=rows)


def payout_amount(all_label: str) -> InlineKeyboardMarkup:
    data = PayoutCallback(action=PayoutAction.ALL).pack()
    return InlineKeyboardMarkup(inline_keyboard=[[_button(all_label, data)]])


def payout_confirm(request_key: str) -> InlineKeyboardMarkup:
    confirm = PayoutCallback(action=PayoutAction.CONFIRM, value=request_key).pack()
    cancel = PayoutCallback(action=PayoutAction.CANCEL).pack()
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                _button(str(texts.PAYOUT_CONFIRM_BUTTON), confirm),
                _button(str(texts.PAYOUT_CANCEL_BUTTON), cancel),
            ]
        ]
    )


def history_pages(page: int, pages: int) -> InlineKeyboardMarkup | None:
    row = []
    if page > 0:
        row.append(_button(str(texts.HISTORY_PREV), PayoutHistoryCallback(page=page - 1).pack()))
    if page < pages - 1:
        row.append(_button(str(texts.HISTORY_NEXT), PayoutHistoryCallback(page=page + 1).pack()))
    return InlineKeyboardMarkup(inline_keyboard=[row]) if row else None


def _review(action: PayoutReviewAction, payout_id: int) -> str:
    return PayoutReviewCallback(action=action, payout_id=payout_id).pack()


def payout_review(payout_id: int, state: str) -> InlineKeyboardMarkup | None:
    """The buttons that apply to a request in ``state`` (none once it is settled)."""
    if state == "requested":
        row = [
            _button(
                str(texts.PAYOUT_APPROVE_BUTTON), _review(PayoutReviewAction.APPROVE, payout_id)
            ),
            _button(str(texts.PAYOUT_REJECT_BUTTON), _review(PayoutReviewAction.REJECT, payout_id)),
        ]
    elif state == "approved":
        row = [
            _button(str(texts.PAYOUT_PAID_BUTTON), _review(PayoutReviewAction.PAID, payout_id)),
            _button(str(texts.PAYOUT_REJECT_BUTTON), _review(PayoutReviewAction.REJECT, payout_id)),
        ]
    else:
        return None
    return InlineKeyboardMarkup(inline_keyboard=[row])


def payout_no_reference(payout_id: int) -> InlineKeyboardMarkup:
    data = _review(PayoutReviewAction.PAID_NO_REFERENCE, payout_id)
    return InlineKeyboardMarkup(
        inline_keyboard=[[_button(str(texts.PAYOUT_NO_REFERENCE_BUTTON), data)]]
    )


def open_payouts(items: list[tuple[int, str]]) -> InlineKeyboardMarkup:
    """(payout id, label) pairs, one per row."""
    rows = [
        [_button(label, _review(PayoutReviewAction.OPEN, payout_id))] for payout_id, label in items
    ]
    return InlineKeyboardMarkup(inline_keyboard=rows)


# --- signals ---


def _cb_button(text: str, data: CallbackData) -> InlineKeyboardButton:
    return _button(text, data.pack())


def approval_keyboard(signal_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                _cb_button(
                    str(texts.BUTTON_APPROVE), SignalVote(action=Vote.APPROVE, signal=signal_id)
                ),
                _cb_button(
                    str(texts.BUTTON_REJECT), SignalVote(action=Vote.REJECT, signal=signal_id)
                ),
            ]
        ]
    )


def draft_keyboard(token: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                _cb_button(
                    str(texts.BUTTON_SEND), SignalDraftCb(action=DraftAction.SEND, token=token)
                ),
                _cb_button(
                    str(texts.BUTTON_DISCARD),
                    SignalDraftCb(action=DraftAction.DISCARD, token=token),
                ),
            ]
        ]
    )


def open_signals_keyboard(signals: Sequence[SignalDTO]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                _cb_button(
                    texts.open_signal_button(signal),
                    SignalManageCb(action=ManageAction.VIEW, signal=signal.id),
                )
            ]
            for signal in signals
        ]
    )


CLOSE_PERCENTS = (25, 50, 100)


def manage_signal_keyboard(signal: SignalDTO) -> InlineKeyboardMarkup:
    back = [_cb_button(str(texts.BUTTON_BACK_TO_SIGNALS), SignalManageCb(action=ManageAction.LIST))]
    if not signal.is_open:
        return InlineKeyboardMarkup(inline_keyboard=[back])
    sid = signal.id
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                _cb_button(
                    str(texts.BUTTON_MODIFY), SignalManageCb(action=ManageAction.MODIFY, signal=sid)
                )
            ],
            [
                _cb_button(
                    f"Close {percent}%",
                    SignalManageCb(action=ManageAction.CLOSE, signal=sid, percent=percent),
                )
                for percent in CLOSE_PERCENTS
            ],
            [
                _cb_button(
                    str(texts.BUTTON_CANCEL_SIGNAL),
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
        "notify_closes": SettingsToggle.NOTIFY_CLOSES,
    }
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [_cb_button(texts.settings_button(key, values[key]), SettingsCb(toggle=toggle))]
            for key, toggle in toggles.items()
        ]
    )


# --- devices ---
def devices_list(devices: list[DeviceDTO]) -> InlineKeyboardMarkup:
    # One button a row, built directly: /devices is frequent and the builder deep-copies.
    rows = [
        [
            InlineKeyboardButton(
                text=device.name,
                callback_data=DeviceCb(action=DeviceAction.MENU, device=device.pk).pack(),
            )
        ]
        for device in devices
    ]
    add = DevicesCb(action=DevicesAction.ADD).pack()
    rows.append([InlineKeyboardButton(text=str(texts.BUTTON_ADD_DEVICE), callback_data=add)])
    return InlineKeyboardMarkup(inline_keyboard=rows)


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
    # Grouped: the trade-management settings each open a screen of their own (the lot
    # size is on the Size screen).
    _device_button(builder, str(texts.BUTTON_RENAME), DeviceAction.RENAME, device)
    _device_button(builder, str(texts.BUTTON_SYMBOLS), DeviceAction.SYMBOLS, device)
    _device_button(builder, str(texts.BUTTON_SIZE), DeviceAction.SIZE, device)
    _device_button(builder, str(texts.BUTTON_TAKE_PROFITS), DeviceAction.TAKE_PROFITS, device)
    _device_button(builder, str(texts.BUTTON_STOPS), DeviceAction.STOPS, device)
    _device_button(builder, str(texts.BUTTON_GUARDS), DeviceAction.GUARDS, device)
    _device_button(builder, str(texts.BUTTON_PROTECTIONS), DeviceAction.PROTECTIONS, device)
    _device_button(builder, str(texts.BUTTON_MAX_AGE), DeviceAction.MAX_AGE, device)
    if device.paused:
        _device_button(builder, str(texts.BUTTON_RESUME), DeviceAction.RESUME, device)
    else:
        _device_button(builder, str(texts.BUTTON_PAUSE), DeviceAction.PAUSE, device)
    _device_button(builder, str(texts.BUTTON_CLOSE_ALL), DeviceAction.CLOSE_ALL, device)
    _device_button(builder, str(texts.BUTTON_ROTATE), DeviceAction.ROTATE, device)
    _device_button(builder, str(texts.BUTTON_REVOKE), DeviceAction.REVOKE, device)
    builder.button(
        text=str(texts.BUTTON_DEVICES), callback_data=DevicesCb(action=DevicesAction.LIST)
    )
    builder.adjust(2, 2, 2, 2, 2, 2, 1)
    return builder.as_markup()


def device_symbols(device: DeviceDTO) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    _device_button(builder, str(texts.BUTTON_PAIRS), DeviceAction.PAIRS, device)
    _device_button(builder, str(texts.BUTTON_PREFIX), DeviceAction.PREFIX, device)
    _device_button(builder, str(texts.BUTTON_SUFFIX), DeviceAction.SUFFIX, device)
    _device_button(builder, str(texts.BUTTON_BACK), DeviceAction.MENU, device)
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
        text=str(label),
        callback_data=DeviceCb(action=action, device=device.pk, version=device.key_version),
    )
    _device_button(builder, str(texts.BUTTON_NO), DeviceAction.MENU, device)
    builder.adjust(1)
    return builder.as_markup()


def device_created(device: DeviceDTO) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    _device_button(builder, str(texts.BUTTON_SETTINGS), DeviceAction.MENU, device)
    builder.button(
        text=str(texts.BUTTON_DEVICES), callback_data=DevicesCb(action=DevicesAction.LIST)
    )
    return builder.as_markup()


# --- devices: trade management (protocol v1.1) ---
def _chosen(text: str, chosen: bool) -> str:
    return f"✅ {text}" if chosen else text


def _back_button(builder: InlineKeyboardBuilder, device: DeviceDTO) -> None:
    _device_button(builder, str(texts.BUTTON_BACK), DeviceAction.MENU, device)


def device_size(device: DeviceDTO, settings: TradeSettings) -> InlineKeyboardMarkup:
    mode, of = settings.sizing_mode, settings.risk_of.value
    risk_percent = mode is SizingMode.RISK_PERCENT
    choices = (
        (texts.BUTTON_SIZE_FIXED, DeviceAction.SIZE_FIXED, mode is SizingMode.FIXED),
        (texts.BUTTON_RISK_BALANCE, DeviceAction.RISK_BALANCE, risk_percent and of == "balance"),
        (texts.BUTTON_RISK_EQUITY, DeviceAction.RISK_EQUITY, risk_percent and of == "equity"),
        (texts.BUTTON_RISK_MONEY, DeviceAction.RISK_MONEY, mode is SizingMode.RISK_MONEY),
    )
    builder = InlineKeyboardBuilder()
    for label, action, chosen in choices:
        _device_button(builder, _chosen(str(label), chosen), action, device)
    _device_button(builder, str(texts.BUTTON_LOT_SIZE), DeviceAction.LOT_SIZE, device)
    _device_button(builder, str(texts.BUTTON_MAX_LOTS), DeviceAction.MAX_LOTS, device)
    _back_button(builder, device)
    builder.adjust(2, 2, 2, 1)
    return builder.as_markup()


def device_take_profits(device: DeviceDTO, settings: TradeSettings) -> InlineKeyboardMarkup:
    first = settings.tp_mode is TpMode.FIRST
    choices = (
        (texts.BUTTON_TP_FIRST, DeviceAction.TP_FIRST, first),
        (texts.BUTTON_TP_EQUAL, DeviceAction.TP_EQUAL, not first and settings.tp_shares is None),
        (texts.BUTTON_TP_SHARES, DeviceAction.TP_SHARES, not first and bool(settings.tp_shares)),
    )
    builder = InlineKeyboardBuilder()
    for label, action, chosen in choices:
        _device_button(builder, _chosen(str(label), chosen), action, device)
    _back_button(builder, device)
    builder.adjust(2, 1, 1)
    return builder.as_markup()


def device_stops(device: DeviceDTO, start: str) -> InlineKeyboardMarkup:
    """Breakeven, trailing and where trailing starts (``start``, worded)."""
    builder = InlineKeyboardBuilder()
    _device_button(builder, str(texts.BUTTON_BREAKEVEN), DeviceAction.BREAKEVEN, device)
    _device_button(builder, str(texts.BUTTON_TRAILING), DeviceAction.TRAILING, device)
    _device_button(
        builder,
        texts.BUTTON_TRAILING_START.format(start=start),
        DeviceAction.TRAILING_START,
        device,
    )
    _back_button(builder, device)
    builder.adjust(2, 1, 1)
    return builder.as_markup()


def device_guards(device: DeviceDTO) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    _device_button(builder, str(texts.BUTTON_MAX_SPREAD), DeviceAction.MAX_SPREAD, device)
    _device_button(builder, str(texts.BUTTON_MAX_DISTANCE), DeviceAction.MAX_DISTANCE, device)
    _back_button(builder, device)
    builder.adjust(2, 1)
    return builder.as_markup()


def device_protections(device: DeviceDTO) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    _device_button(builder, str(texts.BUTTON_MAX_POSITIONS), DeviceAction.MAX_POSITIONS, device)
    _device_button(builder, str(texts.BUTTON_LOSS_LIMIT), DeviceAction.LOSS_LIMIT, device)
    _device_button(builder, str(texts.BUTTON_SYMBOLS_ALLOWED), DeviceAction.SYMBOLS_ALLOWED, device)
    _device_button(builder, str(texts.BUTTON_SYMBOLS_DENIED), DeviceAction.SYMBOLS_DENIED, device)
    _device_button(builder, str(texts.BUTTON_HOURS), DeviceAction.HOURS, device)
    _back_button(builder, device)
    builder.adjust(2, 2, 1, 1)
    return builder.as_markup()


def device_close_all(device: DeviceDTO) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    _device_button(
        builder, str(texts.BUTTON_CONFIRM_CLOSE_ALL), DeviceAction.CLOSE_ALL_CONFIRM, device
    )
    _device_button(builder, str(texts.BUTTON_KEEP_OPEN), DeviceAction.MENU, device)
    builder.adjust(1)
    return builder.as_markup()


def device_back(device: DeviceDTO) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    _back_button(builder, device)
    return builder.as_markup()


def loss_limit_resume(device_pk: int) -> InlineKeyboardMarkup:
    """The Resume button under a tripped daily loss limit's notice."""
    data = ProtectionCb(action=ProtectionAction.RESUME, device_pk=device_pk)
    return InlineKeyboardMarkup(
        inline_keyboard=[[_cb_button(str(texts.BUTTON_RESUME_TODAY), data)]]
    )
