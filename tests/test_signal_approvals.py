"""Approvals in the chat: one decision per user and signal, edits in place, expiry, changes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.chat.callbacks import ManageAction, SignalManageCb, SignalVote, Vote
from bot.container import Container
from bot.domain.signal_rules import validate_new_signal
from bot.domain.signals import CreateOutcome
from db.models import Approval, Signal, Subscription
from tests.conftest import ADMIN_ID, Chat, FakeClock
from tests.fake_bot_api import Call, FakeBotAPI
from tests.loop_support import publish, settle
from tests.signals_support import AUTH, add_users, approvals_of, signal_row
from webhook_server import create_app

ALICE, BOB, CAROL = 3001, 3002, 3003


@pytest.fixture
async def users(sessionmaker: async_sessionmaker[AsyncSession], clock: FakeClock) -> None:
    await add_users(sessionmaker, [ADMIN_ID, ALICE, BOB, CAROL], clock.now, admins=(ADMIN_ID,))


def message_id(fake_api: FakeBotAPI, user_id: int) -> int:
    return int(fake_api.last("sendMessage", user_id).result["message_id"])


def vote(outcome: CreateOutcome, approve: bool = True) -> str:
    action = Vote.APPROVE if approve else Vote.REJECT
    return SignalVote(action=action, signal=outcome.signal.id).pack()


def answer_text(calls: list[Call]) -> str | None:
    answers = [c for c in calls if c.method == "answerCallbackQuery"]
    assert len(answers) == 1, [c.summary() for c in calls]
    return answers[0].params.get("text")


def edits(fake_api: FakeBotAPI, user_id: int) -> list[Call]:
    return [c for c in fake_api.sent("editMessageText", user_id) if c.ok]


async def decision(
    sessionmaker: async_sessionmaker[AsyncSession], outcome: CreateOutcome, user_id: int
) -> str:
    return (await approvals_of(sessionmaker, outcome.signal.public_id))[user_id].decision


@pytest.mark.usefixtures("users")
async def test_approve_then_second_press_changes_nothing(
    chat: Chat,
    container: Container,
    fake_api: FakeBotAPI,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FakeClock,
) -> None:
    outcome = await publish(container)
    mid = message_id(fake_api, ALICE)
    clock.advance(minutes=2)
    calls = await chat.press(ALICE, vote(outcome), message_id=mid)
    assert answer_text(calls) == "Approved."
    await settle(container)
    [edit] = edits(fake_api, ALICE)
    assert edit.params["message_id"] == mid
    assert "You approved this signal" in edit.params["text"]
    assert "reply_markup" not in edit.params  # the buttons are gone
    approval = (await approvals_of(sessionmaker, outcome.signal.public_id))[ALICE]
    assert approval.decision == "approved"
    assert approval.decided_at == clock.now

    clock.advance(minutes=1)
    for approve in (True, False):
        calls = await chat.press(ALICE, vote(outcome, approve), message_id=mid)
        assert answer_text(calls) == "You already approved this signal."
    await settle(container)
    after = (await approvals_of(sessionmaker, outcome.signal.public_id))[ALICE]
    assert (after.decision, after.decided_at) == ("approved", approval.decided_at)
    assert len(edits(fake_api, ALICE)) == 1
    # The others are untouched.
    assert edits(fake_api, BOB) == []
    assert await decision(sessionmaker, outcome, BOB) == "pending"


@pytest.mark.usefixtures("users")
async def test_reject(
    chat: Chat,
    container: Container,
    fake_api: FakeBotAPI,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    outcome = await publish(container)
    calls = await chat.press(BOB, vote(outcome, False), message_id=message_id(fake_api, BOB))
    assert answer_text(calls) == "Rejected."
    await settle(container)
    [edit] = edits(fake_api, BOB)
    assert "You rejected this signal" in edit.params["text"]
    assert await decision(sessionmaker, outcome, BOB) == "rejected"
    calls = await chat.press(BOB, vote(outcome, True), message_id=message_id(fake_api, BOB))
    assert answer_text(calls) == "You already rejected this signal."
    assert await decision(sessionmaker, outcome, BOB) == "rejected"


@pytest.mark.usefixtures("users")
async def test_forged_presses_change_nothing(
    chat: Chat,
    container: Container,
    fake_api: FakeBotAPI,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    outcome = await publish(container)
    stranger = 3999  # writes to the bot only after the signal went out
    await chat.send(stranger, "/start")
    calls = await chat.press(stranger, vote(outcome))
    assert answer_text(calls) == "This signal was not sent to you."
    calls = await chat.press(ALICE, SignalVote(action=Vote.APPROVE, signal=987654).pack())
    assert answer_text(calls) == "This signal was not sent to you."
    calls = await chat.press(ALICE, "sv:a:not-a-number")
    assert answer_text(calls) == "This is not available any more."
    # An admin's button pressed by someone else.
    manage = SignalManageCb(action=ManageAction.CANCEL, signal=outcome.signal.id).pack()
    calls = await chat.press(ALICE, manage)
    assert answer_text(calls) == "This is not available any more."
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Approval)) == 4
        assert (await session.get(Signal, outcome.signal.id)).state == "open"  # type: ignore[union-attr]
    assert all(
        a.decision == "pending"
        for a in (await approvals_of(sessionmaker, outcome.signal.public_id)).values()
    )
    assert fake_api.sent("editMessageText") == []


@pytest.mark.usefixtures("users")
async def test_expiry_edits_pending_messages(
    chat: Chat,
    container: Container,
    fake_api: FakeBotAPI,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FakeClock,
) -> None:
    outcome = await publish(container, expires_in=300)
    carol_mid = message_id(fake_api, CAROL)
    await chat.press(ALICE, vote(outcome), message_id=message_id(fake_api, ALICE))
    await chat.press(BOB, vote(outcome, False), message_id=message_id(fake_api, BOB))
    await settle(container)
    fake_api.clear()

    clock.advance(seconds=299)
    assert (await container.signals.expire_due(sessionmaker)).approvals == []
    clock.advance(seconds=1)
    # Pressed at expires_at, before the expiry task ran: refused, nothing stored.
    calls = await chat.press(CAROL, vote(outcome), message_id=carol_mid)
    assert answer_text(calls) == "This signal has expired."
    assert await decision(sessionmaker, outcome, CAROL) == "pending"

    result = await container.signals.expire_due(sessionmaker)
    assert len(result.approvals) == 2  # Carol and the admin
    assert result.signals == []  # Alice approved: the signal stays open for changes
    await settle(container)
    for user_id in (CAROL, ADMIN_ID):
        [edit] = edits(fake_api, user_id)
        assert "Expired before you decided" in edit.params["text"]
        assert "reply_markup" not in edit.params
    assert edits(fake_api, ALICE) == [] and edits(fake_api, BOB) == []
    assert await decision(sessionmaker, outcome, CAROL) == "expired"
    calls = await chat.press(CAROL, vote(outcome))
    assert answer_text(calls) == "This signal expired before you decided."
    assert await decision(sessionmaker, outcome, CAROL) == "expired"
    assert (await container.signals.expire_due(sessionmaker)).approvals == []
    assert (await signal_row(sessionmaker, outcome.signal.public_id)).state == "open"


@pytest.mark.usefixtures("users")
async def test_signal_nobody_approved_expires(
    container: Container, sessionmaker: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    outcome = await publish(container, expires_in=60)
    clock.advance(seconds=60)
    result = await container.signals.expire_due(sessionmaker)
    assert result.signals == [outcome.signal.id]
    assert (await signal_row(sessionmaker, outcome.signal.public_id)).state == "expired"


@pytest.mark.usefixtures("users")
async def test_presses_after_cancel_and_close_answer_the_state(
    chat: Chat,
    container: Container,
    fake_api: FakeBotAPI,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    cancelled = await publish(container)
    cancel_mid = message_id(fake_api, ALICE)
    async with sessionmaker.begin() as session:
        await container.signals.cancel(session, signal_id=cancelled.signal.id)
    closed = await publish(container)
    close_mid = message_id(fake_api, ALICE)
    async with sessionmaker.begin() as session:
        await container.signals.close(session, {}, signal_id=closed.signal.id)
    await settle(container)

    calls = await chat.press(ALICE, vote(cancelled), message_id=cancel_mid)
    assert answer_text(calls) == "This signal was cancelled by the provider."
    calls = await chat.press(ALICE, vote(closed), message_id=close_mid)
    assert answer_text(calls) == "This signal was closed by the provider."
    assert await decision(sessionmaker, cancelled, ALICE) == "pending"
    assert await decision(sessionmaker, closed, ALICE) == "pending"
    texts = {c.params["message_id"]: c.params["text"] for c in edits(fake_api, ALICE)}
    assert "Cancelled by the provider" in texts[cancel_mid]
    assert "Closed by the provider" in texts[close_mid]


@pytest.mark.usefixtures("users")
async def test_provider_changes_show_on_every_message(
    aiohttp_client: Any,
    chat: Chat,
    container: Container,
    fake_api: FakeBotAPI,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    client = await aiohttp_client(create_app(container))
    response = await client.post(
        "/api/v1/signals",
        json={"symbol": "GBPUSD", "side": "sell", "stop_loss": "1.3", "take_profit": "1.2"},
        headers=AUTH,
    )
    public_id = (await response.json())["id"]
    await settle(container)
    recipients = (ADMIN_ID, ALICE, BOB, CAROL)
    mids = {user_id: message_id(fake_api, user_id) for user_id in recipients}
    row = await signal_row(sessionmaker, public_id)
    approve = SignalVote(action=Vote.APPROVE, signal=row.id).pack()
    await chat.press(ALICE, approve, message_id=mids[ALICE])
    await settle(container)
    fake_api.clear()

    await client.post(
        f"/api/v1/signals/{public_id}/modify", json={"stop_loss": "1.29"}, headers=AUTH
    )
    await settle(container)
    for user_id in recipients:
        [edit] = edits(fake_api, user_id)
        assert (
            "<code>1.29</code>" in edit.params["text"]
            and "Levels changed by the provider" in edit.params["text"]
        )
        assert edit.params["message_id"] == mids[user_id]
    # Alice approved: her message keeps her decision and has no buttons; the others keep theirs.
    assert "You approved" in edits(fake_api, ALICE)[0].params["text"]
    assert "reply_markup" not in edits(fake_api, ALICE)[0].params
    assert "reply_markup" in edits(fake_api, BOB)[0].params

    fake_api.clear()
    await client.post(f"/api/v1/signals/{public_id}/close", json={"fraction": "0.5"}, headers=AUTH)
    await settle(container)
    for user_id in recipients:
        [edit] = edits(fake_api, user_id)
        assert "50% of the position closed so far" in edit.params["text"]

    fake_api.clear()
    await client.post(f"/api/v1/signals/{public_id}/cancel", headers=AUTH)
    await settle(container)
    for user_id in recipients:
        [edit] = edits(fake_api, user_id)
        assert "Cancelled by the provider" in edit.params["text"]
        assert "reply_markup" not in edit.params


@pytest.mark.usefixtures("users")
async def test_change_during_broadcast_reaches_every_message(
    container: Container, fake_api: FakeBotAPI, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    data = {"symbol": "EURUSD", "side": "buy", "stop_loss": "1.08"}
    draft = validate_new_signal(data, container.settings.signals)
    outcome = await container.signals.submit(sessionmaker, draft, source="provider")
    # The messages are queued, perhaps being sent: each ends up showing the change, once.
    async with sessionmaker.begin() as session:
        await container.signals.modify(session, {"stop_loss": "1.07"}, signal_id=outcome.signal.id)
    await settle(container)
    for user_id in (ADMIN_ID, ALICE, BOB, CAROL):
        [sent] = [c for c in fake_api.sent("sendMessage") if c.chat_id == user_id]
        shown = [sent, *edits(fake_api, user_id)]
        assert "<code>1.07</code>" in shown[-1].params["text"]


@pytest.mark.usefixtures("users")
async def test_change_after_delivery_edits_every_message(
    container: Container, fake_api: FakeBotAPI, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    data = {"symbol": "EURUSD", "side": "buy", "stop_loss": "1.08"}
    draft = validate_new_signal(data, container.settings.signals)
    outcome = await container.signals.submit(sessionmaker, draft, source="provider")
    await settle(container)
    async with sessionmaker.begin() as session:
        await container.signals.modify(session, {"stop_loss": "1.07"}, signal_id=outcome.signal.id)
    await settle(container)
    for user_id in (ADMIN_ID, ALICE, BOB, CAROL):
        assert "<code>1.08</code>" in fake_api.last("sendMessage", user_id).params["text"]
        [edit] = edits(fake_api, user_id)
        assert "<code>1.07</code>" in edit.params["text"]


async def test_auto_approve_is_recorded_and_marked(
    container: Container,
    fake_api: FakeBotAPI,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FakeClock,
) -> None:
    await add_users(sessionmaker, [ALICE, BOB], clock.now, auto_approve=(ALICE,))
    outcome = await publish(container)
    message = fake_api.last("sendMessage", ALICE)
    assert "Auto-approved" in message.params["text"]
    assert "reply_markup" not in message.params
    approvals = await approvals_of(sessionmaker, outcome.signal.public_id)
    assert approvals[ALICE].decision == "auto" and approvals[ALICE].decided_at == clock.now
    assert approvals[BOB].decision == "pending"
    assert "reply_markup" in fake_api.last("sendMessage", BOB).params


@pytest.mark.parametrize("settings_overrides", [{"signals": {"require_subscription": True}}])
async def test_require_subscription_without_subscriptions_sends_to_admins_only(
    container: Container,
    fake_api: FakeBotAPI,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FakeClock,
) -> None:
    await add_users(sessionmaker, [ADMIN_ID, ALICE, BOB, 3100], clock.now, admins=(ADMIN_ID, 3100))
    outcome = await publish(container)
    assert outcome.recipients == 2
    assert {c.chat_id for c in fake_api.sent("sendMessage")} == {ADMIN_ID, 3100}


@pytest.mark.parametrize("settings_overrides", [{"signals": {"require_subscription": True}}])
async def test_require_subscription_sends_to_subscribers_and_admins(
    container: Container,
    fake_api: FakeBotAPI,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FakeClock,
) -> None:
    await add_users(sessionmaker, [ADMIN_ID, ALICE, BOB, CAROL], clock.now, admins=(ADMIN_ID,))
    async with sessionmaker.begin() as session:
        for user_id, days in ((BOB, 30), (ALICE, -1)):  # Alice's ran out yesterday
            session.add(
                Subscription(
                    user_id=user_id,
                    plan_code="month",
                    expires_at=clock.now + timedelta(days=days),
                    updated_at=clock.now,
                )
            )
    outcome = await publish(container)
    assert outcome.recipients == 2
    assert {c.chat_id for c in fake_api.sent("sendMessage")} == {ADMIN_ID, BOB}
