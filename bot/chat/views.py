"""Service results rendered as texts (HTML, user values quoted) for more than one handler."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiogram import html

from bot.chat import texts
from bot.config import AffiliatesSettings, TierSettings
from bot.domain.commissions import AffiliateStats, CommissionState
from bot.domain.money import Money, format_bps
from bot.domain.payout_destinations import display_destination
from bot.domain.payouts import PayoutDTO
from bot.domain.referrals import TierStatus


def next_tier(status: TierStatus, money: Money) -> str:
    if status.next_tier is None:
        return str(texts.TOP_TIER)
    tier = status.next_tier
    return texts.next_tier_line(
        status.needed_for_next,
        tier.name,
        format_bps(tier.payment_share_bps),
        money.format(tier.per_lot_minor),
    )


def _rates(tier: TierSettings, money: Money) -> dict[str, str]:
    return {
        "tier": html.quote(tier.name),
        "share": format_bps(tier.payment_share_bps),
        "per_lot": money.format(tier.per_lot_minor),
    }


def link_text(link: str, status: TierStatus, money: Money) -> str:
    return texts.LINK.format(
        link=html.quote(link),
        active=status.active_referrals,
        total=status.total_referrals,
        next_tier=next_tier(status, money),
        **_rates(status.tier, money),
    )


def stats_text(stats: AffiliateStats, config: AffiliatesSettings) -> str:
    money = Money.from_settings(config)
    values: dict[str, object] = {}
    for state in CommissionState:
        values[state.value] = money.format(stats.amount(state))
        values[f"{state.value}_n"] = stats.count(state)
    return texts.STATS.format(
        total=stats.tier.total_referrals,
        active=stats.tier.active_referrals,
        next_tier=next_tier(stats.tier, money),
        hold_days=config.hold_days,
        balance=money.format(stats.balance_minor),
        reserved=money.format(stats.reserved_minor),
        paid_out=money.format(stats.paid_out_minor),
        **_rates(stats.tier.tier, money),
        **values,
    )


def payout_card_values(payout: PayoutDTO, money: Money) -> dict[str, Any]:
    """What a payout's card shows, as plain values (a notice's params: JSON, any language)."""
    return {
        "id": payout.id,
        "name": payout.user_first_name,
        "username": payout.user_username,
        "user_id": payout.user_id,
        "amount": money.format(payout.amount_minor),
        "method": payout.method,
        "destination": display_destination(payout.method, payout.destination),
        "requested": texts.when(payout.requested_at),
        "state": payout.state,
        "reason": payout.reject_reason,
        "paid": texts.when(payout.paid_at) if payout.paid_at is not None else None,
        "reference": payout.tx_reference,
    }


def payout_card_text(values: Mapping[str, Any]) -> str:
    extra = ""
    if values["reason"]:
        extra += texts.PAYOUT_CARD_REASON.format(reason=html.quote(values["reason"]))
    if values["paid"] is not None:
        extra += texts.PAYOUT_CARD_PAID.format(paid=values["paid"])
    if values["reference"]:
        extra += texts.PAYOUT_CARD_REFERENCE.format(reference=html.quote(values["reference"]))
    username = values["username"]
    return texts.PAYOUT_CARD.format(
        id=values["id"],
        name=html.quote(values["name"]),
        username=f" @{html.quote(username)}" if username else "",
        user_id=values["user_id"],
        amount=values["amount"],
        method=texts.method_title(values["method"]),
        destination=html.quote(values["destination"]),
        requested=values["requested"],
        state=texts.state_name(values["state"]),
        extra=extra,
    )


def payout_card(payout: PayoutDTO, money: Money) -> str:
    return payout_card_text(payout_card_values(payout, money))


def history_line(payout: PayoutDTO, money: Money) -> str:
    extra = ""
    if payout.reject_reason:
        extra = f" – {html.quote(payout.reject_reason)}"
    elif payout.tx_reference:
        extra = f" – <code>{html.quote(payout.tx_reference)}</code>"
    return texts.HISTORY_LINE.format(
        id=payout.id,
        date=payout.requested_at.strftime("%Y-%m-%d"),
        amount=money.format(payout.amount_minor),
        method=texts.method_title(payout.method),
        state=texts.state_name(payout.state),
        extra=extra,
    )
