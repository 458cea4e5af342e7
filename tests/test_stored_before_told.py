"""Stored before told: a message about a write goes out only after its commit.

Each flow runs once with its commit failing (a ``before_commit`` listener raises for the
update's own transaction): the only thing anyone is sent is the apology, nothing of it is
stored (every table is as it was, the outbox included). Then the same flow without the
fault tells everyone once. Last, a handler that writes and then answers directly is
refused (db/update_session.py) before anything leaves.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from aiogram import Dispatcher
from aiogram.filters import Command
from aiogram.types import Message
from sqlalchemy import event, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from bot.chat import texts
from bot.chat.callbacks import (
    DeviceAction,
    DeviceCb,
    DevicePlatformCb,
    DevicesAction,
    DevicesCb,
    SettingsCb,
    SettingsToggle,
    SignalVote,
    Vote,
)
from bot.config import Settings
from bot.container import Container
from bot.domain.checkout import SoldPlan
from bot.domain.signal_rules import validate_new_signal
from db.base import Base
from db.models import (
    Affiliate,
    Approval,
    Commission,
    Device,
    Instruction,
    Payment,
    Payout,
    Referral,
    User,
    UserSettings,
)
from db.repositories.outbox import OutboxRepository
from db.writes import session_wrote
from tests.affiliates_support import TRON_ADDRESS, credit_fill, refer, rows, token_of
from tests.conftest import ADMIN_ID, Chat, FakeClock
from tests.devices_support import OWNER_ID, add_device, add_user
from tests.fake_bot_api import (
    Call,
    FakeApiError,
    FakeBotAPI,
    button,
    successful_payment_update,
)
from tests.signals_support import add_users

REFERRER, BUYER = 6101, 6102
CREDENTIALS_RE = re.compile(r"Device ID: <code>(dev_\w+)</code>\nSecret: <code>([\w-]+)</code>")
# What tells anyone anything: messages, edits, callback answers.
TELLING = frozenset({"sendMessage", "editMessageText", "sendPhoto", "answerCallbackQuery"})


# ------------------------------------------------------------------ the fault and the checks


@contextmanager
def commit_fails(container: Container) -> Iterator[list[str]]:
    """The next commit in this task, on this container's database, that would store
    something fails (the transaction is rolled back instead). Yields what was refused."""
    task = asyncio.current_task()
    engine = container.engine.sync_engine
    refused: list[str] = []

    def before_commit(session: Session) -> None:
        if refused or asyncio.current_task() is not task or session.bind is not engine:
            return
        if session.new or session.dirty or session.deleted or session_wrote(session):
            refused.append("commit")
            raise OperationalError("COMMIT", {}, Exception("disk I/O error (injected)"))

    event.listen(Session, "before_commit", before_commit)
    try:
        yield refused
    finally:
        event.remove(Session, "before_commit", before_commit)
    assert refused, "the flow never reached a commit that stores something"


async def snapshot(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, list[str]]:
    """Every row of every table, outbox included."""
    async with sessionmaker() as session:
        return {
            table.name: sorted(repr(tuple(row)) for row in await session.execute(select(table)))
            for table in Base.metadata.sorted_tables
        }


async def pending_outbox(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with sessionmaker() as session:
        return await OutboxRepository(session).pending_count()


def told(calls: list[Call]) -> list[tuple[str, Any, str]]:
    """(method, chat, text) of every call that told someone something."""
    return [(c.method, c.chat_id, str(c.text or "")) for c in calls if c.method in TELLING]


async def calls_of(chat: Chat, step: Awaitable[object]) -> list[Call]:
    before = len(chat.api.calls)
    await step
    return chat.api.calls[before:]


async def fails_untold(
    chat: Chat, container: Container, step: Awaitable[object], apology_to: int | None
) -> list[Call]:
    """Run ``step`` with its commit failing: only the apology is sent (to ``apology_to``,
    or as the callback answer when None), nothing is stored, no outbox row is left."""
    before = await snapshot(container.sessionmaker)
    with commit_fails(container):
        calls = await calls_of(chat, step)
    if apology_to is None:
        assert told(calls) == [("answerCallbackQuery", None, str(texts.APOLOGY))]
    else:
        assert told(calls) == [("sendMessage", apology_to, str(texts.APOLOGY))]
    assert await snapshot(container.sessionmaker) == before
    assert await pending_outbox(container.sessionmaker) == 0
    return calls


def one(calls: list[Call], method: str, chat_id: Any, part: str) -> Call:
    """The one call of ``method`` to ``chat_id`` whose text has ``part``; no other like it."""
    found = [
        c for c in calls if c.method == method and c.chat_id == chat_id and part in str(c.text)
    ]
    assert len(found) == 1, [c.summary() for c in calls]
    assert found[0].ok
    return found[0]


def answer(calls: list[Call]) -> str | None:
    [reply] = [c for c in calls if c.method == "answerCallbackQuery"]
    return reply.params.get("text")


# ------------------------------------------------------------------ payments and refunds


def payment_update(settings: Settings, charge_id: str) -> dict[str, Any]:
    """BUYER's successful payment of the month plan."""
    plan = settings.checkout.plan("month")
    assert plan is not None
    payload, stars = SoldPlan.of(plan).payload, plan.stars
    return successful_payment_update(
        BUYER, payload=payload, total_amount=stars, charge_id=charge_id
    )


