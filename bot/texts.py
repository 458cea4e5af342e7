"""Every text the bot sends, in one place. HTML parse mode; user values are quoted."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from aiogram import html

from bot.commands import CommandInfo

if TYPE_CHECKING:
    from bot.services.devices import Credentials, DeviceDTO

GREETING = (
    "Hi, {name}! I am <b>signalbridge</b>.\n\n"
    "I bring trading signals to your MetaTrader terminals: every signal arrives here "
    "with <b>Approve</b> and <b>Reject</b> buttons, and what you approve is executed by "
    "the Expert Advisors you connect, with each fill reported back in this chat.\n\n"
    "Start here:\n"
    "{commands}\n\n"
    "All commands: /help"
)
HELP_HEADER = "<b>Commands</b>"
HELP_ADMIN_HEADER = "<b>Admin commands</b>"
UNKNOWN_COMMAND = "I don't know that command. /help lists what I can do."
NOT_A_COMMAND = "I answer commands and buttons. /help lists what I can do."
NOTHING_TO_CANCEL = "There is nothing to cancel."
CANCELLED = "Cancelled. Nothing was changed."
APOLOGY = "Sorry, something went wrong on our side. Please try again in a minute."
NOT_AVAILABLE = "This is not available any more."


def command_lines(commands: list[CommandInfo]) -> str:
    return "\n".join(f"/{command.name} – {html.quote(command.description)}" for command in commands)


def greeting(first_name: str, commands: list[CommandInfo]) -> str:
    return GREETING.format(name=html.quote(first_name), commands=command_lines(commands))


def help_text(user_commands: list[CommandInfo], admin_commands: list[CommandInfo]) -> str:
    text = f"{HELP_HEADER}\n{command_lines(user_commands)}"
    if admin_commands:
        text += f"\n\n{HELP_ADMIN_HEADER}\n{command_lines(admin_commands)}"
    return text


# --- devices ---
DEVICE_PLATFORMS = {"mt4": "MT4", "mt5": "MT5"}
PREVIEW_SYMBOLS = ("EURUSD", "XAUUSD")

DEVICES_HEADER = "<b>Your devices</b> ({count} of {limit})"
DEVICES_EMPTY = (
    "<b>Your devices</b>\n\n"
    "No device yet. A device is an Expert Advisor in a MetaTrader terminal: add one, "
    "paste its Device ID and Secret into the EA, and approved signals trade there."
)
DEVICES_PICK = "Tap a device for its settings."
DEVICES_PRIVATE_ONLY = "For your security, /devices works only in a private chat with me."
DEVICE_LIMIT_REACHED = (
    "You have {limit} devices, the most allowed. Revoke one in its settings to add another."
)

ASK_DEVICE_NAME = (
    "Name the new device, e.g. <i>Office MT5</i> (1-32 characters, one line).\n/cancel to stop."
)
ASK_DEVICE_PLATFORM = "Which platform does <b>{name}</b> run on?\n/cancel to stop."
HINT_USE_BUTTONS = "Please choose with the buttons."
HINT_SEND_TEXT = "Please send it as a text message."
NAME_LENGTH = "The name must be 1-32 characters."
NAME_ONE_LINE = "The name must fit on one line, without special characters."
NAME_SLASH = "The name cannot start with /."
NAME_TAKEN = "You already have a device named <b>{name}</b>; pick another name."

CREDENTIALS = (
    "✅ <b>{name}</b> ({platform}) is ready. Put these two values into the EA's inputs:\n\n"
    "Device ID: <code>{device_id}</code>\n"
    "Secret: <code>{secret}</code>\n\n"
    "The secret is shown only this once: keep it safe. Lost it? Rotate the key in /devices.\n\n"
    "<b>Set up the EA in {platform}</b>\n"
    "1. Tools → Options → Expert Advisors: tick <i>Allow WebRequest for listed URL</i> "
    "and add <code>{server_url}</code>.\n"
    "2. Attach the signalbridge EA to a chart; in its inputs set Server URL "
    "<code>{server_url}</code>, Device ID and Secret as above.\n"
    "3. Turn on {algo_button}. Within a minute the device shows as online in /devices."
)
KEY_ROTATED = (
    "🔑 New key for <b>{name}</b>. The old secret no longer works; put the new one into the "
    "EA's inputs:\n\n"
    "Device ID: <code>{device_id}</code>\n"
    "Secret: <code>{secret}</code>\n\n"
    "The secret is shown only this once: keep it safe."
)

DEVICE_CARD = (
    "<b>{name}</b> · {platform}\n"
    "Device ID: <code>{device_id}</code>\n"
    "Status: {status}\n"
    "Lot size: {lot_size}\n"
    "Symbols: {symbols}\n"
    "Max signal age: {max_age}\n"
    "Key: version {key_version}, {key_date}"
)
DEVICE_PAUSED = "⏸ paused (no new trades)"
DEVICE_ACTIVE = "active"
ONLINE = "🟢 online"
NEVER_SEEN = "⚪ never connected"
LAST_SEEN = "⚪ last seen {ago}"

ASK_RENAME = "Send the new name for <b>{name}</b> (1-32 characters, one line).\n/cancel to stop."
ASK_LOT_SIZE = (
    "Send the lot size for <b>{name}</b>, from {min} to {max} (now {current}).\n/cancel to stop."
)
ASK_MAX_AGE = (
    "Send the max signal age for <b>{name}</b> in seconds, from {min} to {max} (now {current}). "
    "Signals older than this are not traded on this device. You may also write 5m or 1h.\n"
    "/cancel to stop."
)
ASK_SYMBOL_PAIRS = (
    "Send symbol pairs for <b>{name}</b> as <code>PROVIDER=YOURS</code>, separated by spaces, "
    "commas or new lines, e.g. <code>XAUUSD=GOLD US30=DJ30</code>. They replace the current "
    "pairs; <code>-</code> removes them all.\n/cancel to stop."
)
ASK_SYMBOL_PREFIX = (
    "Send the prefix your broker puts before every symbol of <b>{name}</b> "
    "(e.g. <code>m.</code>), or <code>-</code> for none.\n/cancel to stop."
)
ASK_SYMBOL_SUFFIX = (
    "Send the suffix your broker puts after every symbol of <b>{name}</b> "
    "(e.g. <code>.m</code>), or <code>-</code> for none.\n/cancel to stop."
)
LOT_SIZE_INVALID = "Send a lot size such as 0.10, from {min} to {max}."
MAX_AGE_INVALID = "Send a number of seconds from {min} to {max}, such as 300 (or 5m)."
PAIR_INVALID = (
    "I can't read <code>{item}</code>: write pairs as <code>PROVIDER=YOURS</code>, "
    "e.g. <code>XAUUSD=GOLD</code>, using only letters, digits and . _ # -"
)
PAIR_DUPLICATE = "<code>{symbol}</code> appears twice."
PAIRS_TOO_MANY = "At most {limit} pairs, please."
AFFIX_INVALID = (
    "Use up to 16 letters, digits or . _ # - (e.g. <code>.m</code>), or <code>-</code> for none."
)

SYMBOLS_CARD = (
    "<b>Symbols of {name}</b>\n"
    "Pairs: {pairs}\n"
    "Prefix: {prefix}\n"
    "Suffix: {suffix}\n\n"
    "A pair is used exactly as written; prefix and suffix apply to every other symbol.\n"
    "Preview: {preview}"
)
NONE_SET = "none"

CONFIRM_ROTATE = (
    "Rotate the key of <b>{name}</b>? The current secret stops working at once and the EA "
    "needs the new one."
)
CONFIRM_REVOKE = (
    "Revoke <b>{name}</b>? It stops working for good and leaves your list. This cannot be undone."
)
DEVICE_ADDED_PLATFORM = "New device <b>{name}</b> on {platform}."
DEVICE_RENAMED = "Renamed to <b>{name}</b>."
DEVICE_UPDATED = "Saved."
DEVICE_PAUSED_TOAST = "Paused: no new trades go to this device."
DEVICE_RESUMED_TOAST = "Resumed: new trades go to this device again."
DEVICE_REVOKED = "<b>{name}</b> was revoked: its key no longer works."
KEY_ROTATED_TOAST = "New key sent below."

BUTTON_ADD_DEVICE = "➕ Add device"
BUTTON_RENAME = "✏️ Rename"
BUTTON_LOT_SIZE = "📏 Lot size"
BUTTON_SYMBOLS = "🔤 Symbols"
BUTTON_MAX_AGE = "⏱ Max signal age"
BUTTON_PAUSE = "⏸ Pause"
BUTTON_RESUME = "▶️ Resume"
BUTTON_ROTATE = "🔑 Rotate key"
BUTTON_REVOKE = "🗑 Revoke"
BUTTON_DEVICES = "« Devices"
BUTTON_BACK = "« Back"
BUTTON_PAIRS = "Pairs"
BUTTON_PREFIX = "Prefix"
BUTTON_SUFFIX = "Suffix"
BUTTON_CONFIRM_ROTATE = "Yes, rotate the key"
BUTTON_CONFIRM_REVOKE = "Yes, revoke it"
BUTTON_NO = "No, keep it"
BUTTON_SETTINGS = "⚙️ Settings"


def format_lot(value: Decimal) -> str:
    """0.1 → "0.10", 1 → "1.00", 0.015 → "0.015": at least two decimals, no float noise."""
    normalized = value.normalize()
    exponent = normalized.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        normalized = normalized.quantize(Decimal("0.01"))
    return f"{normalized:f}"


def ago(delta: timedelta) -> str:
    seconds = max(int(delta.total_seconds()), 0)
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min ago"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


def device_presence(device: DeviceDTO, now: datetime, online_window: int) -> str:
    if device.last_seen_at is None:
        return NEVER_SEEN
    if device.is_online(now, online_window):
        return ONLINE
    return LAST_SEEN.format(ago=ago(now - device.last_seen_at))


def device_line(device: DeviceDTO, now: datetime, online_window: int) -> str:
    parts = [
        f"<b>{html.quote(device.name)}</b>",
        device.platform.label,
        device_presence(device, now, online_window),
    ]
    if device.paused:
        parts.append(DEVICE_PAUSED)
    parts.append(f"lot {format_lot(device.lot_size)}")
    return " · ".join(parts)


def device_list(devices: list[DeviceDTO], now: datetime, *, limit: int, online_window: int) -> str:
    if not devices:
        return DEVICES_EMPTY
    lines = [device_line(device, now, online_window) for device in devices]
    header = DEVICES_HEADER.format(count=len(devices), limit=limit)
    return f"{header}\n\n" + "\n".join(lines) + f"\n\n{DEVICES_PICK}"


def symbol_pairs(device: DeviceDTO) -> str:
    pairs = ", ".join(
        f"{html.quote(source)}={html.quote(target)}"
        for source, target in sorted(device.symbol_map.items())
    )
    return pairs or NONE_SET


def symbol_preview(device: DeviceDTO) -> str:
    return ", ".join(
        f"{symbol} → <code>{html.quote(device.map_symbol(symbol))}</code>"
        for symbol in PREVIEW_SYMBOLS
    )


def device_card(device: DeviceDTO, now: datetime, online_window: int) -> str:
    status = device_presence(device, now, online_window)
    status += ", " + (DEVICE_PAUSED if device.paused else DEVICE_ACTIVE)
    key_date = (
        f"rotated {device.key_rotated_at:%Y-%m-%d %H:%M} UTC"
        if device.key_rotated_at is not None
        else f"since {device.created_at:%Y-%m-%d %H:%M} UTC"
    )
    return DEVICE_CARD.format(
        name=html.quote(device.name),
        platform=device.platform.label,
        device_id=device.public_id,
        status=status,
        lot_size=format_lot(device.lot_size),
        symbols=symbol_preview(device),
        max_age=f"{device.max_signal_age} s",
        key_version=device.key_version,
        key_date=key_date,
    )


def symbols_card(device: DeviceDTO) -> str:
    return SYMBOLS_CARD.format(
        name=html.quote(device.name),
        pairs=symbol_pairs(device),
        prefix=f"<code>{html.quote(device.symbol_prefix)}</code>"
        if device.symbol_prefix
        else NONE_SET,
        suffix=f"<code>{html.quote(device.symbol_suffix)}</code>"
        if device.symbol_suffix
        else NONE_SET,
        preview=symbol_preview(device),
    )


def credentials(device: DeviceDTO, creds: Credentials, server_url: str) -> str:
    return CREDENTIALS.format(
        name=html.quote(device.name),
        platform=device.platform.label,
        device_id=creds.device_id,
        secret=creds.secret,
        server_url=html.quote(server_url),
        algo_button="AutoTrading" if device.platform.value == "mt4" else "Algo Trading",
    )


def key_rotated(device: DeviceDTO, creds: Credentials) -> str:
    return KEY_ROTATED.format(
        name=html.quote(device.name), device_id=creds.device_id, secret=creds.secret
    )
