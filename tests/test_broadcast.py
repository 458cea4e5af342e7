"""One signal to many users: each reachable user gets it once (also under injected 429s
and 403s), and each gets the message the renderer makes of their own approval."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.chat.signal_messages import render_approval_message
from bot.container import Container
from bot.domain.signal_dto import ApprovalDTO, SignalDTO
from bot.domain.signal_rules import validate_new_signal
from db.models import User
from tests.conftest import FakeClock
from tests.fake_bot_api import FakeBotAPI
from tests.signals_support import add_users, approvals_of, signal_row

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


async def test_each_recipient_sees_their_own_message_when_renderings_are_shared(
    container: Container,
    fake_api: FakeBotAPI,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FakeClock,
) -> None:
    # Recipients who see the same thing share one rendering: each message must still be
    # exactly what the renderer makes of that recipient's own approval.
    users = list(range(600_301, 600_331))
    auto = tuple(users[::3])  # their approvals are decided already: another message
    await add_users(sessionmaker, users, clock.now, auto_approve=auto)
    draft = validate_new_signal(
        {"symbol": "EURUSD", "side": "sell", "stop_loss": "1.1", "take_profit": ["1.05"]},
        container.settings.signals,
    )
    outcome = await container.signals.submit(sessionmaker, draft, source="provider")
    await container.outbox_worker.drain()

    signal = SignalDTO.from_model(await signal_row(sessionmaker, outcome.signal.public_id))
    approvals = await approvals_of(sessionmaker, outcome.signal.public_id)
    sent = {call.chat_id: call for call in fake_api.sent("sendMessage") if call.ok}
    assert set(sent) == set(users)
    shown = set()
    for user_id in users:
        own = render_approval_message(signal, ApprovalDTO.from_model(approvals[user_id]))
        call = sent[user_id]
        assert call.text == own.text
        markup = call.params.get("reply_markup")
        assert markup == (
            None if own.reply_markup is None else own.reply_markup.model_dump(exclude_none=True)
        )
        shown.add((call.text, markup is None))
    assert len(shown) == 2  # the auto-approved see their decision, the others the buttons