async def test_a_payment_is_confirmed_and_its_commission_told_only_once_stored(
    chat: Chat, container: Container, settings: Settings, clock: FakeClock
) -> None:
    await refer(chat, container.sessionmaker, REFERRER, BUYER, clock.now, first_name="Bea")
    update = payment_update(settings, "ch-1")
    await fails_untold(chat, container, chat.feed(update), apology_to=BUYER)
    assert await rows(container.sessionmaker, Payment) == []

    # Telegram delivers the payment again: now it is stored, and both are told once.
    calls = await calls_of(chat, chat.feed(update))
    one(calls, "sendMessage", BUYER, "Payment received")
    one(calls, "sendMessage", REFERRER, "you earned")
    assert len(told(calls)) == 2
    assert len(await rows(container.sessionmaker, Payment)) == 1
    assert len(await rows(container.sessionmaker, Commission)) == 1


async def test_a_refund_is_told_to_admin_user_and_affiliate_only_once_stored(
    chat: Chat,
    container: Container,
    fake_api: FakeBotAPI,
    settings: Settings,
    clock: FakeClock,
) -> None:
    await refer(chat, container.sessionmaker, REFERRER, BUYER, clock.now)
    await chat.feed(payment_update(settings, "ch-2"))
    await chat.send(ADMIN_ID, "/help")  # the admin's row exists

    calls = await fails_untold(
        chat, container, chat.send(ADMIN_ID, "/refund ch-2"), apology_to=ADMIN_ID
    )
    # The Stars went back (that call comes before the write, by design), nothing else did.
    assert [c.method for c in calls if c.method == "refundStarPayment"] == ["refundStarPayment"]
    [payment] = await rows(container.sessionmaker, Payment)
    assert payment.refunded_at is None

    def already(call: object) -> None:
        raise FakeApiError(400, "Bad Request: CHARGE_ALREADY_REFUNDED")

    fake_api.set_handler("refundStarPayment", already)
    calls = await calls_of(chat, chat.send(ADMIN_ID, "/refund ch-2"))
    one(calls, "sendMessage", ADMIN_ID, "Refunded 250")
    one(calls, "sendMessage", BUYER, "was refunded")
    one(calls, "sendMessage", REFERRER, "its commission of")
    assert len(told(calls)) == 3
    [payment] = await rows(container.sessionmaker, Payment)
    assert payment.refunded_at is not None
    [commission] = await rows(container.sessionmaker, Commission)
    assert commission.state == "reversed"


