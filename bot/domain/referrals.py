"""Referral links, first-touch attribution and tiers."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import AffiliatesSettings, TierSettings
from db.models import Affiliate
from db.repositories.affiliates import AffiliateRepository

logger = logging.getLogger(__name__)

# 12 random bytes: 16 url-safe characters, 96 bits, so tokens cannot be guessed or walked.
TOKEN_BYTES = 12
REFERRAL_PREFIX = "ref_"


@dataclass(frozen=True, slots=True)
class TierStatus:
    tier: TierSettings
    total_referrals: int
    active_referrals: int
    next_tier: TierSettings | None

    @property
    def needed_for_next(self) -> int:
        if self.next_tier is None:
            return 0
        return max(self.next_tier.min_active_referrals - self.active_referrals, 0)


@dataclass(frozen=True, slots=True)
class Attribution:
    referrer_id: int


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


async def ensure_account(session: AsyncSession, user_id: int, now: datetime) -> Affiliate:
    """The user's affiliate account with its stable token, created on first use."""
    repo = AffiliateRepository(session)
    account = await repo.get(user_id)
    while account is None:
        # A token collision (2**-96) or a concurrent creation both end in a re-read.
        await repo.create(user_id, new_token(), now)
        account = await repo.get(user_id)
    return account


def referral_link(bot_username: str, token: str) -> str:
    return f"https://t.me/{bot_username}?start={REFERRAL_PREFIX}{token}"


def share_url(link: str, text: str) -> str:
    """Telegram's share dialog: the user picks chats, the link and text are prefilled."""
    return f"https://t.me/share/url?url={quote(link, safe='')}&text={quote(text, safe='')}"


def tier_for(tiers: list[TierSettings], active: int) -> tuple[TierSettings, TierSettings | None]:
    """The tier reached with ``active`` active referrals, and the next one (None at the top)."""
    current = tiers[0]
    for tier in tiers:
        if active >= tier.min_active_referrals:
            current = tier
        else:
            return current, tier
    return current, None


async def tier_status(
    session: AsyncSession, config: AffiliatesSettings, user_id: int, now: datetime
) -> TierStatus:
    total, active = await AffiliateRepository(session).referral_counts(
        user_id, now, now - timedelta(days=config.active_window_days)
    )
    tier, next_tier = tier_for(config.tiers, active)
    return TierStatus(tier, total, active, next_tier)


async def attribute_referral(
    session: AsyncSession, *, user_id: int, is_new_user: bool, token: str, now: datetime
) -> Attribution | None:
    """Attribute a brand-new user to the owner of ``token``.

    First touch only, never the owner themself, never a user who existed before this
    /start; an unknown token is ignored without an error. None when nothing was recorded.
    """
    if not is_new_user:
        return None
    repo = AffiliateRepository(session)
    owner = await repo.get_by_token(token)
    if owner is None or owner.user_id == user_id:
        return None
    if not await repo.add_referral(user_id, owner.user_id, now):
        return None
    logger.info("user %s joined through the link of %s", user_id, owner.user_id)
    return Attribution(referrer_id=owner.user_id)
