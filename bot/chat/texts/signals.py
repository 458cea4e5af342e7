"""Signals: the recipients' message, admins' /signal and /signals, votes, /settings."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from aiogram import html

from bot.chat.i18n import Plural, Text
from bot.chat.texts.common import when
from bot.chat.texts.trade import (
    close_result,
    size_preview,
    skipped,
    stop_moved,
    take_profit_moved,
)
from bot.domain.signal_dto import (
    ApprovalDTO,
    DeviceLine,
    PositionResult,
    SignalCounts,
    SignalDTO,
)
from bot.domain.signal_rules import format_decimal
from bot.domain.signal_syntax import CHAT_NAMES, SignalSyntaxError, SyntaxProblem

SIDE_MARK = {"buy": "🟢", "sell": "🔴"}
DECISION_LINES = {
    "approved": Text("✅ You approved this signal."),
    "auto": Text("⚡ Auto-approved (auto-approve is on in /settings)."),
    "rejected": Text("❌ You rejected this signal."),
    "expired": Text("⌛ Expired before you decided."),
}
PENDING_LINE = Text("Approve to execute it on your devices, or reject it.")
DEVICE_STATE_WORDS = {
    "waiting": Text("waiting"),
    "acked": Text("accepted"),
    "filled": Text("filled"),
    "error": Text("error"),
    "closed": Text("closed"),
}
SIGNAL_STATE_WORDS = {
    "open": Text("open"),
    "cancelled": Text("cancelled"),
    "closed": Text("closed"),
    "expired": Text("expired"),
}
BUTTON_APPROVE = Text("✅ Approve")
BUTTON_REJECT = Text("❌ Reject")
BUTTON_SEND = Text("📤 Send")
BUTTON_DISCARD = Text("🗑 Discard")
BUTTON_MODIFY = Text("✏️ Modify SL/TP")
BUTTON_CANCEL_SIGNAL = Text("🚫 Cancel signal")
BUTTON_BACK_TO_SIGNALS = Text("« All open signals")

VOTE_APPROVED = Text("Approved.")
VOTE_REJECTED = Text("Rejected.")
VOTE_NOT_SENT = Text("This signal was not sent to you.")
VOTE_ALREADY = {
    "approved": Text("You already approved this signal."),
    "auto": Text("This signal was auto-approved for you."),
    "rejected": Text("You already rejected this signal."),
    "expired": Text("This signal expired before you decided."),
}
VOTE_SIGNAL_ENDED = {
    "cancelled": Text("This signal was cancelled by the provider."),
    "closed": Text("This signal was closed by the provider."),
    "expired": Text("This signal has expired."),
}
SIGNAL_SYNTAX_HELP = Text(
    "Write it like this:\n<code>{example}</code>\n\n"
    "Symbol and side (buy or sell) first; then, in any order: <code>limit PRICE</code> or "
    "<code>stop PRICE</code> (market if neither), <code>sl PRICE</code>, "
    "<code>tp PRICE</code> (repeat for more), <code>exp 15m</code> (s, m, h or d); any "
    "text after the options is the comment."
)
LEVELS_HELP = Text(
    "Write it like this:\n<code>{example}</code>\n"
    "sl, tp or both (repeat tp for several); <code>sl none</code> removes the stop loss, "
    "<code>tp none</code> the take profits. /cancel to stop."
)
DRAFT_GONE = Text("This preview is gone; send /signal again.")
DRAFT_DISCARDED = Text("Discarded. Nothing was sent.")
NO_OPEN_SIGNALS = Text("There are no open signals. Post one with /signal.")
OPEN_SIGNALS_HEADER = Text("<b>Open signals</b> ({count}). Pick one to manage it:")
SIGNAL_CANCELLED_OK = Text("Signal cancelled.")
SIGNAL_MODIFIED_OK = Text("Levels updated; every recipient's message shows them.")
SIGNAL_CLOSED_OK = Text("Signal closed.")
SIGNAL_CLOSED_PART = Text("Closed {percent} of what remained.")
MODIFY_PROMPT = Text("Send the new levels for {title}.\n\n{help}")
INPUT_INVALID = Text("That does not work:\n{listing}\n\n{help}")

CARD_ENTRY = Text("Entry: <code>{price}</code>")
CARD_VALID = Text("⏳ Valid {duration}, until {until}")
STATE_MODIFIED = Text("✏️ Levels changed by the provider at {at}.")
STATE_PART_CLOSED = Text("📉 {percent} of the position closed so far.")
STATE_CANCELLED = Text("🚫 Cancelled by the provider.")
STATE_CLOSED = Text("🔒 Closed by the provider.")
STATE_EXPIRED = Text("⌛ Expired: nobody approved it in time.")
DEVICE_TICKET = Text(", ticket {ticket}")
DEVICE_PROFIT = Text(", profit {profit}")
SIGNAL_COUNTS = Text(
    "👥 {recipients} recipients: {approvals} approved, "
    "{rejections} rejected, {pending} pending, {expired} expired"
)
PREVIEW = Plural(
    "<b>Preview</b>: this is what recipients will see.\n\n{card}\n\n"
    "It goes to {n} user when you press Send.",
    "<b>Preview</b>: this is what recipients will see.\n\n{card}\n\n"
    "It goes to {n} users when you press Send.",
)
SENT = Plural(
    "📤 Sent {title} (<code>{public_id}</code>) to {n} user. Manage it with /signals.",
    "📤 Sent {title} (<code>{public_id}</code>) to {n} users. Manage it with /signals.",
)
DURATION_DAYS = Text("{n} d")
DURATION_HOURS = Text("{n} h")
DURATION_MINUTES = Text("{n} min")
DURATION_SECONDS = Text("{n} s")

SETTINGS_TITLE = Text("<b>Your settings</b>")
SETTINGS_LINES = (
    (
        "auto_approve",
        Text("Auto-approve signals"),
        Text("signals go to your devices without a press"),
    ),
    ("notify_fills", Text("Fill notifications"), Text("a message when a device fills an order")),
    (
        "notify_errors",
        Text("Error notifications"),
        Text("a message when a device reports an error"),
    ),
    (
        "notify_closes",
        Text("Close notifications"),
        Text("a message when a position closes (take profit, stop loss, Close all, by hand)"),
    ),
)
SETTING_ON = Text("on")
SETTING_OFF = Text("off")
SETTINGS_HINT = Text("Press a button to switch.")


def price(value: Decimal) -> str:
    return format_decimal(value)


def percent(fraction: Decimal) -> str:
    return f"{format_decimal(fraction * 100)}%"


def utc_time(moment: datetime) -> str:
    return when(moment)


def duration(seconds: int) -> str:
    if seconds % 86400 == 0:
        return DURATION_DAYS.format(n=seconds // 86400)
    if seconds % 3600 == 0:
        return DURATION_HOURS.format(n=seconds // 3600)
    if seconds % 60 == 0:
        return DURATION_MINUTES.format(n=seconds // 60)
    return DURATION_SECONDS.format(n=seconds)


def signal_title(signal: SignalDTO) -> str:
    return f"{signal.side.upper()} {html.quote(signal.symbol)}"


def signal_card(signal: SignalDTO) -> str:
    """The signal's levels, shared by the recipients' messages, previews and /signals."""
    lines = [
        f"{SIDE_MARK.get(signal.side, '')} <b>{signal_title(signal)}</b> · {signal.order_type}"
    ]
    if signal.entry is not None:
        lines.append(CARD_ENTRY.format(price=price(signal.entry)))
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
    lines.append(CARD_VALID.format(duration=duration(window), until=utc_time(signal.expires_at)))
    return "\n".join(lines)


def signal_state_lines(signal: SignalDTO) -> list[str]:
    lines = []
    if signal.modified_at is not None:
        lines.append(STATE_MODIFIED.format(at=utc_time(signal.modified_at)))
    if signal.state == "open" and signal.closed_fraction > 0:
        lines.append(STATE_PART_CLOSED.format(percent=percent(signal.closed_fraction)))
    if signal.state == "cancelled":
        lines.append(str(STATE_CANCELLED))
    elif signal.state == "closed":
        lines.append(str(STATE_CLOSED))
    elif signal.state == "expired":
        lines.append(str(STATE_EXPIRED))
    return lines


def result_text(result: PositionResult, currency: str | None) -> str:
    """One position event on a device's line (EA_PROTOCOL 5.4)."""
    if result.event == "closed":
        return close_result(result.reason, result.leg, result.profit, currency)
    if result.event == "sl_moved":
        return stop_moved(result.level, breakeven=result.breakeven)
    return take_profit_moved(result.level)


