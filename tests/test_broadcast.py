"""One signal to 200 users under injected 429s and 403s: each reachable user gets it once."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.container import Container
from bot.domain.signal_rules import validate_new_signal
from db.models import User
from tests.conftest import FakeClock
from tests.fake_bot_api import FakeBotAPI
from tests.signals_support import add_users, approvals_of

USERS = list(range(600_001, 600_201))
BLOCKERS = set(USERS[::10])  # 20 users who blocked the bot (Telegram answers 403)


async def test_broadcast_to_200_under_429_and_403(
    container: Container,
    fake_api: FakeBotAPI,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FakeClock,
) -> None:
    await add_users(sessionmaker, USERS, clock.now)
    for user_id in BLOCKERS:
        fake_api.block_chat(user_id)
    fake_api.fail_next("sendMessage", error="429", retry_after=1, times=7)

    draft = validate_new_signal(
        {"symbol": "EURUSD", "side": "buy", "stop_loss": "1.08"}, container.settings.signals
    )
    outcome = await container.signals.submit(sessionmaker, draft, source="provider")
    assert outcome.recipients == 200
    await container.outbox_worker.drain()

    calls = fake_api.sent("sendMessage")
    delivered = Counter(call.chat_id for call in calls if call.ok)
    reachable = set(USERS) - BLOCKERS
    assert set(delivered) == reachable
    assert set(delivered.values()) == {1}  # exactly once each
    assert sum(1 for call in calls if call.failed == 429) == 7
    refused = Counter(call.chat_id for call in calls if call.failed == 403)
    assert set(refused) == BLOCKERS and set(refused.values()) == {1}

    approvals = await approvals_of(sessionmaker, outcome.signal.public_id)
    message_ids = {call.chat_id: call.result["message_id"] for call in calls if call.ok}
    for user_id in USERS:
        expected = message_ids.get(user_id)
        assert approvals[user_id].message_id == expected
    async with sessionmaker() as session:
        blocked = set((await session.scalars(select(User.id).where(User.is_blocked))).all())
    assert blocked == BLOCKERS

    # The next signal skips them without asking Telegram.
    fake_api.clear()
    again = await container.signals.submit(sessionmaker, draft, source="provider")
    await container.outbox_worker.drain()
    assert again.recipients == 180
    assert {call.chat_id for call in fake_api.sent("sendMessage")} == reachable