async def test_a_referral_is_told_to_the_referrer_only_once_stored(
    chat: Chat, container: Container, clock: FakeClock
) -> None:
    await chat.send(REFERRER, "/start")
    token = await token_of(container.sessionmaker, REFERRER, clock.now)
    # A new user's first contact through the link: the new row is part of what fails.
    await fails_untold(chat, container, chat.send(BUYER, f"/start ref_{token}"), apology_to=BUYER)
    async with container.sessionmaker() as session:
        assert await session.get(User, BUYER) is None

    calls = await calls_of(chat, chat.send(BUYER, f"/start ref_{token}", first_name="Bea"))
    one(calls, "sendMessage", REFERRER, "Bea")
    one(calls, "sendMessage", BUYER, "Bea")  # the greeting
    assert len(told(calls)) == 2
    [referral] = await rows(container.sessionmaker, Referral)
    assert (referral.referrer_id, referral.referred_id) == (REFERRER, BUYER)


# ------------------------------------------------------------------ payouts


async def available_balance_for(
    chat: Chat, container: Container, settings: Settings, clock: FakeClock
) -> None:
    """REFERRER gets 100.00 USD available (the hold is over)."""
    await refer(chat, container.sessionmaker, REFERRER, BUYER, clock.now)
    await credit_fill(container.sessionmaker, settings, BUYER, "fill-1", "100", clock.now)
    clock.advance(days=15)
    await chat.send(ADMIN_ID, "/help")


async def confirmation_screen(chat: Chat, fake_api: FakeBotAPI) -> Call:
    await chat.send(REFERRER, "/payout")
    await chat.press(REFERRER, button(fake_api.last("sendMessage", REFERRER), "USDT"))
    await chat.send(REFERRER, TRON_ADDRESS)
    await chat.send(REFERRER, "60")
    return fake_api.last("sendMessage", REFERRER)


async def test_a_payout_request_and_each_decision_are_told_only_once_stored(
    chat: Chat,
    container: Container,
    fake_api: FakeBotAPI,
    settings: Settings,
    clock: FakeClock,
) -> None:
    sessionmaker = container.sessionmaker
    await available_balance_for(chat, container, settings, clock)

    # Requested.
    screen = await confirmation_screen(chat, fake_api)
    confirm = chat.press(
        REFERRER, button(screen, "Confirm"), message_id=screen.result["message_id"]
    )
    await fails_untold(chat, container, confirm, apology_to=None)
    assert await rows(sessionmaker, Payout) == []
    screen = await confirmation_screen(chat, fake_api)  # the conversation starts over
    calls = await chat.press(
        REFERRER, button(screen, "Confirm"), message_id=screen.result["message_id"]
    )
    [payout] = await rows(sessionmaker, Payout)
    one(calls, "editMessageText", REFERRER, f"Request #{payout.id} sent")
    card = one(calls, "sendMessage", ADMIN_ID, f"Payout request #{payout.id}")
    assert answer(calls) is None and len(told(calls)) == 3
    card_id = card.result["message_id"]

    # Approved.
    approve = chat.press(ADMIN_ID, button(card, "Approve"), message_id=card_id)
    await fails_untold(chat, container, approve, apology_to=None)
    assert (await rows(sessionmaker, Payout))[0].state == "requested"
    calls = await chat.press(ADMIN_ID, button(card, "Approve"), message_id=card_id)
    edited = one(calls, "editMessageText", ADMIN_ID, "approved")
    one(calls, "sendMessage", REFERRER, "was approved")
    assert len(told(calls)) == 3  # and the callback answer, after the commit
    assert (await rows(sessionmaker, Payout))[0].state == "approved"

    # Paid.
    await chat.press(ADMIN_ID, button(edited, "Mark paid"), message_id=card_id)
    await fails_untold(chat, container, chat.send(ADMIN_ID, "tx-9"), apology_to=ADMIN_ID)
    assert (await rows(sessionmaker, Payout))[0].state == "approved"
    await chat.press(ADMIN_ID, button(edited, "Mark paid"), message_id=card_id)
    calls = await calls_of(chat, chat.send(ADMIN_ID, "tx-9"))
    one(calls, "editMessageText", ADMIN_ID, "tx-9")
    one(calls, "sendMessage", ADMIN_ID, "is now paid")
    one(calls, "sendMessage", REFERRER, "was sent to")
    assert len(told(calls)) == 3
    assert (await rows(sessionmaker, Payout))[0].state == "paid"


