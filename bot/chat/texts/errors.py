"""What each domain error code says to the user (bot/domain/errors.py)."""

from __future__ import annotations

from decimal import Decimal

from aiogram import html

from bot.chat.i18n import Text
from bot.chat.texts.devices import format_lot
from bot.chat.texts.payouts import state_name
from bot.chat.texts.signals import SYNTAX_PROBLEMS, syntax_problem
from bot.chat.texts.trading import TRADE_MESSAGES
from bot.domain.errors import AppError, ErrorCode
from bot.domain.signal_syntax import SignalSyntaxError

MESSAGES: dict[ErrorCode, Text] = {
    ErrorCode.NOT_AVAILABLE: Text("This is not available any more."),
    ErrorCode.NAME_LENGTH: Text("The name must be 1-32 characters."),
    ErrorCode.NAME_ONE_LINE: Text("The name must fit on one line, without special characters."),
    ErrorCode.NAME_SLASH: Text("The name cannot start with /."),
    ErrorCode.NAME_TAKEN: Text("You already have a device named <b>{name}</b>; pick another name."),
    ErrorCode.LOT_SIZE_INVALID: Text("Send a lot size such as 0.10, from {min} to {max}."),
    ErrorCode.MAX_AGE_INVALID: Text(
        "Send a number of seconds from {min} to {max}, such as 300 (or 5m)."
    ),
    ErrorCode.PAIR_INVALID: Text(
        "I can't read <code>{item}</code>: write pairs as <code>PROVIDER=YOURS</code>, "
        "e.g. <code>XAUUSD=GOLD</code>, using only letters, digits and . _ # -"
    ),
    ErrorCode.PAIR_DUPLICATE: Text("<code>{symbol}</code> appears twice."),
    ErrorCode.PAIRS_TOO_MANY: Text("At most {limit} pairs, please."),
    ErrorCode.AFFIX_INVALID: Text(
        "Use up to 16 letters, digits or . _ # - (e.g. <code>.m</code>), or <code>-</code> "
        "for none."
    ),
    ErrorCode.DEVICE_LIMIT_REACHED: Text(
        "You have {limit} devices, the most allowed. Revoke one in its settings to add another."
    ),
    ErrorCode.LOSS_LIMIT_NOT_TRIPPED: Text(
        "The daily loss limit of this device is not holding anything today."
    ),
    ErrorCode.PAYOUT_BELOW_MINIMUM: Text("Payouts start at {minimum}."),
    ErrorCode.PAYOUT_ABOVE_BALANCE: Text("That is more than your available balance ({balance})."),
    ErrorCode.PAYOUT_METHOD_GONE: Text(
        "That payout method is not offered any more. Start again with /payout."
    ),
    ErrorCode.PAYOUT_ALREADY_SENT: Text("This request was already sent. /payout history shows it."),
    ErrorCode.PAYOUT_NOT_FOUND: Text("There is no such payout request."),
    ErrorCode.PAYOUT_STEP_DONE: Text("Request #{id} is {state} now; that step does not apply."),
    ErrorCode.PAYOUT_REASON_EMPTY: Text("Please send the reason as text."),
    ErrorCode.REASON_TOO_LONG: Text("The reason is too long: at most {limit} characters."),
    ErrorCode.REFERENCE_TOO_LONG: Text("The reference is too long: at most {limit} characters."),
    ErrorCode.AMOUNT_NOT_A_NUMBER: Text("That is not an amount. Type a number like {example}."),
    ErrorCode.AMOUNT_NOT_POSITIVE: Text("The amount must be a positive number."),
    ErrorCode.AMOUNT_TOO_PRECISE: Text("{currency} amounts have at most {digits} decimal places."),
    ErrorCode.AMOUNT_TOO_LARGE: Text("That amount is too large."),
    ErrorCode.TRC20_INVALID: Text(
        "That is not a valid TRC-20 address: it has 34 characters, starts with T, "
        "and its last characters are a checksum. Copy it from your wallet and send "
        "it again."
    ),
    ErrorCode.IBAN_INVALID: Text(
        "That is not an IBAN: it starts with a country code and two check digits, "
        "e.g. DE89 3704 0044 0532 0130 00."
    ),
    ErrorCode.IBAN_LENGTH: Text(
        "An IBAN from {country} has {expected} characters; this one has {actual}."
    ),
    ErrorCode.IBAN_CHECKSUM: Text("The IBAN's check digits do not match: a character is mistyped."),
    ErrorCode.METHOD_NOT_OFFERED: Text("That payout method is not offered."),
    ErrorCode.CHECKOUT_UNKNOWN_INVOICE: Text(
        "This invoice is not valid. Please start again with /subscribe."
    ),
    ErrorCode.CHECKOUT_PLAN_GONE: Text(
        "This plan is not on sale any more. Please choose again with /subscribe."
    ),
    ErrorCode.CHECKOUT_PRICE_CHANGED: Text(
        "The price of this plan has changed. Please start again with /subscribe."
    ),
    ErrorCode.REFUND_UNKNOWN_CHARGE: Text("No payment has that charge id."),
    ErrorCode.REFUND_ALREADY: Text("That payment was refunded already."),
    ErrorCode.REFUND_TELEGRAM_REFUSED: Text("Telegram refused the refund: {reason}"),
    ErrorCode.SIGNAL_NOT_FOUND: Text("There is no such signal."),
    ErrorCode.SIGNAL_NOT_OPEN: Text("This signal is {state}; it cannot be changed any more."),
    ErrorCode.SIGNAL_INVALID: Text("The signal is not valid: {listing}."),
    **TRADE_MESSAGES,
}
# Errors worded per kind of problem (every kind has its sentence).
BY_PROBLEM = {ErrorCode.SIGNAL_SYNTAX: SYNTAX_PROBLEMS}
# Errors whose sentence comes with them: the provider API's and the device protocol's
# (English, part of those contracts), shown as they are.
AS_SENT = {
    ErrorCode.UNKNOWN_INSTRUCTION: "message",
    ErrorCode.UNKNOWN_SIGNAL: "message",
    ErrorCode.REPORT_CONFLICT: "message",
}


def _param(value: object) -> object:
    """A value as the message shows it: lots as lots, text quoted for HTML."""
    if isinstance(value, Decimal):
        return format_lot(value)
    if isinstance(value, str):
        return html.quote(value)
    return value


def error_text(error: AppError) -> str:
    """The user's sentence for a domain error, in the current language."""
    if isinstance(error, SignalSyntaxError):
        return syntax_problem(error)
    if error.code in AS_SENT:
        return html.quote(str(error.params[AS_SENT[error.code]]))
    params = {name: _param(value) for name, value in error.params.items()}
    if error.code is ErrorCode.PAYOUT_STEP_DONE:
        params["state"] = state_name(str(error.params["state"]))
    if error.code is ErrorCode.SIGNAL_INVALID:
        fields: dict[str, str] = error.params["fields"]
        params["listing"] = html.quote("; ".join(f"{k}: {v}" for k, v in fields.items()))
    return MESSAGES[error.code].format(**params)


def code_text(code: ErrorCode) -> str:
    """A code's sentence where there are no values to fill in (pre-checkout answers)."""
    return str(MESSAGES[code])
