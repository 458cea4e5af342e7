"""Every text the bot sends, in one place. HTML parse mode; user values are quoted."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from aiogram import html

from bot.chat.commands import CommandInfo
from bot.domain.signal_dto import ApprovalDTO, DeviceLine, SignalCounts, SignalDTO
from bot.domain.signal_rules import format_decimal

if TYPE_CHECKING:
    from bot.domain.devices import Credentials, DeviceDTO

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


# --- affiliates and checkout ---

ADMIN_ONLY = "This command is for admins."
DATE_FORMAT = "%Y-%m-%d %H:%M UTC"


def when(moment: datetime) -> str:
    return moment.strftime(DATE_FORMAT)


def too_long(what: str, limit: int) -> str:
    return f"{what} is too long: at most {limit} characters."


# /link and referral attribution
LINK = (
    "<b>Your referral link</b>\n{link}\n\n"
    "Everyone who starts the bot through it for the first time becomes your referral, and "
    "you earn on their subscriptions and trades.\n\n"
    "<b>Your tier: {tier}</b>\n"
    "• {share} of each subscription payment\n"
    "• {per_lot} per lot they trade\n"
    "Active referrals: {active} of {total}.\n"
    "{next_tier}\n\n"
    "/stats shows your earnings."
)
LINK_SHARE_BUTTON = "Share link"
LINK_SHARE_TEXT = "Trading signals straight to MetaTrader, approved in Telegram:"
NEXT_TIER = "{needed} more active referral{s} to reach <b>{name}</b> ({share}, {per_lot} per lot)."
TOP_TIER = "This is the top tier."
REFERRAL_JOINED = "🎉 <b>{name}</b> joined through your referral link."


def next_tier_line(needed: int, name: str, share: str, per_lot: str) -> str:
    return NEXT_TIER.format(
        needed=needed,
        s="" if needed == 1 else "s",
        name=html.quote(name),
        share=share,
        per_lot=per_lot,
    )


def paysupport_question(user_id: int, first_name: str, username: str | None, question: str) -> str:
    return PAYSUPPORT_QUESTION.format(
        name=html.quote(first_name),
        username=f" @{html.quote(username)}" if username else "",
        user_id=user_id,
        question=html.quote(question),
    )


def referral_joined(first_name: str) -> str:
    return REFERRAL_JOINED.format(name=html.quote(first_name))


# /subscribe and payments
SUBSCRIBE = "<b>Subscription</b>\n{status}\n\nChoose a plan; you pay with Telegram Stars."
SUBSCRIPTION_ACTIVE = "Your plan: <b>{plan}</b>, active until {expires}."
SUBSCRIPTION_EXPIRED = "Your subscription ended on {expires}."
SUBSCRIPTION_NONE = "You have no subscription yet."
NO_PLANS = "No plans are on sale right now."
PLAN_BUTTON = "{name} · {stars} ⭐ · {days} days"
PLAN_GONE = "That plan is not on sale any more. /subscribe shows the current plans."
INVOICE_DESCRIPTION = (
    "{days} days of signals delivered to your terminals, added to your current plan."
)
CHECKOUT_UNKNOWN_INVOICE = "This invoice is not valid. Please start again with /subscribe."
CHECKOUT_PLAN_GONE = "This plan is not on sale any more. Please choose again with /subscribe."
CHECKOUT_PRICE_CHANGED = "The price of this plan has changed. Please start again with /subscribe."
PAYMENT_CONFIRMED = (
    "✅ Payment received: {stars} ⭐ for <b>{plan}</b>.\n"
    "Your subscription now runs until <b>{expires}</b>.\n"
    "Receipt id: <code>{charge_id}</code> (keep it for /paysupport)."
)
PAYMENT_UNMATCHED = (
    "We received your payment of {stars} ⭐ but could not match it to a plan. "
    "Nothing is lost: write to /paysupport with the id <code>{charge_id}</code>."
)
COMMISSION_EARNED = (
    "💰 Your referral <b>{name}</b> subscribed: you earned {amount} "
    "(pending until {available}, then available for /payout)."
)
PAYSUPPORT = (
    "<b>Payment support</b>\n"
    "Subscriptions are paid with Telegram Stars and start at once; each purchase adds its "
    "days to your current plan. Refunds go back to your Stars balance and shorten the "
    "subscription by the days of that purchase.\n\n"
    "Something wrong with a payment? Send <code>/paysupport</code> followed by your question "
    "and the receipt id; the admins get it and answer you here.{contact}"
)
PAYSUPPORT_CONTACT = "\nYou can also reach {contact}."
PAYSUPPORT_SENT = "Your question was sent to the admins. They will answer you here."
PAYSUPPORT_QUESTION = (
    "<b>Payment question</b> from {name}{username} (id <code>{user_id}</code>, "
    '<a href="tg://user?id={user_id}">open chat</a>):\n{question}'
)
PAYSUPPORT_PAYMENTS = "\n\n<b>Your recent payments</b>\n{lines}"
PAYSUPPORT_PAYMENT_LINE = "{paid} · {stars} ⭐ · {plan} · <code>{charge_id}</code>{refunded}"
REFUNDED_MARK = " · refunded"

# /refund (admins)
REFUND_USAGE = (
    "Usage: /refund &lt;charge id&gt; (the receipt id shown to the user and in /paysupport)."
)
REFUND_UNKNOWN_CHARGE = "No payment has that charge id."
REFUND_ALREADY = "That payment was refunded already."
REFUND_TELEGRAM_REFUSED = "Telegram refused the refund: {reason}"
REFUND_DONE = (
    "Refunded {stars} ⭐ to user {user_id} (<code>{charge_id}</code>).\n"
    "Subscription now ends {expires}.\n{commission}"
)
REFUND_NO_COMMISSION = "No commission was attached."
REFUND_COMMISSION = (
    "Commission of {amount} reversed (it was {state}); the affiliate's balance is now {balance}."
)
REFUND_USER = (
    "Your payment <code>{charge_id}</code> of {stars} ⭐ was refunded to your Stars balance. "
    "Your subscription now ends {expires}."
)
REFUND_AFFILIATE = (
    "A payment by one of your referrals was refunded, so its commission of {amount} was "
    "reversed. Your available balance is now {balance}."
)
NO_SUBSCRIPTION_END = "—"


# /stats
STATS = (
    "<b>Your affiliate stats</b>\n"
    "Referrals: {total} in total, {active} active\n"
    "Tier: <b>{tier}</b> ({share} of payments, {per_lot} per lot)\n"
    "{next_tier}\n\n"
    "<b>Commissions</b>\n"
    "Pending (on hold {hold_days} days): {pending} ({pending_n})\n"
    "Available: {available} ({available_n})\n"
    "Paid: {paid} ({paid_n})\n"
    "Reversed: {reversed} ({reversed_n})\n\n"
    "<b>Balance available for /payout: {balance}</b>\n"
    "In payout requests: {reserved}\n"
    "Paid out in total: {paid_out}"
)
STATS_CHART_BUTTON = "📈 Chart"
CHART_CAPTION = "Your earnings per day over the last {days} days: {total} in total."
CHART_TITLE = "Earnings per day, last {days} days ({currency})"
CHART_PENDING = "pending"
CHART_CONFIRMED = "available / paid"

# /payout
PAYOUT_BELOW_MINIMUM = (
    "Your available balance is {balance}. Payouts start at {minimum}: {missing} more to go."
    "{pending}"
)
PAYOUT_PENDING_NOTE = "\n{pending} is still on hold and becomes available over the next days."
PAYOUT_CHOOSE_METHOD = "Your available balance is <b>{balance}</b>.\nHow would you like to be paid?"
PAYOUT_ASK_DESTINATION = "Send {asks_for}, for example:\n<code>{example}</code>\n\n/cancel stops."
PAYOUT_ASK_AMOUNT = (
    "How much? Press <b>All</b> for {balance}, or type an amount between {minimum} and {balance}."
)
PAYOUT_ALL_BUTTON = "All: {balance}"
PAYOUT_CONFIRM = (
    "<b>Please check your payout request</b>\n"
    "Amount: <b>{amount}</b>\nMethod: {method}\nTo: <code>{destination}</code>\n\n"
    "The amount is reserved when you confirm."
)
PAYOUT_CONFIRM_BUTTON = "✅ Confirm"
PAYOUT_CANCEL_BUTTON = "Cancel"
PAYOUT_CANCELLED = "Payout request cancelled. Nothing was reserved."
PAYOUT_REQUESTED = (
    "Request #{id} sent: {amount} via {method}. An admin will review it; "
    "you will hear from me at each step. /payout history shows your requests."
)
PAYOUT_METHOD_GONE = "That payout method is not offered any more. Start again with /payout."
PAYOUT_ALREADY_SENT = "This request was already sent. /payout history shows it."
PAYOUT_NOT_FOUND = "There is no such payout request."
PAYOUT_REASON_EMPTY = "Please send the reason as text."
PAYOUT_FLOW_EXPIRED = "This payout screen is out of date. Start again with /payout."
PAYOUT_TEXT_EXPECTED = "Please send it as a text message, or /cancel."
PAYOUT_APPROVED_USER = (
    "Your payout request #{id} of {amount} was approved. The transfer follows shortly."
)
PAYOUT_REJECTED_USER = (
    "Your payout request #{id} of {amount} was rejected: {reason}\n"
    "The amount is back in your balance."
)
PAYOUT_PAID_USER = (
    "💸 Your payout #{id} of {amount} was sent to <code>{destination}</code>.{reference}"
)
PAYOUT_REFERENCE = "\nReference: <code>{reference}</code>"
HISTORY_HEADER = "<b>Your payout requests</b> (page {page} of {pages})"
HISTORY_EMPTY = "You have not requested a payout yet. /payout starts one."
HISTORY_LINE = "#{id} · {date} · {amount} · {method} · <b>{state}</b>{extra}"
HISTORY_PREV = "‹ Prev"
HISTORY_NEXT = "Next ›"
PAYOUT_STATE_NAMES = {
    "requested": "waiting for review",
    "approved": "approved",
    "paid": "paid",
    "rejected": "rejected",
}

# payout review (admins)
PAYOUT_CARD = (
    "<b>Payout request #{id}</b>\n"
    "From: {name}{username} (id <code>{user_id}</code>)\n"
    "Amount: <b>{amount}</b>\nMethod: {method}\nTo: <code>{destination}</code>\n"
    "Requested: {requested}\nState: <b>{state}</b>{extra}"
)
PAYOUT_APPROVE_BUTTON = "✅ Approve"
PAYOUT_REJECT_BUTTON = "❌ Reject"
PAYOUT_PAID_BUTTON = "💸 Mark paid"
PAYOUT_OPEN_BUTTON = "#{id} · {amount} · {state}"
PAYOUT_ASK_REASON = (
    "Send the reason for rejecting request #{id} (the user will read it), or /cancel."
)
PAYOUT_ASK_REFERENCE = (
    "Send the transaction reference for request #{id} (hash or bank reference), "
    "or press the button to mark it paid without one. /cancel stops."
)
PAYOUT_NO_REFERENCE_BUTTON = "Paid, no reference"
PAYOUT_DECIDED = "Request #{id} is now {state}."
PAYOUTS_NONE = "No payout requests are waiting."
PAYOUTS_HEADER = (
    "<b>Open payout requests</b> ({shown} of {total}, oldest first). Press one to review it."
)


def payout_below_minimum(minimum: str) -> str:
    return f"Payouts start at {minimum}."


def payout_above_balance(balance: str) -> str:
    return f"That is more than your available balance ({balance})."


def payout_already(payout_id: int, state: str) -> str:
    name = PAYOUT_STATE_NAMES.get(state, state)
    return f"Request #{payout_id} is {name} now; that step does not apply."


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
BUTTON_BACK_TO_SIGNALS = "« All open signals"

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


# --- devices ---
DEVICE_PLATFORMS = {"mt4": "MT4", "mt5": "MT5"}
PREVIEW_SYMBOLS = ("EURUSD", "XAUUSD")

DEVICES_HEADER = "<b>Your devices</b> ({count} of {limit})"
DEVICES_EMPTY = (
    "<b>Your devices</b>\n\n"
    "No device yet. A device is our Expert Advisor in a MetaTrader terminal (or the Python "
    "agent): add one, paste its Device ID and Secret into the EA, and approved signals "
    "trade there."
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
KEY_ROTATED = (
    "🔑 New key for <b>{name}</b>. The old secret no longer works; put the new one into the "
    "EA's inputs (or the Python agent's SIGNALBRIDGE_SECRET) and restart it:\n\n"
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


def device_summary_line(device: DeviceDTO, now: datetime, online_window: int) -> str:
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
    lines = [device_summary_line(device, now, online_window) for device in devices]
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


# --- webhook and protection ---
SLOW_DOWN = "Slow down: try again in {seconds} s."


def slow_down(seconds: int) -> str:
    return SLOW_DOWN.format(seconds=seconds)


# --- execution reports ---


def fill_notice(
    device: str,
    symbol: str,
    side: str,
    action: str,
    fill_price: Decimal,
    volume: Decimal,
    profit: Decimal | None,
) -> str:
    """The owner's message about a fill: an opened position, or a part of it closed."""
    what = "closed" if action == "close" else f"{html.quote(side)} filled"
    text = (
        f"✅ <b>{html.quote(device)}</b>: {html.quote(symbol)} {what} "
        f"{price(volume)} @ <code>{price(fill_price)}</code>"
    )
    if profit is not None:
        text += f", profit {format_decimal(profit)}"
    return text