def device_line(device: DeviceLine) -> str:
    name = html.quote(device.name)
    if device.state == "skipped":
        return f"• {name}: {skipped(device.skip_reason)}"
    if device.state == "preview" and device.preview is not None:
        return f"• {name}: {size_preview(device.preview)}"
    line = _report_line(device)
    if device.results:
        line += " · " + ", ".join(result_text(r, device.currency) for r in device.results)
    return line


def _report_line(device: DeviceLine) -> str:
    name = html.quote(device.name)
    word = DEVICE_STATE_WORDS[device.state]
    detail = ""
    if device.state == "acked" and device.ticket is not None:
        detail = DEVICE_TICKET.format(ticket=device.ticket)
    elif device.state == "filled" and device.price is not None and device.volume is not None:
        detail = f" {price(device.volume)} @ <code>{price(device.price)}</code>"
    elif device.state == "error":
        code = f" {device.code}" if device.code is not None else ""
        message = f": {html.quote(device.message)}" if device.message else ""
        detail = f"{code}{message}"
    elif device.state == "closed" and device.profit is not None:
        detail = DEVICE_PROFIT.format(profit=format_decimal(device.profit))
    return f"• {name}: {word}{detail}"


def approval_text(signal: SignalDTO, approval: ApprovalDTO, devices: Sequence[DeviceLine]) -> str:
    parts = [signal_card(signal)]
    status = signal_state_lines(signal)
    if approval.decision in DECISION_LINES:
        status.insert(0, str(DECISION_LINES[approval.decision]))
    elif signal.is_open:
        status.append(str(PENDING_LINE))
    parts.append("\n".join(status))
    # Size previews only while the owner can still decide (protocol v1.1 devices).
    deciding = approval.is_pending and signal.is_open
    shown = [device for device in devices if device.state != "preview" or deciding]
    if shown:
        parts.append("\n".join(device_line(device) for device in shown))
    return "\n\n".join(part for part in parts if part)


