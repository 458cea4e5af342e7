"""Notices sent outside an update: fills and errors from devices, dead letters for admins."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from aiogram import html

from bot.chat.i18n import Text
from bot.domain.signal_rules import format_decimal

FILL_OPENED = Text("✅ <b>{device}</b>: {symbol} {side} filled {volume} @ <code>{price}</code>")
FILL_CLOSED = Text("✅ <b>{device}</b>: {symbol} closed {volume} @ <code>{price}</code>")
FILL_PROFIT = Text(", profit {profit}")
ERROR_NOTICE = Text("⚠️ <b>{device}</b>: {symbol} {side} ({action}) failed, code {code}: {message}")

DEAD_LETTERS_NONE = Text("No dead letters: every update went through.")
DEAD_LETTER_RETRY_USAGE = Text("Usage: /retry <update id> (see /deadletters).")
DEAD_LETTER_NOTICE = Text(
    "⚠️ Update <code>{update_id}</code> ({who}) {how} "
    "(<code>{error}</code>) and is kept as a dead letter.\n"
    "/retry {update_id} runs it again; /deadletters lists them all."
)
DEAD_LETTER_AGAIN = Text("failed again after a retry")
DEAD_LETTER_TIMES = Text("failed {attempts} times in a row")
WHO_USER = Text("user <code>{user_id}</code>")
WHO_NOBODY = Text("no user")
DEAD_LETTER_LINE = Text(
    "• <code>{update_id}</code> {who}: <code>{error}</code>, "
    "{attempts} attempts, last {last} UTC — /retry {update_id}"
)
DEAD_LETTERS_HEADER = Text("<b>Dead letters</b> ({total}), oldest first:")
DEAD_LETTERS_MORE = Text("\n…and {more} more.")
DEAD_LETTER_UNKNOWN = Text("There is no dead letter <code>{update_id}</code> (see /deadletters).")
DEAD_LETTER_RETRYING = Text(
    "Running update <code>{update_id}</code> again; you will hear how it went."
)
DEAD_LETTER_DONE = Text("✅ Update <code>{update_id}</code> went through on its retry.")


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
    template = FILL_CLOSED if action == "close" else FILL_OPENED
    text = template.format(
        device=html.quote(device),
        symbol=html.quote(symbol),
        side=html.quote(side),
        volume=format_decimal(volume),
        price=format_decimal(fill_price),
    )
    if profit is not None:
        text += FILL_PROFIT.format(profit=format_decimal(profit))
    return text


def error_notice(device: str, symbol: str, side: str, action: str, code: int, message: str) -> str:
    return ERROR_NOTICE.format(
        device=html.quote(device),
        symbol=html.quote(symbol),
        side=html.quote(side),
        action=html.quote(action),
        code=code,
        message=html.quote(message),
    )


def _who(user_id: int | None) -> str:
    return WHO_USER.format(user_id=user_id) if user_id is not None else str(WHO_NOBODY)


def dead_letter_notice(
    update_id: int, user_id: int | None, error: str, attempts: int, *, again: bool = False
) -> str:
    """To every admin, once per dead letter (and once more per failed /retry)."""
    how = str(DEAD_LETTER_AGAIN) if again else DEAD_LETTER_TIMES.format(attempts=attempts)
    return DEAD_LETTER_NOTICE.format(
        update_id=update_id, who=_who(user_id), how=how, error=html.quote(error)
    )


def dead_letter_line(
    update_id: int, user_id: int | None, error: str, attempts: int, last_failed_at: datetime
) -> str:
    return DEAD_LETTER_LINE.format(
        update_id=update_id,
        who=_who(user_id),
        error=html.quote(error),
        attempts=attempts,
        last=f"{last_failed_at:%Y-%m-%d %H:%M}",
    )


def dead_letters_list(lines: list[str], total: int) -> str:
    more = DEAD_LETTERS_MORE.format(more=total - len(lines)) if total > len(lines) else ""
    return DEAD_LETTERS_HEADER.format(total=total) + "\n" + "\n".join(lines) + more


def dead_letter_unknown(update_id: int) -> str:
    return DEAD_LETTER_UNKNOWN.format(update_id=update_id)


def dead_letter_retrying(update_id: int) -> str:
    return DEAD_LETTER_RETRYING.format(update_id=update_id)


def dead_letter_done(update_id: int) -> str:
    return DEAD_LETTER_DONE.format(update_id=update_id)