async def test_a_rejected_payout_is_told_only_once_stored(
    chat: Chat,
    container: Container,
    fake_api: FakeBotAPI,
    settings: Settings,
    clock: FakeClock,
) -> None:
    await available_balance_for(chat, container, settings, clock)
    screen = await confirmation_screen(chat, fake_api)
    await chat.press(REFERRER, button(screen, "Confirm"), message_id=screen.result["message_id"])
    card = fake_api.last("sendMessage", ADMIN_ID)
    card_id = card.result["message_id"]

    await chat.press(ADMIN_ID, button(card, "Reject"), message_id=card_id)
    await fails_untold(chat, container, chat.send(ADMIN_ID, "wrong address"), ADMIN_ID)
    assert (await rows(container.sessionmaker, Payout))[0].state == "requested"
    await chat.press(ADMIN_ID, button(card, "Reject"), message_id=card_id)
    calls = await calls_of(chat, chat.send(ADMIN_ID, "wrong address"))
    one(calls, "editMessageText", ADMIN_ID, "wrong address")
    one(calls, "sendMessage", ADMIN_ID, "is now rejected")
    one(calls, "sendMessage", REFERRER, "was rejected: wrong address")
    assert len(told(calls)) == 3
    money = (await rows(container.sessionmaker, Affiliate, Affiliate.user_id == REFERRER))[0]
    assert (money.balance_minor, money.reserved_minor) == (10_000, 0)


# ------------------------------------------------------------------ signals


async def test_an_approval_is_answered_and_shown_only_once_stored(
    chat: Chat, container: Container, fake_api: FakeBotAPI, clock: FakeClock
) -> None:
    alice = 3101
    await add_users(container.sessionmaker, [ADMIN_ID, alice], clock.now, admins=(ADMIN_ID,))
    await add_device(container, owner_id=alice)  # an approval opens a trade on it
    draft = validate_new_signal(
        {"symbol": "EURUSD", "side": "buy", "stop_loss": "1.08", "take_profit": "1.1"},
        container.settings.signals,
    )
    outcome = await container.signals.submit(container.sessionmaker, draft, source="provider")
    await container.outbox_worker.drain()
    message_id = fake_api.last("sendMessage", alice).result["message_id"]
    press = SignalVote(action=Vote.APPROVE, signal=outcome.signal.id).pack()

    await fails_untold(
        chat, container, chat.press(alice, press, message_id=message_id), apology_to=None
    )
    async with container.sessionmaker() as session:
        approval = (await session.scalars(select(Approval).where(Approval.user_id == alice))).one()
        assert approval.decision == "pending"
        assert (await session.scalars(select(Instruction))).first() is None

    calls = await chat.press(alice, press, message_id=message_id)
    assert answer(calls) == str(texts.VOTE_APPROVED)
    [edit] = [c for c in calls if c.method == "editMessageText"]
    assert edit.chat_id == alice and edit.params["message_id"] == message_id
    assert len(told(calls)) == 2
    async with container.sessionmaker() as session:
        approval = (await session.scalars(select(Approval).where(Approval.user_id == alice))).one()
        assert approval.decision == "approved"
        assert len((await session.scalars(select(Instruction))).all()) == 1


# ------------------------------------------------------------------ devices


async def test_a_new_device_and_its_key_are_told_only_once_stored(
    chat: Chat, container: Container
) -> None:
    await add_user(container)
    add = DevicesCb(action=DevicesAction.ADD).pack()
    mt5 = DevicePlatformCb(platform="mt5").pack()
    await chat.press(OWNER_ID, add)
    await chat.send(OWNER_ID, "Office")
    await fails_untold(chat, container, chat.press(OWNER_ID, mt5), apology_to=None)
    assert await rows(container.sessionmaker, Device) == []

    await chat.press(OWNER_ID, add)  # the conversation starts over
    await chat.send(OWNER_ID, "Office")
    calls = await chat.press(OWNER_ID, mt5)
    [device] = await rows(container.sessionmaker, Device)
    one(calls, "editMessageText", OWNER_ID, "New device <b>Office</b>")
    credentials = one(calls, "sendMessage", OWNER_ID, "Secret:")
    match = CREDENTIALS_RE.search(str(credentials.text))
    assert match and match.group(1) == device.public_id
    assert len(told(calls)) == 3  # and the callback answer
    # The secret is derived, never stored: not in the outbox either.
    assert match.group(2) not in repr(await snapshot(container.sessionmaker))


