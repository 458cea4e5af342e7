"""The outbox: messages owed to users survive Telegram outages, restarts and a second
instance; each is sent once, in its chat's order, while it still matters."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.container import Container
from bot.domain.signal_rules import validate_new_signal
from bot.factory import create_bot, create_container
from bot.infra.outbox import Outbox
from db.models import OutboxMessage
from tests.conftest import FakeClock, make_settings
from tests.fake_bot_api import FakeBotAPI, close_bot_session
from tests.signals_support import add_users, approvals_of

USERS = list(range(610_001, 610_031))


async def rows(sessionmaker: async_sessionmaker[AsyncSession]) -> list[OutboxMessage]:
    async with sessionmaker() as session:
        return list(await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


async def drain(container: Container) -> None:
    await container.outbox_worker.drain()


async def notify(container: Container, chat_id: int, text: str) -> None:
    async with container.sessionmaker.begin() as session:
        await container.outbox.send(session, chat_id, text)


async def publish(container: Container, **fields: Any) -> str:
    data = {"symbol": "EURUSD", "side": "buy", "stop_loss": "1.08", **fields}
    draft = validate_new_signal(data, container.settings.signals)
    outcome = await container.signals.submit(container.sessionmaker, draft, source="provider")
    return outcome.signal.public_id


async def test_nothing_is_sent_for_a_transaction_that_rolled_back(
    container: Container, fake_api: FakeBotAPI
) -> None:
    with pytest.raises(RuntimeError):
        async with container.sessionmaker.begin() as session:
            await container.outbox.send(session, USERS[0], "payment confirmed")
            raise RuntimeError("the commit never happens")
    await drain(container)
    assert fake_api.sent("sendMessage") == []
    assert await rows(container.sessionmaker) == []


async def test_telegram_down_then_back_delivers_each_message_once(
    container: Container, fake_api: FakeBotAPI, clock: FakeClock
) -> None:
    await add_users(container.sessionmaker, USERS, clock.now)
    fake_api.fail_next("sendMessage", error="500", times=1000)
    public_id = await publish(container)
    await notify(container, USERS[0], "your payout was approved")
    await drain(container)

    stored = await rows(container.sessionmaker)
    assert len(stored) == len(USERS) + 1
    assert {row.state for row in stored} == {"pending"}  # kept, none dropped
    signal_rows = [row for row in stored if row.kind == "approval"]
    assert all(r.attempts == 1 and "Server" in (r.last_error or "") for r in signal_rows)
    assert all(row.next_attempt_at > clock.now for row in signal_rows)  # backoff, no busy loop
    # The notice waits behind the signal's message to the same chat (a chat's order).
    [notice] = [row for row in stored if row.kind == "message"]
    assert notice.attempts == 0 and notice.chat_id == USERS[0]

    # Telegram is back; the retries come due.
    fake_api.clear()
    fake_api.recover()
    clock.advance(seconds=5)
    await drain(container)

    delivered = Counter(call.chat_id for call in fake_api.sent("sendMessage") if call.ok)
    assert set(delivered) == set(USERS) and set(delivered.values()) == {1, 2}
    assert delivered[USERS[0]] == 2  # the signal and the payout notice
    approvals = await approvals_of(container.sessionmaker, public_id)
    assert all(approvals[user].message_id is not None for user in USERS)
    assert {row.state for row in await rows(container.sessionmaker)} == {"sent"}


async def test_a_message_that_no_longer_matters_is_dropped(
    container: Container, fake_api: FakeBotAPI, clock: FakeClock
) -> None:
    await add_users(container.sessionmaker, USERS[:3], clock.now)
    fake_api.fail_next("sendMessage", error="500", times=1000)
    await publish(container, expires_in=60)
    await notify(container, USERS[0], "a fill on your device")
    await drain(container)

    clock.advance(minutes=2)  # the signal ended; the notice still matters (a day)
    fake_api.recover()
    fake_api.clear()
    await drain(container)

    by_kind = {(row.kind, row.chat_id): row.state for row in await rows(container.sessionmaker)}
    assert {state for (kind, _), state in by_kind.items() if kind == "approval"} == {"expired"}
    assert by_kind[("message", USERS[0])] == "sent"
    assert [call.text for call in fake_api.sent("sendMessage") if call.ok] == [
        "a fill on your device"
    ]


async def test_a_chat_gets_its_messages_in_order_after_a_failure(
    container: Container, fake_api: FakeBotAPI, clock: FakeClock
) -> None:
    fake_api.fail_next("sendMessage", error="500", times=1, chat_id=USERS[0])
    async with container.sessionmaker.begin() as session:
        for text in ("requested", "approved", "paid"):
            await container.outbox.send(session, USERS[0], text)
        await container.outbox.send(session, USERS[1], "another chat is not held up")
    await drain(container)
    assert [call.text for call in fake_api.sent("sendMessage") if call.ok] == [
        "another chat is not held up"
    ]
    clock.advance(seconds=5)
    await drain(container)
    assert [call.text for call in fake_api.sent("sendMessage", USERS[0]) if call.ok] == [
        "requested",
        "approved",
        "paid",
    ]


async def test_blocked_and_refused_messages_end_without_retries(
    container: Container, fake_api: FakeBotAPI, clock: FakeClock
) -> None:
    await add_users(container.sessionmaker, USERS[:2], clock.now)
    fake_api.block_chat(USERS[0])
    fake_api.fail_next("sendMessage", error="400", chat_id=USERS[1], description="chat not found")
    await notify(container, USERS[0], "to a user who blocked the bot")
    await notify(container, USERS[1], "to a chat Telegram does not know")
    await drain(container)
    clock.advance(hours=1)
    await drain(container)
    states = {row.chat_id: row.state for row in await rows(container.sessionmaker)}
    assert states == {USERS[0]: "blocked", USERS[1]: "failed"}
    assert len(fake_api.sent("sendMessage")) == 2  # one try each


async def second_instance(settings: Settings, clock: FakeClock) -> tuple[Container, Any]:
    bot = create_bot(settings)
    return create_container(settings, bot=bot, clock=clock), bot


async def test_a_restart_resumes_a_broadcast_where_it_stopped(
    clean_database: str, fake_api: FakeBotAPI, clock: FakeClock
) -> None:
    # Five messages in flight at a time, so the shutdown finds most of them queued.
    settings = make_settings(
        clean_database, fake_api.base_url, sending={"broadcast_concurrency": 5}
    )
    first, first_bot = await second_instance(settings, clock)
    try:
        await add_users(first.sessionmaker, USERS, clock.now)
        gate = fake_api.hold("sendMessage")
        public_id = await publish(first)
        await fake_api.wait_for("sendMessage", count=5)
        # SIGTERM at its deadline: the sends under way get their answers, the rest stay.
        closing = asyncio.create_task(first.outbox_worker.close(0, grace=5.0))
        await asyncio.sleep(0.05)
        gate.set()
        assert await closing == 0
    finally:
        await close_bot_session(first_bot)
        await first.engine.dispose()
    sent_before = Counter(call.chat_id for call in fake_api.sent("sendMessage") if call.ok)
    assert 0 < len(sent_before) < len(USERS)

    second, second_bot = await second_instance(settings, clock)
    try:
        await second.start()
        await drain(second)
        delivered = Counter(call.chat_id for call in fake_api.sent("sendMessage") if call.ok)
        assert set(delivered) == set(USERS) and set(delivered.values()) == {1}
        approvals = await approvals_of(second.sessionmaker, public_id)
        assert all(approvals[user].message_id is not None for user in USERS)
    finally:
        await second.stop_background(within=1.0)
        await close_bot_session(second_bot)
        await second.engine.dispose()


async def test_a_crashed_instance_leaves_its_messages_to_the_next_run(
    settings: Settings, fake_api: FakeBotAPI, clock: FakeClock
) -> None:
    crashed, crashed_bot = await second_instance(settings, clock)
    await add_users(crashed.sessionmaker, USERS[:5], clock.now)
    fake_api.hold("sendMessage")  # never answered: the process dies while waiting
    await publish(crashed)
    await fake_api.wait_for("sendMessage", count=5)
    # kill -9: no shutdown at all, its leases stay behind.
    await crashed.outbox_worker.abandon()
    assert {row.lease_owner is not None for row in await rows(crashed.sessionmaker)} == {True}
    await close_bot_session(crashed_bot)
    await crashed.engine.dispose()

    fake_api.clear()
    fake_api.recover()
    restarted, restarted_bot = await second_instance(settings, clock)
    try:
        await restarted.start()  # alone on this database: the dead run's leases are freed
        await drain(restarted)
        assert sorted(call.chat_id for call in fake_api.sent("sendMessage")) == USERS[:5]
    finally:
        await restarted.stop_background(within=1.0)
        await close_bot_session(restarted_bot)
        await restarted.engine.dispose()


async def test_two_instances_never_send_the_same_message(
    clean_database: str, fake_api: FakeBotAPI, clock: FakeClock
) -> None:
    # Small batches, so both workers keep coming back for more at the same time.
    shared = make_settings(
        clean_database,
        fake_api.base_url,
        redis={"url": "redis://127.0.0.1:6379/0", "prefix": f"test-outbox-{secrets.token_hex(4)}"},
        outbox={"batch_size": 5},
    )
    a, a_bot = await second_instance(shared, clock)
    b, b_bot = await second_instance(shared, clock)
    try:
        await add_users(a.sessionmaker, USERS, clock.now)
        async with a.sessionmaker.begin() as session:
            await a.outbox.send_many(session, [(user, f"notice {user}") for user in USERS] * 3)
        # Telegram is slow: each worker holds at most a batch, so both must take some.
        gate = fake_api.hold("sendMessage")
        a.outbox_worker.wake()
        b.outbox_worker.wake()
        await fake_api.wait_for("sendMessage", count=10)
        gate.set()
        await asyncio.gather(drain(a), drain(b))
        await asyncio.gather(drain(a), drain(b))
        counts = Counter(call.chat_id for call in fake_api.sent("sendMessage"))
        assert set(counts) == set(USERS) and set(counts.values()) == {3}
        assert a.outbox_worker.sent > 0 and b.outbox_worker.sent > 0
    finally:
        for container, bot in ((a, a_bot), (b, b_bot)):
            await container.stop_background(within=1.0)
            await container.aclose()
            await close_bot_session(bot)
            await container.engine.dispose()


async def test_old_sent_and_ended_rows_are_forgotten(
    container: Container, fake_api: FakeBotAPI, clock: FakeClock
) -> None:
    fake_api.block_chat(USERS[1])
    await notify(container, USERS[0], "old news")
    await notify(container, USERS[1], "never delivered")
    await drain(container)
    clock.advance(days=8)
    fake_api.fail_next("sendMessage", error="500", times=1)
    await notify(container, USERS[2], "still on its way")
    await drain(container)
    await container.outbox_worker.close(within=1.0)  # the next run prunes at its start
    restarted = create_container(container.settings, bot=container.bot, clock=clock)
    try:
        await restarted.outbox_worker.start()
        await restarted.outbox_worker.drain()
        left = {(row.chat_id, row.state) for row in await rows(restarted.sessionmaker)}
        assert left == {(USERS[2], "pending")}
    finally:
        await restarted.outbox_worker.close(within=1.0)
        await restarted.engine.dispose()


async def test_a_signal_that_ended_while_queued_is_not_announced(
    container: Container, fake_api: FakeBotAPI, clock: FakeClock
) -> None:
    await add_users(container.sessionmaker, USERS[:3], clock.now, auto_approve=(USERS[2],))
    fake_api.fail_next("sendMessage", error="500", times=3)
    public_id = await publish(container)
    await drain(container)
    async with container.sessionmaker.begin() as session:
        await container.signals.cancel(session, public_id=public_id)
    fake_api.clear()
    clock.advance(seconds=5)
    await drain(container)
    # Only the user whose devices took it (auto-approve) still hears of it.
    assert [call.chat_id for call in fake_api.sent("sendMessage") if call.ok] == [USERS[2]]
    assert "Cancelled" in fake_api.last("sendMessage", USERS[2]).params["text"]


ERROR_PARAMS = {
    "device": "EA «один»",
    "symbol": "EURUSD",
    "side": "buy",
    "action": "open",
    "code": 10018,
    "message": "Market is closed",
}


async def test_one_batch_is_stored_in_order_with_repeated_refreshes_merged(
    container: Container, clock: FakeClock
) -> None:
    """What a batch of reports queues (one statement): every message in its order, with
    its fields as given, and one pending refresh per signal message however often asked."""
    await add_users(container.sessionmaker, USERS[:2], clock.now)
    approvals = await approvals_of(container.sessionmaker, await publish(container))
    await drain(container)  # the signal's messages are out
    first, second = (approvals[user].id for user in USERS[:2])
    # Queued only: no worker is woken to send (and so claim) them meanwhile.
    outbox = Outbox(container.settings, clock, wake=lambda: None)
    async with container.sessionmaker.begin() as session:
        await outbox.refresh_and_notice(
            session,
            [(first, USERS[0]), (first, USERS[0]), (second, USERS[1])],
            [(USERS[0], "device_error", ERROR_PARAMS)],
        )
    async with container.sessionmaker.begin() as session:
        # Asked again while pending: merged into the rows above.
        await outbox.refresh(session, [second, first])
        await outbox.send(session, USERS[1], "payment confirmed")
    stored = [r for r in await rows(container.sessionmaker) if r.kind != "approval"]
    assert [(r.kind, r.chat_id, r.approval_id, r.dedupe_key) for r in stored] == [
        ("refresh", USERS[0], first, f"refresh:{first}"),
        ("refresh", USERS[1], second, f"refresh:{second}"),
        ("notice", USERS[0], None, None),
        ("message", USERS[1], None, None),
    ]
    notice, message = stored[2], stored[3]
    assert notice.text is not None
    assert json.loads(notice.text) == {"code": "device_error", "params": ERROR_PARAMS}
    assert message.text == "payment confirmed" and message.reply_markup is None
    assert all(r.state == "pending" and r.attempts == 0 for r in stored)
    assert all(r.created_at == r.next_attempt_at for r in stored)
    assert all(r.not_after > r.created_at for r in stored)
