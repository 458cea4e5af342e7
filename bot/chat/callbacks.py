"""Every CallbackData class, in one module: short prefixes, Enum actions, ids only.

Telegram allows 64 bytes of callback data and the client can forge any of it, so
handlers re-check on every press that the object exists and belongs to the presser.
"""

from __future__ import annotations

from enum import StrEnum

from aiogram.filters.callback_data import CallbackData

# --- affiliates and checkout ---


class PlanCallback(CallbackData, prefix="plan"):
    """A /subscribe plan button: the plan code (re-checked against config on press)."""

    code: str


class StatsAction(StrEnum):
    CHART = "chart"


class StatsCallback(CallbackData, prefix="st"):
    action: StatsAction


class PayoutAction(StrEnum):
    METHOD = "m"
    ALL = "all"
    CONFIRM = "ok"
    CANCEL = "no"


class PayoutCallback(CallbackData, prefix="po"):
    """The user's payout flow; ``value`` is a method code or the confirmation's request key."""

    action: PayoutAction
    value: str = ""


class PayoutHistoryCallback(CallbackData, prefix="ph"):
    page: int


class PayoutReviewAction(StrEnum):
    OPEN = "open"
    APPROVE = "ok"
    REJECT = "no"
    PAID = "paid"
    PAID_NO_REFERENCE = "noref"


class PayoutReviewCallback(CallbackData, prefix="pr"):
    """Admins' payout review buttons."""

    action: PayoutReviewAction
    payout_id: int


# --- signals ---


class Vote(StrEnum):
    APPROVE = "a"
    REJECT = "r"


class SignalVote(CallbackData, prefix="sv"):
    """Approve / Reject on a signal's message; ``signal`` is the signal's row id."""

    action: Vote
    signal: int


class DraftAction(StrEnum):
    SEND = "s"
    DISCARD = "d"


class SignalDraftCb(CallbackData, prefix="sd"):
    """Send / Discard under an admin's preview; ``token`` names the draft in the FSM data."""

    action: DraftAction
    token: str


class ManageAction(StrEnum):
    LIST = "l"
    VIEW = "v"
    MODIFY = "m"
    CLOSE = "c"
    CANCEL = "x"


class SignalManageCb(CallbackData, prefix="sm"):
    """/signals: ``percent`` is the part of what remains to close (Close 25/50/100 %)."""

    action: ManageAction
    signal: int = 0
    percent: int = 0


class SettingsToggle(StrEnum):
    AUTO_APPROVE = "a"
    NOTIFY_FILLS = "f"
    NOTIFY_ERRORS = "e"
    NOTIFY_CLOSES = "c"


class SettingsCb(CallbackData, prefix="set"):
    toggle: SettingsToggle


# --- devices ---
class DevicesAction(StrEnum):
    LIST = "l"
    ADD = "a"


class DevicesCb(CallbackData, prefix="dvs"):
    """The device list and its "Add device" button."""

    action: DevicesAction


class DevicePlatformCb(CallbackData, prefix="dvp"):
    """The platform step of adding a device (valid only in that step)."""

    platform: str


class DeviceAction(StrEnum):
    MENU = "m"
    RENAME = "rn"
    LOT_SIZE = "lot"
    MAX_AGE = "age"
    SYMBOLS = "sym"
    PAIRS = "pr"
    PREFIX = "pf"
    SUFFIX = "sf"
    PAUSE = "p"
    RESUME = "r"
    ROTATE = "rot"
    ROTATE_CONFIRM = "rotok"
    REVOKE = "rev"
    REVOKE_CONFIRM = "revok"
    # trade management (protocol v1.1): a screen per group, its buttons and typed values
    SIZE = "sz"
    SIZE_FIXED = "szf"
    RISK_BALANCE = "rb"
    RISK_EQUITY = "re"
    RISK_MONEY = "rm"
    MAX_LOTS = "ml"
    TAKE_PROFITS = "tp"
    TP_FIRST = "tpf"
    TP_EQUAL = "tpe"
    TP_SHARES = "tps"
    STOPS = "st"
    BREAKEVEN = "be"
    TRAILING = "tr"
    TRAILING_START = "trs"
    GUARDS = "gd"
    MAX_SPREAD = "msp"
    MAX_DISTANCE = "mdi"
    PROTECTIONS = "pt"
    MAX_POSITIONS = "mop"
    LOSS_LIMIT = "dll"
    SYMBOLS_ALLOWED = "sal"
    SYMBOLS_DENIED = "sdn"
    HOURS = "hrs"
    CLOSE_ALL = "ca"
    CLOSE_ALL_CONFIRM = "caok"


class DeviceCb(CallbackData, prefix="dv"):
    """A device's menu; ``version`` is the key version a rotate confirmation was shown for."""

    action: DeviceAction
    device: int
    version: int = 0


# --- protections (protocol v1.1) ---


class ProtectionAction(StrEnum):
    RESUME = "resume"


class ProtectionCb(CallbackData, prefix="pt"):
    """A protection's button on its notice (the daily loss limit's Resume): the device."""

    action: ProtectionAction
    device_pk: int
