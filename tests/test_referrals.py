"""/link and /start ref_<token>: stable tokens, share link, first-touch attribution, tiers."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import AffiliatesSettings, Settings
from bot.domain.referrals import attribute_referral, tier_for, tier_status
from db.models import Commission, Referral, Subscription, User
from tests.affiliates_support import credit_fill, refer, rows, token_of
from tests.conftest import Chat, FakeClock
from tests.fake_bot_api import DEFAULT_BOT_USERNAME, FakeBotAPI

REFERRER = 1001
FRIEND = 2002


async def test_link_is_stable_url_safe_with_share_button(chat: Chat, fake_api: FakeBotAPI) -> None:
    [first] = await chat.send(REFERRER, "/link")
    [second] = await chat.send(REFERRER, "/link")
    pattern = rf"https://t\.me/{DEFAULT_BOT_USERNAME}\?start=ref_([A-Za-z0-9_-]+)"
    token = re.search(pattern, first)
    assert token is not None and len(token.group(1)) >= 16
    assert token.group(0) in second  # stable
    assert "Starter" in first and "10%" in first and "1.00 USD per lot" in first
    assert "2 more active referrals to reach <b>Pro</b> (30%, 3.00 USD per lot)" in first
    markup = fake_api.last("sendMessage", REFERRER).params["reply_markup"]
    share = urlparse(markup["inline_keyboard"][0][0]["url"])
    assert (share.netloc, share.path) == ("t.me", "/share/url")
    assert parse_qs(share.query)["url"] == [token.group(0)]
    [other] = await chat.send(FRIEND, "/link")
    assert token.group(1) not in other


async def test_new_user_is_attributed_and_referrer_told_first_name_only(
    chat: Chat,
    fake_api: FakeBotAPI,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FakeClock,
) -> None:
    await refer(chat, sessionmaker, REFERRER, FRIEND, clock.now, first_name="<Eve>")
    [referral] = await rows(sessionmaker, Referral)
    assert (referral.referred_id, referral.referrer_id) == (FRIEND, REFERRER)
    [friend] = await rows(sessionmaker, User, User.id == FRIEND)
    assert friend.referred_by_id == REFERRER
    told = fake_api.texts(REFERRER)[-1]
    assert "&lt;Eve&gt;" in told and "joined" in told
    # The new user is greeted as usual.
    assert "Hi, &lt;Eve&gt;!" in fake_api.texts(FRIEND)[-1]


async def test_first_touch_only_and_existing_users_never_attributed(
    chat: Chat,
    fake_api: FakeBotAPI,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FakeClock,
) -> None:
    await refer(chat, sessionmaker, REFERRER, FRIEND, clock.now)
    other = 3003
    await chat.send(other, "/start")
    other_token = await token_of(sessionmaker, other, clock.now)
    # A second link later does not move the friend.
    await chat.send(FRIEND, f"/start ref_{other_token}")
    # A user who existed before (even without a referrer) is never attributed.
    late = 4004
    await chat.send(late, "/help")
    await chat.send(late, f"/start ref_{other_token}")
    referrals = await rows(sessionmaker, Referral)
    assert [(r.referred_id, r.referrer_id) for r in referrals] == [(FRIEND, REFERRER)]
    assert not [t for t in fake_api.texts(other) if "joined" in t]


async def test_unknown_token_ignored_silently(
    chat: Chat, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    replies = await chat.send(FRIEND, "/start ref_doesNotExist123")
    assert len(replies) == 1 and replies[0].startswith("Hi, Test!")
    assert await rows(sessionmaker, Referral) == []


async def test_never_self(
    chat: Chat, sessionmaker: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    await chat.send(REFERRER, "/start")
    token = await token_of(sessionmaker, REFERRER, clock.now)
    async with sessionmaker.begin() as session:
        result = await attribute_referral(
            session, user_id=REFERRER, is_new_user=True, token=token, now=clock.now
        )
    assert result is None
    assert await rows(sessionmaker, Referral) == []


def test_tier_boundaries() -> None:
    tiers = AffiliatesSettings().tiers
    assert [tier_for(tiers, n)[0].name for n in (0, 4, 5, 19, 20, 500)] == [
        "Bronze", "Bronze", "Silver", "Silver", "Gold", "Gold",
    ]  # fmt: skip
    upcoming = tier_for(tiers, 4)[1]
    assert upcoming is not None and upcoming.name == "Silver"
    assert tier_for(tiers, 20)[1] is None


@pytest.fixture
def settings_overrides() -> dict[str, dict[str, object]]:
    return {
        "affiliates": {
            "tiers": [
                {"name": "Starter", "min_active_referrals": 0, "per_lot_minor": 100,
                 "payment_share_bps": 1000},
                {"name": "Pro", "min_active_referrals": 2, "per_lot_minor": 300,
                 "payment_share_bps": 3000},
            ]
        }
    }  # fmt: skip


async def test_active_referrals_and_tier_in_force_at_creation(
    chat: Chat,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FakeClock,
    settings: Settings,
) -> None:
    friends = [2001, 2002, 2003]
    for friend in friends:
        await refer(chat, sessionmaker, REFERRER, friend, clock.now)

    async def status() -> tuple[str, int, int]:
        async with sessionmaker() as session:
            found = await tier_status(session, settings.affiliates, REFERRER, clock.now)
        return found.tier.name, found.total_referrals, found.active_referrals

    assert await status() == ("Starter", 3, 0)
    # One trades: active, still Starter, and that fill is paid at Starter rates.
    first = await credit_fill(sessionmaker, settings, 2001, "fill-1", "1", clock.now)
    assert first is not None and (first.tier, first.amount_minor) == ("Starter", 100)
    # A second one subscribes: two active -> Pro; the subscription counts while it runs.
    async with sessionmaker.begin() as session:
        session.add(
            Subscription(
                user_id=2002,
                plan_code="month",
                expires_at=clock.now + timedelta(days=3),
                updated_at=clock.now,
            )
        )
    assert await status() == ("Pro", 3, 2)
    second = await credit_fill(sessionmaker, settings, 2003, "fill-2", "1", clock.now)
    assert second is not None and (second.tier, second.amount_minor) == ("Pro", 300)
    # Commissions keep the tier they were created with; activity expires.
    clock.advance(days=4)
    assert await status() == ("Pro", 3, 2)  # 2001 and 2003 traded within 30 days
    clock.advance(days=27)
    assert await status() == ("Starter", 3, 0)
    commissions = await rows(sessionmaker, Commission)
    assert sorted((c.source_id, c.tier) for c in commissions) == [
        ("fill-1", "Starter"), ("fill-2", "Pro"),
    ]  # fmt: skip
