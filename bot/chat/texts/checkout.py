"""/subscribe, Stars payments, /paysupport and admins' /refund."""

from __future__ import annotations

from aiogram import html

from bot.chat.i18n import Text

SUBSCRIBE = Text("<b>Subscription</b>\n{status}\n\nChoose a plan; you pay with Telegram Stars.")
SUBSCRIPTION_ACTIVE = Text("Your plan: <b>{plan}</b>, active until {expires}.")
SUBSCRIPTION_EXPIRED = Text("Your subscription ended on {expires}.")
SUBSCRIPTION_NONE = Text("You have no subscription yet.")
NO_PLANS = Text("No plans are on sale right now.")
PLAN_BUTTON = Text("{name} · {stars} ⭐ · {days} days")
PLAN_GONE = Text("That plan is not on sale any more. /subscribe shows the current plans.")
INVOICE_DESCRIPTION = Text(
    "{days} days of signals delivered to your terminals, added to your current plan."
)
PAYMENT_CONFIRMED = Text(
    "✅ Payment received: {stars} ⭐ for <b>{plan}</b>.\n"
    "Your subscription now runs until <b>{expires}</b>.\n"
    "Receipt id: <code>{charge_id}</code> (keep it for /paysupport)."
)
PAYMENT_UNMATCHED = Text(
    "We received your payment of {stars} ⭐ but could not match it to a plan. "
    "Nothing is lost: write to /paysupport with the id <code>{charge_id}</code>."
)
COMMISSION_EARNED = Text(
    "💰 Your referral <b>{name}</b> subscribed: you earned {amount} "
    "(pending until {available}, then available for /payout)."
)
PAYSUPPORT = Text(
    "<b>Payment support</b>\n"
    "Subscriptions are paid with Telegram Stars and start at once; each purchase adds its "
    "days to your current plan. Refunds go back to your Stars balance and shorten the "
    "subscription by the days of that purchase.\n\n"
    "Something wrong with a payment? Send <code>/paysupport</code> followed by your question "
    "and the receipt id; the admins get it and answer you here.{contact}"
)
PAYSUPPORT_CONTACT = Text("\nYou can also reach {contact}.")
PAYSUPPORT_SENT = Text("Your question was sent to the admins. They will answer you here.")
PAYSUPPORT_QUESTION = Text(
    "<b>Payment question</b> from {name}{username} (id <code>{user_id}</code>, "
    '<a href="tg://user?id={user_id}">open chat</a>):\n{question}'
)
PAYSUPPORT_PAYMENTS = Text("\n\n<b>Your recent payments</b>\n{lines}")
PAYSUPPORT_PAYMENT_LINE = Text("{paid} · {stars} ⭐ · {plan} · <code>{charge_id}</code>{refunded}")
REFUNDED_MARK = Text(" · refunded")

REFUND_USAGE = Text(
    "Usage: /refund &lt;charge id&gt; (the receipt id shown to the user and in /paysupport)."
)
REFUND_DONE = Text(
    "Refunded {stars} ⭐ to user {user_id} (<code>{charge_id}</code>).\n"
    "Subscription now ends {expires}.\n{commission}"
)
REFUND_NO_COMMISSION = Text("No commission was attached.")
REFUND_COMMISSION = Text(
    "Commission of {amount} reversed (it was {state}); the affiliate's balance is now {balance}."
)
REFUND_USER = Text(
    "Your payment <code>{charge_id}</code> of {stars} ⭐ was refunded to your Stars balance. "
    "Your subscription now ends {expires}."
)
REFUND_AFFILIATE = Text(
    "A payment by one of your referrals was refunded, so its commission of {amount} was "
    "reversed. Your available balance is now {balance}."
)
NO_SUBSCRIPTION_END = "—"


def paysupport_question(user_id: int, first_name: str, username: str | None, question: str) -> str:
    return PAYSUPPORT_QUESTION.format(
        name=html.quote(first_name),
        username=f" @{html.quote(username)}" if username else "",
        user_id=user_id,
        question=html.quote(question),
    )
