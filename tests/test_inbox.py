"""The inbox in both modes: stored before processed, failed updates retried then
dead-lettered, admins told once, /retry; the polling loop's offsets and back-off."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiogram import F
from aiogram.types import Message
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from bot.container import Container
from bot.domain.errors import AppError, ErrorCode
from bot.factory import create_dispatcher
from bot.intake.inbox import Inbox
from db.models import ProcessedUpdate
from tests.conftest import ADMIN_ID, FakeClock
from tests.fake_bot_api import FakeBotAPI, message_update, successful_payment_update
from tests.inbox_support import INBOX_OVERRIDES, Harness, RefusedCommits, harness
from tests.webhook_support import WEBHOOK_OVERRIDES

MODES = ["webhook", "polling"]
USER = 8_100_001


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {**WEBHOOK_OVERRIDES, **INBOX_OVERRIDES}


@pytest.fixture(params=MODES)
async def bot_in(
    request: pytest.FixtureRequest,
    container: Container,
    fake_api: FakeBotAPI,
    aiohttp_server: Any,
) -> Any:
    async with harness(request.param, container, fake_api, aiohttp_server) as instance:
        yield instance


@dataclass
class Flaky:
    """A handler of one command: counts its runs, raises ``error`` while it is set."""

    error: Exception | None
    runs: int = 0


def flaky(bot_in: Harness, command: str, error: Exception | None) -> Flaky:
    state = Flaky(error)

    async def handler(message: Message) -> None:
        state.runs += 1
        if state.error is not None:
            raise state.error
        await message.answer("fixed and done")

    bot_in.dp.message.register(handler, F.text == command)
    return state


def payment(update_id: int, charge_id: str) -> dict[str, Any]:
    update = successful_payment_update(
        USER, payload="sub:month:250:30", total_amount=250, charge_id=charge_id
    )
    return {"update_id": update_id, **update}


def apologies(api: FakeBotAPI, chat_id: int) -> list[str]:
    return [text for text in api.texts(chat_id) if "something went wrong" in text]


def admin_notices(api: FakeBotAPI, update_id: int) -> list[str]:
    return [text for text in api.texts(ADMIN_ID) if f"Update <code>{update_id}</code> (" in text]


# ---------------------------------------------------------------- a commit that fails


async def test_a_payment_whose_commit_fails_is_retried_and_stored_once(
    bot_in: Harness, fake_api: FakeBotAPI
) -> None:
    await bot_in.send_and_wait({"update_id": 10, **message_update(USER, "/start")})
    with RefusedCommits(times=2) as refused:
        await bot_in.send_and_wait(payment(11, "charge-commit"))
    assert refused.refused == 2  # two attempts failed at their commit, the third went in
    assert await bot_in.payments() == 1
    row = await bot_in.row(11)
    assert row is not None and row.handled_at is not None and row.payload is None
    assert row.attempts == 2 and row.last_error == "OperationalError"
    assert apologies(fake_api, USER) == []  # it went through before the last attempt
    assert await bot_in.dead_letter(11) is None
    # Telegram's redelivery (webhook) or a restart's refetch (polling) changes nothing.
    await bot_in.send_and_wait(payment(11, "charge-commit"))
    assert await bot_in.payments() == 1


async def test_a_failed_update_is_not_marked_until_its_retry_succeeds(
    bot_in: Harness, fake_api: FakeBotAPI, clock: FakeClock
) -> None:
    await bot_in.send_and_wait({"update_id": 20, **message_update(USER, "/start")})
    gate = asyncio.Event()
    with RefusedCommits(times=1):
        update_id = await bot_in.send(payment(21, "charge-pending"))
        # Hold the retry: between the attempts the row is pending, with the failure counted.
        bot_in.inbox.stop_accepting()
        for _ in range(200):
            row = await bot_in.row(update_id)
            if row is not None and row.attempts == 1:
                break
            await asyncio.sleep(0.01)
        gate.set()
    assert row is not None and row.handled_at is None and row.payload
    assert row.last_error == "OperationalError"
    assert row.retry_at is not None and row.retry_at > row.received_at
    assert await bot_in.payments() == 0
    await bot_in.inbox.join()
    await bot_in.inbox.close()
    # After a restart (a new inbox on the same database) recovery finds it once it is
    # overdue, and it succeeds.
    restarted = Inbox(bot_in.container, bot_in.dp)
    try:
        assert await restarted.recover() == 0  # not overdue yet
        clock.advance(seconds=bot_in.container.settings.webhook.recover_after_s + 1)
        assert await restarted.recover() == 1
        await restarted.join()
    finally:
        await restarted.close()
    assert await bot_in.payments() == 1
    row = await bot_in.row(update_id)
    assert row is not None and row.handled_at is not None


# ---------------------------------------------------------------- always failing


async def test_an_update_that_always_fails_becomes_a_dead_letter_and_retry_runs_it(
    bot_in: Harness, fake_api: FakeBotAPI
) -> None:
    fragile = flaky(bot_in, "/fragile", RuntimeError("a bug"))
    max_attempts = bot_in.container.settings.inbox.max_attempts
    await bot_in.send_and_wait({"update_id": 30, **message_update(USER, "/start")})
    await bot_in.send_and_wait({"update_id": 31, **message_update(USER, "/fragile")})

    assert fragile.runs == max_attempts
    assert len(apologies(fake_api, USER)) == 1  # one apology, on the last attempt
    letter = await bot_in.dead_letter(31)
    assert letter is not None
    assert letter.attempts == max_attempts and letter.last_error == "RuntimeError"
    assert letter.user_id == USER and json.loads(letter.payload)["update_id"] == 31
    row = await bot_in.row(31)
    assert row is not None and row.handled_at is not None and row.payload is None
    [notice] = admin_notices(fake_api, 31)
    assert f"user <code>{USER}</code>" in notice and "RuntimeError" in notice
    assert "/retry 31" in notice
    assert "a bug" not in notice  # the class only: a message may quote user input
    assert await bot_in.inbox.recover() == 0  # settled: recovery leaves it alone

    listing = await admin_says(bot_in, 32, "/deadletters")
    assert "<code>31</code>" in listing and "/retry 31" in listing

    # Fixed, then retried by an admin: it runs through the whole stack once more.
    fragile.error = None
    await admin_says(bot_in, 33, "/retry 31")
    await bot_in.inbox.join()
    assert fragile.runs == max_attempts + 1
    assert fake_api.texts(USER)[-1] == "fixed and done"
    assert await bot_in.dead_letter(31) is None
    assert any("went through" in text for text in fake_api.texts(ADMIN_ID))
    assert len(admin_notices(fake_api, 31)) == 1
    assert "No dead letters" in await admin_says(bot_in, 34, "/deadletters")


async def test_a_retried_dead_letter_that_fails_again_goes_back_once(
    bot_in: Harness, fake_api: FakeBotAPI
) -> None:
    poison = flaky(bot_in, "/poison", RuntimeError("still broken"))
    max_attempts = bot_in.container.settings.inbox.max_attempts
    await bot_in.send_and_wait({"update_id": 40, **message_update(USER, "/poison")})
    assert poison.runs == max_attempts
    assert len(admin_notices(fake_api, 40)) == 1

    await admin_says(bot_in, 41, "/retry 40")
    await bot_in.inbox.join()
    assert poison.runs == max_attempts + 1  # one attempt, then straight back
    letter = await bot_in.dead_letter(40)
    assert letter is not None and letter.retried_at is None
    notices = admin_notices(fake_api, 40)
    assert len(notices) == 2 and "failed again after a retry" in notices[1]
    assert len(apologies(fake_api, USER)) == 1  # the user is not apologised to again
    assert "no dead letter" in (await admin_says(bot_in, 42, "/retry 999")).lower()
    assert "Usage" in await admin_says(bot_in, 43, "/retry")


async def test_retry_is_for_admins_only(bot_in: Harness, fake_api: FakeBotAPI) -> None:
    await bot_in.send_and_wait({"update_id": 50, **message_update(USER, "/retry 1")})
    assert fake_api.texts(USER)[-1] == "This command is for admins."


async def test_an_app_error_is_the_answer_and_is_not_retried(
    bot_in: Harness, fake_api: FakeBotAPI
) -> None:
    refuses = flaky(bot_in, "/refuse", AppError(ErrorCode.SIGNAL_NOT_FOUND))
    await bot_in.send_and_wait({"update_id": 60, **message_update(USER, "/refuse")})
    assert refuses.runs == 1
    assert fake_api.texts(USER) == ["There is no such signal."]
    row = await bot_in.row(60)
    assert row is not None and row.handled_at is not None and row.attempts == 0


async def test_received_at_is_the_claim_time_in_the_data(bot_in: Harness, clock: FakeClock) -> None:
    seen: list[datetime] = []

    async def note(message: Message, received_at: datetime) -> None:
        seen.append(received_at)

    bot_in.dp.message.register(note, F.text == "/note")
    await bot_in.send_and_wait({"update_id": 70, **message_update(USER, "/note")})
    row = await bot_in.row(70)
    assert row is not None
    assert seen == [clock.now] == [row.received_at]


async def test_backoff_doubles_up_to_its_ceiling(bot_in: Harness) -> None:
    settings = bot_in.container.settings.inbox
    delays = [bot_in.inbox.backoff(n) for n in range(1, 6)]
    base, ceiling = settings.retry_backoff_s, settings.retry_backoff_max_s
    assert delays == [min(base * 2**k, ceiling) for k in range(5)]
    assert delays[-1] == ceiling


async def admin_says(bot_in: Harness, update_id: int, text: str) -> str:
    """An admin's command through the same mode; the bot's last answer to the admin."""
    before = len(bot_in.api.texts(ADMIN_ID))
    await bot_in.send_and_wait({"update_id": update_id, **message_update(ADMIN_ID, text)})
    for _ in range(100):
        answers = bot_in.api.texts(ADMIN_ID)[before:]
        if answers:
            return answers[0]
        await asyncio.sleep(0.01)
    raise AssertionError(f"no answer to {text}")


# ---------------------------------------------------------------- the polling loop


@pytest.fixture
async def polled(container: Container, fake_api: FakeBotAPI, aiohttp_server: Any) -> Any:
    async with harness("polling", container, fake_api, aiohttp_server) as instance:
        yield instance


def offsets(api: FakeBotAPI) -> list[int]:
    return [
        int(call.params.get("offset") or 0) for call in api.calls if call.method == "getUpdates"
    ]


async def test_polling_confirms_a_batch_only_after_it_is_stored(
    polled: Harness, fake_api: FakeBotAPI
) -> None:
    refused = 0

    def refuse_claims(conn: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        nonlocal refused
        if statement.lstrip().upper().startswith("INSERT INTO PROCESSED_UPDATES") and refused < 3:
            refused += 1
            raise OperationalError(statement, None, Exception("disk full"))

    engine = polled.container.engine.sync_engine
    sa_event.listen(engine, "before_cursor_execute", refuse_claims)
    try:
        ids = [fake_api.inject_update(message_update(USER + n, "/help")) for n in range(3)]
        for _ in range(300):
            if refused == 3:
                break
            await asyncio.sleep(0.01)
        # Three claims refused: the offset never moved past the batch, Telegram keeps it.
        assert refused == 3
        assert all(offset <= ids[0] for offset in offsets(fake_api))
        assert [u["update_id"] for u in fake_api.pending_updates] == ids
    finally:
        sa_event.remove(engine, "before_cursor_execute", refuse_claims)
    await fake_api.wait_for("getUpdates", lambda call: call.params.get("offset") == ids[-1] + 1)
    await polled.inbox.join()
    for n, update_id in enumerate(ids):
        row = await polled.row(update_id)
        assert row is not None and row.handled_at is not None
        assert len(fake_api.sent("sendMessage", chat_id=USER + n)) == 1


async def test_polling_backs_off_on_5xx_and_429_and_asks_for_the_used_types(
    container: Container, fake_api: FakeBotAPI, aiohttp_server: Any
) -> None:
    # Before the loop's first call, so that the first calls fail.
    fake_api.fail_next("getUpdates", error="500", times=2)
    fake_api.fail_next("getUpdates", error="429", retry_after=1)
    async with harness("polling", container, fake_api, aiohttp_server) as polled:
        await polled.send_and_wait({"update_id": 80, **message_update(USER, "/help")})
        calls = fake_api.sent("getUpdates")
        assert [call.failed for call in calls[:3]] == [500, 500, 429]
        assert calls[3].at - calls[2].at >= 0.9  # the 429's retry_after
        assert len(fake_api.sent("sendMessage", chat_id=USER)) == 1
        assert calls[-1].params["allowed_updates"] == polled.dp.resolve_used_update_types()
        assert "pre_checkout_query" in calls[-1].params["allowed_updates"]


async def test_polling_stops_at_once_when_cancelled(
    container: Container, fake_api: FakeBotAPI, aiohttp_server: Any
) -> None:
    loop = asyncio.get_running_loop()
    async with harness("polling", container, fake_api, aiohttp_server):
        await fake_api.wait_for("getUpdates")  # waiting in its long poll (5 s)
        started = loop.time()
    assert loop.time() - started < 0.5


async def test_recovery_takes_failed_updates_only_once_their_retry_is_overdue(
    polled: Harness, clock: FakeClock
) -> None:
    now = clock.now
    cutoff = timedelta(seconds=polled.container.settings.webhook.recover_after_s + 1)
    rows = [
        (90, now - cutoff, now - cutoff),  # overdue: taken
        (91, now - cutoff, now + timedelta(seconds=5)),  # due later: left alone
    ]
    async with polled.container.sessionmaker.begin() as session:
        for update_id, received_at, retry_at in rows:
            session.add(
                ProcessedUpdate(
                    update_id=update_id,
                    received_at=received_at,
                    retry_at=retry_at,
                    attempts=1,
                    last_error="RuntimeError",
                    payload=json.dumps({"update_id": update_id, **message_update(USER, "/help")}),
                )
            )
    assert await polled.inbox.recover() == 1
    await polled.inbox.join()
    taken, left = await polled.row(90), await polled.row(91)
    assert taken is not None and taken.handled_at is not None
    assert left is not None and left.handled_at is None


async def test_polling_runs_what_the_last_run_left_pending_at_once_at_start_up(
    container: Container, fake_api: FakeBotAPI, clock: FakeClock
) -> None:
    # Cut by the last shutdown a moment ago; Telegram sends it again, but it is claimed.
    update = {"update_id": 95, **message_update(USER, "/help")}
    async with container.sessionmaker.begin() as session:
        session.add(
            ProcessedUpdate(update_id=95, received_at=clock.now, payload=json.dumps(update))
        )
    clock.advance(seconds=2)  # the restart
    dp = create_dispatcher(container)
    shared = Inbox(container, dp)  # webhook: another instance may be running it right now
    assert await shared.recover() == 0
    await shared.close()
    sole = Inbox(container, dp, sole_consumer=True)  # polling: only we take this bot's updates
    try:
        await sole.start()
        await fake_api.wait_for("sendMessage", lambda call: call.chat_id == USER)
        await sole.join()
    finally:
        await sole.close()
        await dp.storage.close()
    async with container.sessionmaker() as session:
        row = await session.get(ProcessedUpdate, 95)
    assert row is not None and row.handled_at is not None