def error_notice(device: str, symbol: str, side: str, action: str, code: int, message: str) -> str:
    return (
        f"⚠️ <b>{html.quote(device)}</b>: {html.quote(symbol)} {html.quote(side)} "
        f"({html.quote(action)}) failed, code {code}: {html.quote(message)}"
    )


# --- inbox: failed updates and dead letters ---

APOLOGY_ADMINS_TOLD = (
    "Sorry, something went wrong on our side with this request. The admins have been told "
    "and will run it again once it is fixed."
)
DEAD_LETTERS_NONE = "No dead letters: every update went through."
DEAD_LETTER_RETRY_USAGE = "Usage: /retry <update id> (see /deadletters)."


def dead_letter_notice(
    update_id: int, user_id: int | None, error: str, attempts: int, *, again: bool = False
) -> str:
    """To every admin, once per dead letter (and once more per failed /retry)."""
    how = "failed again after a retry" if again else f"failed {attempts} times in a row"
    who = f"user <code>{user_id}</code>" if user_id is not None else "no user"
    return (
        f"⚠️ Update <code>{update_id}</code> ({who}) {how} "
        f"(<code>{html.quote(error)}</code>) and is kept as a dead letter.\n"
        f"/retry {update_id} runs it again; /deadletters lists them all."
    )


def dead_letter_line(
    update_id: int, user_id: int | None, error: str, attempts: int, last_failed_at: datetime
) -> str:
    who = f"user <code>{user_id}</code>" if user_id is not None else "no user"
    return (
        f"• <code>{update_id}</code> {who}: <code>{html.quote(error)}</code>, "
        f"{attempts} attempts, last {last_failed_at:%Y-%m-%d %H:%M} UTC — /retry {update_id}"
    )


def dead_letters_list(lines: list[str], total: int) -> str:
    more = f"\n…and {total - len(lines)} more." if total > len(lines) else ""
    return f"<b>Dead letters</b> ({total}), oldest first:\n" + "\n".join(lines) + more


def dead_letter_unknown(update_id: int) -> str:
    return f"There is no dead letter <code>{update_id}</code> (see /deadletters)."


def dead_letter_retrying(update_id: int) -> str:
    return f"Running update <code>{update_id}</code> again; you will hear how it went."


def dead_letter_done(update_id: int) -> str:
    return f"✅ Update <code>{update_id}</code> went through on its retry."