def signal_preview(signal: SignalDTO, recipients: int) -> str:
    return PREVIEW.format(recipients, card=signal_card(signal))


def signal_sent(signal: SignalDTO, recipients: int) -> str:
    return SENT.format(recipients, title=signal_title(signal), public_id=signal.public_id)


def signal_help(example: str) -> str:
    return SIGNAL_SYNTAX_HELP.format(example=html.quote(example))


def levels_help(example: str) -> str:
    return LEVELS_HELP.format(example=html.quote(example))


SYNTAX_PROBLEMS = {
    SyntaxProblem.NO_SYMBOL: Text("Write the symbol and the side after /signal."),
    SyntaxProblem.NO_SIDE: Text("After the symbol comes the side: buy or sell."),
    SyntaxProblem.NOT_A_SIDE: Text("“{word}” is not a side: write buy or sell."),
    SyntaxProblem.NEEDS_PRICE: Text("“{word}” needs a price after it."),
    SyntaxProblem.NEEDS_DURATION: Text("“{word}” needs a duration such as 15m after it."),
    SyntaxProblem.NOT_A_DURATION: Text(
        "“{word}” after exp is not a duration: write e.g. 90s, 15m, 2h or 1d."
    ),
    SyntaxProblem.NO_LEVELS: Text("Send the new levels, e.g. “sl 1.0810 tp 1.0960”."),
    SyntaxProblem.NOT_A_LEVEL: Text("“{word}” is not sl or tp."),
    SyntaxProblem.NEEDS_LEVEL: Text("“{word}” needs a price (or none) after it."),
    SyntaxProblem.TP_NONE_WITH_OTHERS: Text(
        "“tp none” removes the take profits; give no other tp with it."
    ),
    SyntaxProblem.TWICE: Text("{name} is given twice."),
}
ORDER_TYPE_NAME = Text("order type")


