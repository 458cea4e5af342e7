"""Service results rendered as texts (HTML, user values quoted) for more than one handler."""

from __future__ import annotations

from aiogram import html

from bot.chat import texts
from bot.config import AffiliatesSettings, TierSettings
from bot.domain.commissions import AffiliateStats, CommissionState
from bot.domain.money import Money, format_bps
from bot.domain.payout_destinations import METHODS, display_destination
from bot.domain.payouts import PayoutDTO
from bot.domain.referrals import TierStatus


def method_title(code: str) -> str:
    info = METHODS.get(code)
    return info.title if info else code


def next_tier(status: TierStatus, money: Money) -> str:
    if status.next_tier is None:
        return texts.TOP_TIER
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


def payout_card(payout: PayoutDTO, money: Money) -> str:
    extra = ""
    if payout.reject_reason:
        extra += f"\nReason: {html.quote(payout.reject_reason)}"
    if payout.paid_at is not None:
        extra += f"\nPaid: {texts.when(payout.paid_at)}"
    if payout.tx_reference:
        extra += f"\nReference: <code>{html.quote(payout.tx_reference)}</code>"
    return texts.PAYOUT_CARD.format(
        id=payout.id,
        name=html.quote(payout.user_first_name),
        username=f" @{html.quote(payout.user_username)}" if payout.user_username else "",
        user_id=payout.user_id,
        amount=money.format(payout.amount_minor),
        method=method_title(payout.method),
        destination=html.quote(display_destination(payout.method, payout.destination)),
        requested=texts.when(payout.requested_at),
        state=texts.PAYOUT_STATE_NAMES[payout.state],
        extra=extra,
    )


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
        method=method_title(payout.method),
        state=texts.PAYOUT_STATE_NAMES[payout.state],
        extra=extra,
    )
