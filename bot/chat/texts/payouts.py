"""/payout and its history; admins' payout review."""

from __future__ import annotations

from bot.chat.i18n import Text

PAYOUT_BELOW_MINIMUM = Text(
    "Your available balance is {balance}. Payouts start at {minimum}: {missing} more to go."
    "{pending}"
)
PAYOUT_PENDING_NOTE = Text("\n{pending} is still on hold and becomes available over the next days.")
PAYOUT_CHOOSE_METHOD = Text(
    "Your available balance is <b>{balance}</b>.\nHow would you like to be paid?"
)
PAYOUT_ASK_DESTINATION = Text(
    "Send {asks_for}, for example:\n<code>{example}</code>\n\n/cancel stops."
)
PAYOUT_ASK_AMOUNT = Text(
    "How much? Press <b>All</b> for {balance}, or type an amount between {minimum} and {balance}."
)
PAYOUT_ALL_BUTTON = Text("All: {balance}")
PAYOUT_CONFIRM = Text(
    "<b>Please check your payout request</b>\n"
    "Amount: <b>{amount}</b>\nMethod: {method}\nTo: <code>{destination}</code>\n\n"
    "The amount is reserved when you confirm."
)
PAYOUT_CONFIRM_BUTTON = Text("✅ Confirm")
PAYOUT_CANCEL_BUTTON = Text("Cancel")
PAYOUT_CANCELLED = Text("Payout request cancelled. Nothing was reserved.")
PAYOUT_REQUESTED = Text(
    "Request #{id} sent: {amount} via {method}. An admin will review it; "
    "you will hear from me at each step. /payout history shows your requests."
)
PAYOUT_METHOD_GONE = Text("That payout method is not offered any more. Start again with /payout.")
PAYOUT_FLOW_EXPIRED = Text("This payout screen is out of date. Start again with /payout.")
PAYOUT_TEXT_EXPECTED = Text("Please send it as a text message, or /cancel.")
PAYOUT_APPROVED_USER = Text(
    "Your payout request #{id} of {amount} was approved. The transfer follows shortly."
)
PAYOUT_REJECTED_USER = Text(
    "Your payout request #{id} of {amount} was rejected: {reason}\n"
    "The amount is back in your balance."
)
PAYOUT_PAID_USER = Text(
    "💸 Your payout #{id} of {amount} was sent to <code>{destination}</code>.{reference}"
)
PAYOUT_REFERENCE = Text("\nReference: <code>{reference}</code>")
HISTORY_HEADER = Text("<b>Your payout requests</b> (page {page} of {pages})")
HISTORY_EMPTY = Text("You have not requested a payout yet. /payout starts one.")
HISTORY_LINE = Text("#{id} · {date} · {amount} · {method} · <b>{state}</b>{extra}")
HISTORY_PREV = Text("‹ Prev")
HISTORY_NEXT = Text("Next ›")
METHOD_TITLES = {
    "usdt_trc20": Text("USDT (TRC-20)"),
    "bank_transfer": Text("Bank transfer (IBAN)"),
}
METHOD_ASKS_FOR = {
    "usdt_trc20": Text("your USDT TRC-20 (TRON) wallet address"),
    "bank_transfer": Text("the IBAN of your bank account"),
}
PAYOUT_STATE_NAMES = {
    "requested": Text("waiting for review"),
    "approved": Text("approved"),
    "paid": Text("paid"),
    "rejected": Text("rejected"),
}

PAYOUT_CARD = Text(
    "<b>Payout request #{id}</b>\n"
    "From: {name}{username} (id <code>{user_id}</code>)\n"
    "Amount: <b>{amount}</b>\nMethod: {method}\nTo: <code>{destination}</code>\n"
    "Requested: {requested}\nState: <b>{state}</b>{extra}"
)
PAYOUT_CARD_REASON = Text("\nReason: {reason}")
PAYOUT_CARD_PAID = Text("\nPaid: {paid}")
PAYOUT_CARD_REFERENCE = Text("\nReference: <code>{reference}</code>")
PAYOUT_APPROVE_BUTTON = Text("✅ Approve")
PAYOUT_REJECT_BUTTON = Text("❌ Reject")
PAYOUT_PAID_BUTTON = Text("💸 Mark paid")
PAYOUT_OPEN_BUTTON = Text("#{id} · {amount} · {state}")
PAYOUT_ASK_REASON = Text(
    "Send the reason for rejecting request #{id} (the user will read it), or /cancel."
)
PAYOUT_ASK_REFERENCE = Text(
    "Send the transaction reference for request #{id} (hash or bank reference), "
    "or press the button to mark it paid without one. /cancel stops."
)
PAYOUT_NO_REFERENCE_BUTTON = Text("Paid, no reference")
PAYOUT_DECIDED = Text("Request #{id} is now {state}.")
PAYOUTS_NONE = Text("No payout requests are waiting.")
PAYOUTS_HEADER = Text(
    "<b>Open payout requests</b> ({shown} of {total}, oldest first). Press one to review it."
)


def method_title(code: str) -> str:
    title = METHOD_TITLES.get(code)
    return str(title) if title is not None else code


def state_name(state: str) -> str:
    name = PAYOUT_STATE_NAMES.get(state)
    return str(name) if name is not None else state
