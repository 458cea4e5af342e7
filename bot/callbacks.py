"""Every CallbackData class, in one module: short prefixes, Enum actions, ids only.

Telegram allows 64 bytes of callback data and the client can forge any of it, so
handlers re-check on every press that the object exists and belongs to the presser.
"""

from __future__ import annotations

from enum import StrEnum

from aiogram.filters.callback_data import CallbackData


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


class DeviceCb(CallbackData, prefix="dv"):
    """A device's menu; ``version`` is the key version a rotate confirmation was shown for."""

    action: DeviceAction
    device: int
    version: int = 0
