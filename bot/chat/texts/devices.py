"""/devices: the list, a device's card and settings, credentials and key rotation."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from aiogram import html

from bot.chat.i18n import Text
from bot.domain.devices import Credentials, DeviceDTO
from bot.domain.trade_settings import RiskOf, SizingMode

PREVIEW_SYMBOLS = ("EURUSD", "XAUUSD")

DEVICES_HEADER = Text("<b>Your devices</b> ({count} of {limit})")
DEVICES_EMPTY = Text(
    "<b>Your devices</b>\n\n"
    "No device yet. A device is our Expert Advisor in a MetaTrader terminal (or the Python "
    "agent): add one, paste its Device ID and Secret into the EA, and approved signals "
    "trade there."
)
DEVICES_PICK = Text("Tap a device for its settings.")
DEVICES_PRIVATE_ONLY = Text("For your security, /devices works only in a private chat with me.")

ASK_DEVICE_NAME = Text(
    "Name the new device, e.g. <i>Office MT5</i> (1-32 characters, one line).\n/cancel to stop."
)
ASK_DEVICE_PLATFORM = Text("Which platform does <b>{name}</b> run on?\n/cancel to stop.")
HINT_USE_BUTTONS = Text("Please choose with the buttons.")
HINT_SEND_TEXT = Text("Please send it as a text message.")

CREDENTIALS = Text(
    "✅ <b>{name}</b> ({platform}) is ready. Put these two values into the EA's inputs:\n\n"
    "Device ID: <code>{device_id}</code>\n"
    "Secret: <code>{secret}</code>\n\n"
    "The secret is shown only this once: keep it safe. Lost it? Rotate the key in /devices.\n\n"
    "<b>Set up the EA in {platform}</b>\n"
    "1. Copy <code>{ea_file}</code> (from signalbridge's <code>ea</code> folder) into the "
    "terminal's <code>{experts_folder}</code> folder (File → Open Data Folder) and compile it "
    "in MetaEditor.\n"
    "2. Tools → Options → Expert Advisors: tick <i>Allow WebRequest for listed URL</i> "
    "and add <code>{server_url}</code> exactly.\n"
    "3. Attach the SignalBridge EA to a chart; in its inputs set Server URL "
    "<code>{server_url}</code>, Device ID and Secret as above.\n"
    "4. Turn on {algo_button}. Within a minute the device shows as online in /devices.\n\n"
    "<b>Or the Python agent</b> (paper trading anywhere, MetaTrader 5 on Windows): "
    "<code>pip install ./ea/agent</code>, set SIGNALBRIDGE_SERVER_URL to "
    "<code>{server_url}</code> and SIGNALBRIDGE_DEVICE_ID and SIGNALBRIDGE_SECRET to the "
    "values above, then run <code>signalbridge-agent --executor paper</code> (or "
    "<code>mt5</code>). See <code>ea/agent/README.md</code>."
)
KEY_ROTATED = Text(
    "🔑 New key for <b>{name}</b>. The old secret no longer works; put the new one into the "
    "EA's inputs (or the Python agent's SIGNALBRIDGE_SECRET) and restart it:\n\n"
    "Device ID: <code>{device_id}</code>\n"
    "Secret: <code>{secret}</code>\n\n"
    "The secret is shown only this once: keep it safe."
)

DEVICE_CARD = Text(
    "<b>{name}</b> · {platform}\n"
    "Device ID: <code>{device_id}</code>\n"
    "Status: {status}\n"
    "Lot size: {lot_size}\n"
    "Symbols: {symbols}\n"
    "Max signal age: {max_age}\n"
    "Key: version {key_version}, {key_date}"
)
DEVICE_PAUSED = Text("⏸ paused (no new trades)")
DEVICE_ACTIVE = Text("active")
ONLINE = Text("🟢 online")
NEVER_SEEN = Text("⚪ never connected")
LAST_SEEN = Text("⚪ last seen {ago}")

ASK_RENAME = Text(
    "Send the new name for <b>{name}</b> (1-32 characters, one line).\n/cancel to stop."
)
ASK_LOT_SIZE = Text(
    "Send the lot size for <b>{name}</b>, from {min} to {max} (now {current}).\n/cancel to stop."
)
ASK_MAX_AGE = Text(
    "Send the max signal age for <b>{name}</b> in seconds, from {min} to {max} (now {current}). "
    "Signals older than this are not traded on this device. You may also write 5m or 1h.\n"
    "/cancel to stop."
)
ASK_SYMBOL_PAIRS = Text(
    "Send symbol pairs for <b>{name}</b> as <code>PROVIDER=YOURS</code>, separated by spaces, "
    "commas or new lines, e.g. <code>XAUUSD=GOLD US30=DJ30</code>. They replace the current "
    "pairs; <code>-</code> removes them all.\n/cancel to stop."
)
ASK_SYMBOL_PREFIX = Text(
    "Send the prefix your broker puts before every symbol of <b>{name}</b> "
    "(e.g. <code>m.</code>), or <code>-</code> for none.\n/cancel to stop."
)
ASK_SYMBOL_SUFFIX = Text(
    "Send the suffix your broker puts after every symbol of <b>{name}</b> "
    "(e.g. <code>.m</code>), or <code>-</code> for none.\n/cancel to stop."
)

SYMBOLS_CARD = Text(
    "<b>Symbols of {name}</b>\n"
    "Pairs: {pairs}\n"
    "Prefix: {prefix}\n"
    "Suffix: {suffix}\n\n"
    "A pair is used exactly as written; prefix and suffix apply to every other symbol.\n"
    "Preview: {preview}"
)
NONE_SET = Text("none")

CONFIRM_ROTATE = Text(
    "Rotate the key of <b>{name}</b>? The current secret stops working at once and the EA "
    "needs the new one."
)
CONFIRM_REVOKE = Text(
    "Revoke <b>{name}</b>? It stops working for good and leaves your list. This cannot be undone."
)
DEVICE_ADDED_PLATFORM = Text("New device <b>{name}</b> on {platform}.")
DEVICE_RENAMED = Text("Renamed to <b>{name}</b>.")
DEVICE_UPDATED = Text("Saved.")
DEVICE_PAUSED_TOAST = Text("Paused: no new trades go to this device.")
DEVICE_RESUMED_TOAST = Text("Resumed: new trades go to this device again.")
DEVICE_REVOKED = Text("<b>{name}</b> was revoked: its key no longer works.")
KEY_ROTATED_TOAST = Text("New key sent below.")

BUTTON_ADD_DEVICE = Text("➕ Add device")
BUTTON_RENAME = Text("✏️ Rename")
BUTTON_LOT_SIZE = Text("📏 Lot size")
BUTTON_SYMBOLS = Text("🔤 Symbols")
BUTTON_MAX_AGE = Text("⏱ Max signal age")
BUTTON_PAUSE = Text("⏸ Pause")
BUTTON_RESUME = Text("▶️ Resume")
BUTTON_ROTATE = Text("🔑 Rotate key")
BUTTON_REVOKE = Text("🗑 Revoke")
BUTTON_DEVICES = Text("« Devices")
BUTTON_BACK = Text("« Back")
BUTTON_PAIRS = Text("Pairs")
BUTTON_PREFIX = Text("Prefix")
BUTTON_SUFFIX = Text("Suffix")
BUTTON_CONFIRM_ROTATE = Text("Yes, rotate the key")
BUTTON_CONFIRM_REVOKE = Text("Yes, revoke it")
BUTTON_NO = Text("No, keep it")
BUTTON_SETTINGS = Text("⚙️ Settings")
AGO_SECONDS = Text("{n} s ago")
AGO_MINUTES = Text("{n} min ago")
AGO_HOURS = Text("{n} h ago")
AGO_DAYS = Text("{n} days ago")
LOT = Text("lot {lot}")
# How a device in a risk mode sizes (the list here, the size screen in texts/trading.py).
SIZE_RISK_BALANCE = Text("risk {percent}% of the balance")
SIZE_RISK_EQUITY = Text("risk {percent}% of the equity")
SIZE_RISK_MONEY = Text("risk {amount} per trade")
SECONDS = Text("{n} s")
KEY_ROTATED_AT = Text("rotated {at} UTC")
KEY_SINCE = Text("since {at} UTC")


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
        return AGO_SECONDS.format(n=seconds)
    if seconds < 2 * 3600:
        return AGO_MINUTES.format(n=seconds // 60)
    if seconds < 2 * 86400:
        return AGO_HOURS.format(n=seconds // 3600)
    return AGO_DAYS.format(n=seconds // 86400)


def device_presence(device: DeviceDTO, now: datetime, online_window: int) -> str:
    if device.last_seen_at is None:
        return str(NEVER_SEEN)
    if device.is_online(now, online_window):
        return str(ONLINE)
    return LAST_SEEN.format(ago=ago(now - device.last_seen_at))


def device_summary_line(device: DeviceDTO, now: datetime, online_window: int) -> str:
    parts = [
        f"<b>{html.quote(device.name)}</b>",
        device.platform.label,
        device_presence(device, now, online_window),
    ]
    if device.paused:
        parts.append(str(DEVICE_PAUSED))
    parts.append(size_summary(device))
    return " · ".join(parts)


def size_summary(device: DeviceDTO) -> str:
    """How the device sizes its trades, in a few words (a risk mode falls back to the lot
    size where it has no figure yet, as the server does)."""
    if device.sizing_mode == SizingMode.RISK_PERCENT and device.risk_percent is not None:
        template = SIZE_RISK_BALANCE if device.risk_of == RiskOf.BALANCE else SIZE_RISK_EQUITY
        return template.format(percent=f"{device.risk_percent.normalize():f}")
    if device.sizing_mode == SizingMode.RISK_MONEY and device.risk_money_minor is not None:
        amount = (Decimal(device.risk_money_minor) / 100).quantize(Decimal("0.01"))
        return SIZE_RISK_MONEY.format(amount=f"{amount:f}")
    return LOT.format(lot=format_lot(device.lot_size))


def device_list(devices: list[DeviceDTO], now: datetime, *, limit: int, online_window: int) -> str:
    if not devices:
        return str(DEVICES_EMPTY)
    lines = [device_summary_line(device, now, online_window) for device in devices]
    header = DEVICES_HEADER.format(count=len(devices), limit=limit)
    return f"{header}\n\n" + "\n".join(lines) + f"\n\n{DEVICES_PICK}"


def symbol_pairs(device: DeviceDTO) -> str:
    pairs = ", ".join(
        f"{html.quote(source)}={html.quote(target)}"
        for source, target in sorted(device.symbol_map.items())
    )
    return pairs or str(NONE_SET)


def symbol_preview(device: DeviceDTO) -> str:
    return ", ".join(
        f"{symbol} → <code>{html.quote(device.map_symbol(symbol))}</code>"
        for symbol in PREVIEW_SYMBOLS
    )


def device_card(device: DeviceDTO, now: datetime, online_window: int) -> str:
    status = device_presence(device, now, online_window)
    status += f", {DEVICE_PAUSED if device.paused else DEVICE_ACTIVE}"
    key_date = (
        KEY_ROTATED_AT.format(at=f"{device.key_rotated_at:%Y-%m-%d %H:%M}")
        if device.key_rotated_at is not None
        else KEY_SINCE.format(at=f"{device.created_at:%Y-%m-%d %H:%M}")
    )
    return DEVICE_CARD.format(
        name=html.quote(device.name),
        platform=device.platform.label,
        device_id=device.public_id,
        status=status,
        lot_size=format_lot(device.lot_size),
        symbols=symbol_preview(device),
        max_age=SECONDS.format(n=device.max_signal_age),
        key_version=device.key_version,
        key_date=key_date,
    )


def symbols_card(device: DeviceDTO) -> str:
    return SYMBOLS_CARD.format(
        name=html.quote(device.name),
        pairs=symbol_pairs(device),
        prefix=f"<code>{html.quote(device.symbol_prefix)}</code>"
        if device.symbol_prefix
        else str(NONE_SET),
        suffix=f"<code>{html.quote(device.symbol_suffix)}</code>"
        if device.symbol_suffix
        else str(NONE_SET),
        preview=symbol_preview(device),
    )


def credentials(device: DeviceDTO, creds: Credentials, server_url: str) -> str:
    mt4 = device.platform.value == "mt4"
    return CREDENTIALS.format(
        name=html.quote(device.name),
        platform=device.platform.label,
        device_id=creds.device_id,
        secret=creds.secret,
        server_url=html.quote(server_url),
        algo_button="AutoTrading" if mt4 else "Algo Trading",
        ea_file="ea/mql4/SignalBridge.mq4" if mt4 else "ea/mql5/SignalBridge.mq5",
        experts_folder="MQL4/Experts" if mt4 else "MQL5/Experts",
    )


def key_rotated(device: DeviceDTO, creds: Credentials) -> str:
    return KEY_ROTATED.format(
        name=html.quote(device.name), device_id=creds.device_id, secret=creds.secret
    )