def syntax_problem(error: SignalSyntaxError) -> str:
    """What could not be read in a /signal command or a change of levels."""
    name = str(ORDER_TYPE_NAME) if error.field == "order_type" else CHAT_NAMES.get(error.field, "")
    return SYNTAX_PROBLEMS[error.problem].format(word=html.quote(error.word), name=name)


def input_problem(error: SignalSyntaxError, help_text: str) -> str:
    """A syntax problem and how to write it right."""
    return f"{syntax_problem(error)}\n\n{help_text}"


def input_invalid(fields: dict[str, str], names: dict[str, str], help_text: str) -> str:
    """Field problems from the validator, named as the admin writes them."""
    listing = "\n".join(
        f"• {html.quote(names.get(field, field))}: {html.quote(problem)}"
        for field, problem in fields.items()
    )
    return INPUT_INVALID.format(listing=listing, help=help_text)


def state_word(state: str) -> str:
    word = SIGNAL_STATE_WORDS.get(state)
    return str(word) if word is not None else state


def signal_admin_view(signal: SignalDTO, counts: SignalCounts) -> str:
    lines = [f"<code>{signal.public_id}</code> · {state_word(signal.state)}", signal_card(signal)]
    lines.extend(signal_state_lines(signal))
    lines.append(
        SIGNAL_COUNTS.format(
            recipients=counts.recipients,
            approvals=counts.approvals,
            rejections=counts.rejections,
            pending=counts.pending,
            expired=counts.expired,
        )
    )
    return "\n".join(lines)


def open_signal_button(signal: SignalDTO) -> str:
    return f"{signal.side.upper()} {signal.symbol} · {signal.issued_at.strftime('%m-%d %H:%M')}"


def signal_closed_part(fraction: Decimal, signal: SignalDTO) -> str:
    if signal.state == "closed":
        return str(SIGNAL_CLOSED_OK)
    return SIGNAL_CLOSED_PART.format(percent=percent(fraction))


def vote_answer(recorded: bool, decision: str, ended: str | None) -> str:
    """The toast for an Approve / Reject press (see SignalService.decide)."""
    if recorded:
        return str(VOTE_APPROVED if decision == "approved" else VOTE_REJECTED)
    if ended is not None:
        return str(VOTE_SIGNAL_ENDED[ended])
    if decision in VOTE_ALREADY:
        return str(VOTE_ALREADY[decision])
    return str(VOTE_NOT_SENT)


def settings_text(values: dict[str, bool]) -> str:
    lines = [str(SETTINGS_TITLE)]
    for key, title, meaning in SETTINGS_LINES:
        mark = SETTING_ON if values[key] else SETTING_OFF
        lines.append(f"<b>{title}</b>: {mark}\n<i>{meaning}</i>")
    lines.append(str(SETTINGS_HINT))
    return "\n\n".join(lines)


def _setting_title(key: str) -> Text:
    return next(title for name, title, _ in SETTINGS_LINES if name == key)


def settings_button(key: str, on: bool) -> str:
    return f"{'✅' if on else '⬜'} {_setting_title(key)}"


def setting_switched(key: str, on: bool) -> str:
    return f"{_setting_title(key)}: {SETTING_ON if on else SETTING_OFF}."
