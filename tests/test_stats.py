"""/stats and its earnings chart."""

from __future__ import annotations

import struct

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from tests.affiliates_support import credit_fill, pay, refer
from tests.conftest import Chat, FakeClock
from tests.fake_bot_api import FakeBotAPI

AFFILIATE = 3131
FRIEND = 4141


def assert_a_chart(data: bytes) -> None:
    """A PNG of a readable size in a chat (not an empty or a thumbnail-sized image)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    assert 1000 <= width <= 2000 and 600 <= height <= 1500
    assert 5_000 < len(data) < 1_000_000


async def test_stats_text_and_chart_png(
    chat: Chat,
    fake_api: FakeBotAPI,
    settings: Settings,
    clock: FakeClock,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await refer(chat, sessionmaker, AFFILIATE, FRIEND, clock.now)
    await refer(chat, sessionmaker, AFFILIATE, FRIEND + 1, clock.now)
    for day in range(20):
        await credit_fill(sessionmaker, settings, FRIEND, f"f{day}", str(day % 4), clock.now)
        clock.advance(days=1)
    await pay(chat, settings, FRIEND + 1, "ch-1")
    [text] = await chat.send(AFFILIATE, "/stats")
    assert "Referrals: 2 in total, 2 active" in text
    assert "Tier: <b>Bronze</b> (10% of payments, 1.00 USD per lot)" in text
    assert "3 more active referrals to reach <b>Silver</b>" in text
    # Fills of days 0-6 are past the 14-day hold: 0+1+2+3+0+1+2 = 9 lots, 5 commissions.
    assert "Available: 9.00 USD (5)" in text
    assert "Pending (on hold 14 days): 21.32 USD (11)" in text
    assert "Balance available for /payout: 9.00 USD" in text
    markup = fake_api.last("sendMessage", AFFILIATE).params["reply_markup"]
    chart_button = markup["inline_keyboard"][0][0]
    assert "Chart" in chart_button["text"]

    calls = await chat.press(AFFILIATE, chart_button["callback_data"])
    [photo] = [c for c in calls if c.method == "sendPhoto"]
    assert photo.chat_id == AFFILIATE
    assert "30.32 USD in total" in str(photo.params["caption"])
    assert_a_chart(photo.params["photo"]["data"])
    assert any(c.method == "answerCallbackQuery" for c in calls)


async def test_chart_with_no_earnings_is_still_a_png(chat: Chat, fake_api: FakeBotAPI) -> None:
    await chat.send(AFFILIATE, "/stats")
    markup = fake_api.last("sendMessage", AFFILIATE).params["reply_markup"]
    calls = await chat.press(AFFILIATE, markup["inline_keyboard"][0][0]["callback_data"])
    [photo] = [c for c in calls if c.method == "sendPhoto"]
    assert_a_chart(photo.params["photo"]["data"])
