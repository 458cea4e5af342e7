"""Every text the bot sends, in one place. HTML parse mode; user values are quoted."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from aiogram import html

from bot.commands import CommandInfo
from bot.services.signal_dto import ApprovalDTO, DeviceLine, SignalCounts, SignalDTO
from bot.services.signal_rules import format_decimal

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


# --- signals ---

SIDE_MARK = {"buy": "🟢", "sell": "🔴"}
DECISION_LINES = {
    "approved": "✅ You approved this signal.",
    "auto": "⚡ Auto-approved (auto-approve is on in /settings).",
    "rejected": "❌ You rejected this signal.",
    "expired": "⌛ Expired before you decided.",
}
PENDING_LINE = "Approve to execute it on your devices, or reject it."
DEVICE_STATE_WORDS = {
    "waiting": "waiting",
    "acked": "accepted",
    "filled": "filled",
    "error": "error",
    "closed": "closed",
}
SIGNAL_STATE_WORDS = {
    "open": "open",
    "cancelled": "cancelled",
    "closed": "closed",
    "expired": "expired",
}
BUTTON_APPROVE = "✅ Approve"
BUTTON_REJECT = "❌ Reject"
BUTTON_SEND = "📤 Send"
BUTTON_DISCARD = "🗑 Discard"
BUTTON_MODIFY = "✏️ Modify SL/TP"
BUTTON_CANCEL_SIGNAL = "🚫 Cancel signal"
BUTTON_BACK = "« All open signals"

VOTE_APPROVED = "Approved."
VOTE_REJECTED = "Rejected."
VOTE_NOT_SENT = "This signal was not sent to you."
VOTE_ALREADY = {
    "approved": "You already approved this signal.",
    "auto": "This signal was auto-approved for you.",
    "rejected": "You already rejected this signal.",
    "expired": "This signal expired before you decided.",
}
VOTE_SIGNAL_ENDED = {
    "cancelled": "This signal was cancelled by the provider.",
    "closed": "This signal was closed by the provider.",
    "expired": "This signal has expired.",
}
ADMIN_ONLY = "That command is for admins."
SIGNAL_SYNTAX_HELP = (
    "Write it like this:\n<code>{example}</code>\n\n"
    "Symbol and side (buy or sell) first; then, in any order: <code>limit PRICE</code> or "
    "<code>stop PRICE</code> (market if neither), <code>sl PRICE</code>, "
    "<code>tp PRICE</code> (repeat for more), <code>exp 15m</code> (s, m, h or d); any "
    "text after the options is the comment."
)
LEVELS_HELP = (
    "Write it like this:\n<code>{example}</code>\n"
    "sl, tp or both (repeat tp for several); <code>sl none</code> removes the stop loss, "
    "<code>tp none</code> the take profits. /cancel to stop."
)
DRAFT_GONE = "This preview is gone; send /signal again."
DRAFT_DISCARDED = "Discarded. Nothing was sent."
NO_OPEN_SIGNALS = "There are no open signals. Post one with /signal."
OPEN_SIGNALS_HEADER = "<b>Open signals</b> ({count}). Pick one to manage it:"
SIGNAL_NOT_FOUND = "There is no such signal."
SIGNAL_NOT_OPEN = "This signal is {state}; it cannot be changed any more."
SIGNAL_CANCELLED_OK = "Signal cancelled."
SIGNAL_MODIFIED_OK = "Levels updated; every recipient's message shows them."
MODIFY_PROMPT = "Send the new levels for {title}.\n\n{help}"
SETTINGS_TITLE = "<b>Your settings</b>"
SETTINGS_LINES = (
    ("auto_approve", "Auto-approve signals", "signals go to your devices without a press"),
    ("notify_fills", "Fill notifications", "a message when a device fills an order"),
    ("notify_errors", "Error notifications", "a message when a device reports an error"),
)


def price(value: Decimal) -> str:
    return format_decimal(value)


def percent(fraction: Decimal) -> str:
    return f"{format_decimal(fraction * 100)}%"


def utc_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def duration(seconds: int) -> str:
    if seconds % 86400 == 0:
        return f"{seconds // 86400} d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def signal_title(signal: SignalDTO) -> str:
    return f"{signal.side.upper()} {html.quote(signal.symbol)}"


def signal_card(signal: SignalDTO) -> str:
    """The signal's levels, shared by the recipients' messages, previews and /signals."""
    lines = [
        f"{SIDE_MARK.get(signal.side, '')} <b>{signal_title(signal)}</b> · {signal.order_type}"
    ]
    if signal.entry is not None:
        lines.append(f"Entry: <code>{price(signal.entry)}</code>")
    lines.append(
        f"SL: <code>{price(signal.stop_loss)}</code>" if signal.stop_loss is not None else "SL: —"
    )
    if signal.take_profit:
        levels = " · ".join(f"<code>{price(tp)}</code>" for tp in signal.take_profit)
        lines.append(f"TP: {levels}")
    else:
        lines.append("TP: —")
    if signal.comment:
        lines.append(f"💬 {html.quote(signal.comment)}")
    window = int((signal.expires_at - signal.issued_at).total_seconds())
    lines.append(f"⏳ Valid {duration(window)}, until {utc_time(signal.expires_at)}")
    return "\n".join(lines)


def signal_state_lines(signal: SignalDTO) -> list[str]:
    lines = []
    if signal.modified_at is not None:
        lines.append(f"✏️ Levels changed by the provider at {utc_time(signal.modified_at)}.")
    if signal.state == "open" and signal.closed_fraction > 0:
        lines.append(f"📉 {percent(signal.closed_fraction)} of the position closed so far.")
    if signal.state == "cancelled":
        lines.append("🚫 Cancelled by the provider.")
    elif signal.state == "closed":
        lines.append("🔒 Closed by the provider.")
    elif signal.state == "expired":
        lines.append("⌛ Expired: nobody approved it in time.")
    return lines


def device_line(device: DeviceLine) -> str:
    name = html.quote(device.name)
    word = DEVICE_STATE_WORDS[device.state]
    detail = ""
    if device.state == "acked" and device.ticket is not None:
        detail = f", ticket {device.ticket}"
    elif device.state == "filled" and device.price is not None and device.volume is not None:
        detail = f" {price(device.volume)} @ <code>{price(device.price)}</code>"
    elif device.state == "error":
        code = f" {device.code}" if device.code is not None else ""
        message = f": {html.quote(device.message)}" if device.message else ""
        detail = f"{code}{message}"
    elif device.state == "closed" and device.profit is not None:
        detail = f", profit {format_decimal(device.profit)}"
    return f"• {name}: {word}{detail}"


def approval_text(signal: SignalDTO, approval: ApprovalDTO, devices: Sequence[DeviceLine]) -> str:
    parts = [signal_card(signal)]
    status = signal_state_lines(signal)
    if approval.decision in DECISION_LINES:
        status.insert(0, DECISION_LINES[approval.decision])
    elif signal.is_open:
        status.append(PENDING_LINE)
    parts.append("\n".join(status))
    if devices:
        parts.append("\n".join(device_line(device) for device in devices))
    return "\n\n".join(part for part in parts if part)


def signal_preview(signal: SignalDTO, recipients: int) -> str:
    return (
        f"<b>Preview</b>: this is what recipients will see.\n\n{signal_card(signal)}\n\n"
        f"It goes to {recipients} user{'s' if recipients != 1 else ''} when you press Send."
    )


def signal_sent(signal: SignalDTO, recipients: int) -> str:
    return (
        f"📤 Sent {signal_title(signal)} (<code>{signal.public_id}</code>) to {recipients} "
        f"user{'s' if recipients != 1 else ''}. Manage it with /signals."
    )


def signal_help(example: str) -> str:
    return SIGNAL_SYNTAX_HELP.format(example=html.quote(example))


def levels_help(example: str) -> str:
    return LEVELS_HELP.format(example=html.quote(example))


def input_problem(problem: str, help_text: str) -> str:
    """A syntax problem (plain text) and how to write it right."""
    return f"{html.quote(problem)}\n\n{help_text}"


def input_invalid(fields: dict[str, str], names: dict[str, str], help_text: str) -> str:
    """Field problems from the validator, named as the admin writes them."""
    listing = "\n".join(
        f"• {html.quote(names.get(field, field))}: {html.quote(problem)}"
        for field, problem in fields.items()
    )
    return f"That does not work:\n{listing}\n\n{help_text}"


def signal_admin_view(signal: SignalDTO, counts: SignalCounts) -> str:
    lines = [
        f"<code>{signal.public_id}</code> · {SIGNAL_STATE_WORDS.get(signal.state, signal.state)}",
        signal_card(signal),
    ]
    lines.extend(signal_state_lines(signal))
    lines.append(
        f"👥 {counts.recipients} recipients: {counts.approvals} approved, "
        f"{counts.rejections} rejected, {counts.pending} pending, {counts.expired} expired"
    )
    return "\n".join(lines)


def open_signal_button(signal: SignalDTO) -> str:
    return f"{signal.side.upper()} {signal.symbol} · {signal.issued_at.strftime('%m-%d %H:%M')}"


def signal_closed_part(fraction: Decimal, signal: SignalDTO) -> str:
    if signal.state == "closed":
        return "Signal closed."
    return f"Closed {percent(fraction)} of what remained."


def settings_text(values: dict[str, bool]) -> str:
    lines = [SETTINGS_TITLE]
    for key, title, meaning in SETTINGS_LINES:
        mark = "on" if values[key] else "off"
        lines.append(f"<b>{title}</b>: {mark}\n<i>{meaning}</i>")
    lines.append("Press a button to switch.")
    return "\n\n".join(lines)


def settings_button(key: str, on: bool) -> str:
    title = next(title for name, title, _ in SETTINGS_LINES if name == key)
    return f"{'✅' if on else '⬜'} {title}"


def setting_switched(key: str, on: bool) -> str:
    title = next(title for name, title, _ in SETTINGS_LINES if name == key)
    return f"{title}: {'on' if on else 'off'}."
