"""/link, referral attribution, /stats and the earnings chart."""

from __future__ import annotations

from aiogram import html

from bot.chat.i18n import Plural, Text

LINK = Text(
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
LINK_SHARE_BUTTON = Text("Share link")
LINK_SHARE_TEXT = Text("Trading signals straight to MetaTrader, approved in Telegram:")
NEXT_TIER = Plural(
    "{n} more active referral to reach <b>{name}</b> ({share}, {per_lot} per lot).",
    "{n} more active referrals to reach <b>{name}</b> ({share}, {per_lot} per lot).",
)
TOP_TIER = Text("This is the top tier.")
REFERRAL_JOINED = Text("🎉 <b>{name}</b> joined through your referral link.")

STATS = Text(
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
STATS_CHART_BUTTON = Text("📈 Chart")
CHART_CAPTION = Text("Your earnings per day over the last {days} days: {total} in total.")
CHART_TITLE = Text("Earnings per day, last {days} days ({currency})")
CHART_PENDING = Text("pending")
CHART_CONFIRMED = Text("available / paid")


def next_tier_line(needed: int, name: str, share: str, per_lot: str) -> str:
    return NEXT_TIER.format(needed, name=html.quote(name), share=share, per_lot=per_lot)


def referral_joined(first_name: str) -> str:
    return REFERRAL_JOINED.format(name=html.quote(first_name))