async def test_a_rotated_or_revoked_key_is_told_only_once_stored(
    chat: Chat, container: Container
) -> None:
    device, first = await add_device(container)
    rotate = DeviceCb(action=DeviceAction.ROTATE_CONFIRM, device=device.pk, version=1).pack()
    await fails_untold(chat, container, chat.press(OWNER_ID, rotate), apology_to=None)
    [stored] = await rows(container.sessionmaker, Device)
    assert stored.key_version == 1

    calls = await chat.press(OWNER_ID, rotate)  # the same button works: nothing changed
    assert answer(calls) == str(texts.KEY_ROTATED_TOAST)
    one(calls, "editMessageText", OWNER_ID, "<b>Office</b>")
    credentials = one(calls, "sendMessage", OWNER_ID, "Secret:")
    match = CREDENTIALS_RE.search(str(credentials.text))
    assert match and match.group(2) != first.secret
    assert len(told(calls)) == 3
    assert (await rows(container.sessionmaker, Device))[0].key_version == 2

    revoke = DeviceCb(action=DeviceAction.REVOKE_CONFIRM, device=device.pk, version=2).pack()
    await fails_untold(chat, container, chat.press(OWNER_ID, revoke), apology_to=None)
    assert (await rows(container.sessionmaker, Device))[0].revoked_at is None
    calls = await chat.press(OWNER_ID, revoke)
    one(calls, "editMessageText", OWNER_ID, "was revoked")
    assert len(told(calls)) == 2
    assert (await rows(container.sessionmaker, Device))[0].revoked_at is not None


# ------------------------------------------------------------------ settings and support


async def test_a_setting_is_answered_and_shown_only_once_stored(
    chat: Chat, container: Container
) -> None:
    await chat.send(OWNER_ID, "/settings")
    screen = chat.api.last("sendMessage", OWNER_ID)
    press = SettingsCb(toggle=SettingsToggle.AUTO_APPROVE).pack()
    pressed = chat.press(OWNER_ID, press, message_id=screen.result["message_id"])
    await fails_untold(chat, container, pressed, apology_to=None)
    assert await rows(container.sessionmaker, UserSettings) == []

    calls = await chat.press(OWNER_ID, press, message_id=screen.result["message_id"])
    assert answer(calls) == texts.setting_switched("auto_approve", True)
    one(calls, "editMessageText", OWNER_ID, "")
    assert len(told(calls)) == 2
    [prefs] = await rows(container.sessionmaker, UserSettings)
    assert prefs.auto_approve


async def test_a_payment_question_reaches_the_admins_only_once_stored(
    chat: Chat, container: Container
) -> None:
    await chat.send(BUYER, "/help")
    question = chat.send(BUYER, "/paysupport where is my plan?")
    await fails_untold(chat, container, question, apology_to=BUYER)

    calls = await calls_of(chat, chat.send(BUYER, "/paysupport where is my plan?"))
    one(calls, "sendMessage", ADMIN_ID, "where is my plan?")
    one(calls, "sendMessage", BUYER, str(texts.PAYSUPPORT_SENT))
    assert len(told(calls)) == 2


# ------------------------------------------------------------------ the guard


async def test_a_handler_that_writes_then_answers_directly_is_refused(
    chat: Chat, dp: Dispatcher, container: Container, caplog: pytest.LogCaptureFixture
) -> None:
    async def tells_early(message: Message, session: AsyncSession) -> None:
        session.add(Affiliate(user_id=OWNER_ID, token="tells-early", created_at=container.clock()))
        await session.flush()
        await message.answer("Your account is ready.")  # before the commit: refused

    dp.message.register(tells_early, Command("tell_early"))  # before every router
    await add_user(container)
    replies = await chat.send(OWNER_ID, "/tell_early")
    assert replies == [str(texts.APOLOGY)]
    assert await rows(container.sessionmaker, Affiliate) == []
    # A programming error, logged as such with the update that made it.
    assert any("failed: TellBeforeCommitError" in r.getMessage() for r in caplog.records)
