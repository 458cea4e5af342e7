"""Webhook mode: secret token, idempotency (also concurrent, across instances and restarts),
crash recovery, per-chat order, set-up at start-up."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiogram import Bot, F
from aiogram.types import Message, Update
from sqlalchemy import event as sa_event
from sqlalchemy import func, select

from bot.chat.middlewares.inbox import CLAIMED_KEY
from bot.config import ConfigError
from bot.container import Container
from bot.factory import create_bot, create_container
from bot.infra.updatelog import Outcome, UpdateTrace
from bot.intake import inbox as inbox_module
from bot.intake.webhook import ChatQueues, register_webhook
from db.models import ProcessedUpdate, User
from tests.conftest import FakeClock, make_settings
from tests.fake_bot_api import FakeBotAPI, close_bot_session, message_update
from tests.webhook_support import (
    SECRET,
    WEBHOOK_OVERRIDES,
    Instance,
    dispose,
    start_instance,
)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return WEBHOOK_OVERRIDES


@pytest.fixture
async def hook(
    container: Container, fake_api: FakeBotAPI, aiohttp_server: Any
) -> AsyncIterator[Instance]:
    instance = await start_instance(container, fake_api, aiohttp_server)
    try:
        yield instance
    finally:
        await instance.close()


async def stored_count(instance: Instance) -> int:
    async with instance.container.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(ProcessedUpdate)) or 0)


# ---------------------------------------------------------------- the secret token


@pytest.mark.parametrize(
    "secret",
    [None, "", "wrong", SECRET[:-1], SECRET + "x", SECRET.upper(), "é" + SECRET[1:]],
    ids=["missing", "empty", "wrong", "prefix", "longer", "case", "non-ascii"],
)
async def test_missing_or_wrong_secret_is_401_and_nothing_processed(
    hook: Instance, fake_api: FakeBotAPI, secret: str | None
) -> None:
    status, body = await hook.deliver(
        {"update_id": 501, **message_update(7001, "/help")}, secret=secret
    )
    await hook.intake.join()
    assert status == 401
    assert json.loads(body)["error"] == "unauthorized"
    assert fake_api.sent("sendMessage") == []
    assert await stored_count(hook) == 0


async def test_valid_update_is_answered_and_processed_once(
    hook: Instance, fake_api: FakeBotAPI
) -> None:
    status, body = await hook.deliver_and_wait({"update_id": 502, **message_update(7002, "/help")})
    assert status == 200
    assert json.loads(body) == {"ok": True, "result": "accepted"}
    [reply] = fake_api.sent("sendMessage", chat_id=7002)
    assert "/start" in str(reply.text)
    row = await hook.row(502)
    assert row is not None and row.handled_at is not None and row.payload is None


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"\xff\xfe",
        b"[1, 2]",
        b'{"no": "update_id"}',
        b'{"update_id": 1.5}',
        b'{"update_id": null}',
        b'{"update_id": 12, "message": {"text": "no chat, no date"}}',
    ],
)
async def test_a_body_that_is_not_an_update_is_400_and_nothing_stored(
    hook: Instance, body: bytes
) -> None:
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(hook.url, data=body, headers=headers) as answer,
    ):
        assert answer.status == 400
        assert (await answer.json())["error"] == "bad_request"
    assert await stored_count(hook) == 0


async def test_get_on_the_webhook_path_is_405(hook: Instance) -> None:
    async with aiohttp.ClientSession() as http, http.get(hook.url) as answer:
        assert answer.status == 405
        assert (await answer.json())["error"] == "method_not_allowed"


# ---------------------------------------------------------------- idempotency


async def test_the_same_update_twice_is_handled_once(hook: Instance, fake_api: FakeBotAPI) -> None:
    update = {"update_id": 503, **message_update(7003, "/help")}
    first = await hook.deliver_and_wait(update)
    second = await hook.deliver_and_wait(update)
    assert first[0] == second[0] == 200
    assert json.loads(second[1])["result"] == "duplicate"
    assert len(fake_api.sent("sendMessage", chat_id=7003)) == 1


async def test_the_same_update_concurrently_is_handled_once(
    hook: Instance, fake_api: FakeBotAPI
) -> None:
    update = {"update_id": 504, **message_update(7004, "/help")}
    answers = await asyncio.gather(*(hook.deliver(update) for _ in range(6)))
    await hook.intake.join()
    assert [status for status, _ in answers] == [200] * 6
    results = sorted(json.loads(body)["result"] for _, body in answers)
    assert results == ["accepted"] + ["duplicate"] * 5
    assert len(fake_api.sent("sendMessage", chat_id=7004)) == 1


async def test_two_instances_on_one_database_handle_a_concurrent_update_once(
    hook: Instance, fake_api: FakeBotAPI, aiohttp_server: Any, clock: FakeClock
) -> None:
    # Its own engine, intake and server; the dispatcher is shared because handler routers
    # are module singletons (one dispatcher at a time in a process). The claim decides.
    settings = hook.container.settings
    other_bot = create_bot(settings)
    other = create_container(settings, bot=other_bot, clock=clock)
    second = await start_instance(other, fake_api, aiohttp_server, dp=hook.dp, bot=other_bot)
    try:
        update = {"update_id": 505, **message_update(7005, "/help")}
        answers = await asyncio.gather(
            *(instance.deliver(update) for instance in (hook, second, hook, second))
        )
        await asyncio.gather(hook.intake.join(), second.intake.join())
        results = sorted(json.loads(body)["result"] for _, body in answers)
        assert results == ["accepted", "duplicate", "duplicate", "duplicate"]
        assert len(fake_api.sent("sendMessage", chat_id=7005)) == 1
    finally:
        await second.intake.close()
        await second.server.close()
        await close_bot_session(other_bot)
        await dispose(other)


async def test_redelivery_after_a_restart_is_not_processed(
    hook: Instance, fake_api: FakeBotAPI, aiohttp_server: Any, clock: FakeClock
) -> None:
    update = {"update_id": 506, **message_update(7006, "/help")}
    await hook.deliver_and_wait(update)
    await hook.close()
    settings = hook.container.settings
    new_bot = create_bot(settings)
    restarted = create_container(settings, bot=new_bot, clock=clock)
    instance = await start_instance(restarted, fake_api, aiohttp_server)
    try:
        status, body = await instance.deliver_and_wait(update)
        assert status == 200
        assert json.loads(body)["result"] == "duplicate"
        assert len(fake_api.sent("sendMessage", chat_id=7006)) == 1
    finally:
        await instance.close()
        await close_bot_session(new_bot)
        await dispose(restarted)


async def test_an_update_interrupted_mid_processing_is_recovered_after_a_restart(
    hook: Instance, fake_api: FakeBotAPI, aiohttp_server: Any, clock: FakeClock
) -> None:
    entered = asyncio.Event()

    async def hangs(message: Message) -> None:
        entered.set()
        await asyncio.Event().wait()  # "the process dies" while this runs

    hook.dp.message.register(hangs, F.text == "/help")
    update = {"update_id": 507, **message_update(7007, "/help")}
    status, _ = await hook.deliver(update)
    assert status == 200
    await entered.wait()
    assert await hook.intake.drain(0) == 1  # shutdown budget exhausted: cancelled
    row = await hook.row(507)
    assert row is not None and row.handled_at is None and row.payload  # still pending
    assert fake_api.sent("sendMessage", chat_id=7007) == []
    await hook.close()

    settings = hook.container.settings
    new_bot = create_bot(settings)
    restarted = create_container(settings, bot=new_bot, clock=clock)
    instance = await start_instance(restarted, fake_api, aiohttp_server)
    try:
        assert await instance.intake.recover() == 0  # too recent: maybe still running elsewhere
        clock.advance(seconds=settings.webhook.recover_after_s + 1)
        assert await instance.intake.recover() == 1
        await instance.intake.join()
        assert len(fake_api.sent("sendMessage", chat_id=7007)) == 1
        row = await instance.row(507)
        assert row is not None and row.handled_at is not None and row.payload is None
        assert await instance.intake.recover() == 0
        status, body = await instance.deliver_and_wait(update)  # Telegram's late retry
        assert json.loads(body)["result"] == "duplicate"
        assert len(fake_api.sent("sendMessage", chat_id=7007)) == 1
    finally:
        await instance.close()
        await close_bot_session(new_bot)
        await dispose(restarted)


async def test_the_start_up_round_recovers_and_prunes(
    hook: Instance, fake_api: FakeBotAPI, clock: FakeClock
) -> None:
    now = clock.now
    settings = hook.container.settings.webhook
    old = now.replace(year=now.year - 1)
    pending = {"update_id": 509, **message_update(7009, "/help")}
    async with hook.container.sessionmaker.begin() as session:
        session.add_all(
            [
                ProcessedUpdate(update_id=1, received_at=old, handled_at=old),
                ProcessedUpdate(update_id=2, received_at=now, handled_at=now),
                ProcessedUpdate(
                    update_id=509,
                    received_at=now - timedelta(minutes=1),
                    payload=json.dumps(pending),
                ),
            ]
        )
    await hook.intake.start()
    await fake_api.wait_for("sendMessage", lambda call: call.chat_id == 7009)
    await hook.intake.join()
    assert await hook.row(1) is None  # older than the retention: pruned
    assert await hook.row(2) is not None
    row = await hook.row(509)
    assert row is not None and row.handled_at is not None
    assert settings.retention_days == 7


# ---------------------------------------------------------------- order and concurrency


async def test_updates_of_one_chat_keep_their_order_under_concurrency(
    hook: Instance, fake_api: FakeBotAPI
) -> None:
    done: dict[int, list[int]] = {}

    async def numbered(message: Message) -> None:
        number = int(str(message.text).split()[1])
        await asyncio.sleep((8 - number) * 0.002)  # earlier ones take longer
        done.setdefault(message.chat.id, []).append(number)

    hook.dp.message.register(numbered, F.text.startswith("seq "))

    async def one_chat(chat_id: int) -> None:
        for number in range(8):
            status, _ = await hook.deliver(message_update(chat_id, f"seq {number}"))
            assert status == 200

    chats = [7101, 7102, 7103, 7104]
    await asyncio.gather(*(one_chat(chat_id) for chat_id in chats))
    await hook.intake.join()
    assert done == {chat_id: list(range(8)) for chat_id in chats}


async def test_chat_queues_keep_order_per_key_and_bound_concurrency() -> None:
    queues = ChatQueues(concurrency=3)
    running = 0
    peak = 0
    finished: dict[str, list[int]] = {}

    def job(key: str, number: int) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep((6 - number) * 0.001)
            finished.setdefault(key, []).append(number)
            running -= 1

        return run

    for number in range(6):
        for key in "abcde":
            queues.submit(key, job(key, number))
    assert queues.size == 30
    await queues.join()
    assert finished == {key: list(range(6)) for key in "abcde"}
    assert peak == 3
    assert queues.size == 0


async def test_chat_queues_drain_cancels_what_does_not_finish_in_time() -> None:
    queues = ChatQueues(concurrency=2)
    gate = asyncio.Event()
    finished: list[str] = []

    def job(name: str, wait: bool) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            if wait:
                await gate.wait()
            finished.append(name)

        return run

    queues.submit("a", job("a1", False))
    queues.submit("b", job("b1", True))
    queues.submit("b", job("b2", False))
    await asyncio.sleep(0)
    assert await queues.drain(0.05) == 2  # b1 running, b2 never started
    assert finished == ["a1"]
    assert queues.size == 0


async def test_a_full_queue_answers_503_so_telegram_retries(
    container: Container, fake_api: FakeBotAPI, aiohttp_server: Any
) -> None:
    settings = container.settings.model_copy(
        update={"webhook": container.settings.webhook.model_copy(update={"max_pending": 1})}
    )
    container.settings = settings
    instance = await start_instance(container, fake_api, aiohttp_server)
    gate = asyncio.Event()

    async def slow(message: Message) -> None:
        await gate.wait()

    instance.dp.message.register(slow, F.text == "slow")
    try:
        assert (await instance.deliver(message_update(7201, "slow")))[0] == 200
        status, body = await instance.deliver({"update_id": 9_999, **message_update(7202, "/help")})
        assert status == 503
        assert json.loads(body)["error"] == "unavailable"
        gate.set()
        await instance.intake.join()
        assert await instance.row(9_999) is None  # not stored: the retry will be accepted
        assert (
            await instance.deliver_and_wait({"update_id": 9_999, **message_update(7202, "/help")})
        )[0] == 200
        assert len(fake_api.sent("sendMessage", chat_id=7202)) == 1
    finally:
        await instance.close()


# ---------------------------------------------------------------- set-up


async def test_register_webhook_sets_url_secret_types_and_drop_pending(
    container: Container, bot: Bot, fake_api: FakeBotAPI
) -> None:
    from bot.factory import create_dispatcher

    dp = create_dispatcher(container)
    allowed = await register_webhook(bot, dp, container.settings)
    assert fake_api.webhook is not None
    assert fake_api.webhook["url"] == "https://bot.example.com/tg/webhook"
    assert fake_api.webhook["secret_token"] == SECRET
    assert fake_api.webhook["allowed_updates"] == allowed == dp.resolve_used_update_types()
    assert {"message", "callback_query"} <= set(allowed)
    assert fake_api.webhook.get("drop_pending_updates") in (False, None)
    await dp.storage.close()


async def test_a_webhook_telegram_refuses_is_a_config_error_naming_the_key(
    container: Container, bot: Bot, fake_api: FakeBotAPI
) -> None:
    from bot.factory import create_dispatcher

    fake_api.fail_next(
        "setWebhook", error="400", description="Bad Request: bad webhook: Failed to resolve host"
    )
    dp = create_dispatcher(container)
    try:
        with pytest.raises(ConfigError) as info:
            await register_webhook(bot, dp, container.settings)
    finally:
        await dp.storage.close()
    message = str(info.value)
    assert message.startswith("config error: webhook.url (WEBHOOK__URL")
    assert "Failed to resolve host" in message
    assert SECRET not in message


def test_webhook_mode_without_url_names_the_key(fake_api: FakeBotAPI) -> None:
    settings = make_settings(
        "sqlite+aiosqlite:///unused.sqlite3", fake_api.base_url, telegram={"mode": "webhook"}
    )
    with pytest.raises(ConfigError) as info:
        settings.require_webhook()
    message = str(info.value)
    assert "webhook.url" in message and "WEBHOOK__URL" in message
    assert "\n" not in message


# ---------------------------------------------------------------- where the mark is written


class Statements:
    """Records the SQL an engine sends (for counting writes)."""

    def __init__(self, instance: Instance) -> None:
        self.seen: list[str] = []
        self._engine = instance.container.engine.sync_engine
        sa_event.listen(self._engine, "before_cursor_execute", self._record)

    def _record(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.seen.append(" ".join(statement.split()).lower())

    def close(self) -> None:
        sa_event.remove(self._engine, "before_cursor_execute", self._record)

    def matching(self, prefix: str) -> list[str]:
        return [s for s in self.seen if s.startswith(prefix)]


async def test_read_only_updates_are_marked_after_their_transactions_in_one_batch(
    hook: Instance, fake_api: FakeBotAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    users = list(range(7301, 7311))
    for n, user_id in enumerate(users):  # first contact writes the user: marked inline
        await hook.deliver_and_wait({"update_id": 600 + n, **message_update(user_id, "/help")})
    monkeypatch.setattr(inbox_module, "MARK_INTERVAL_S", 30.0)  # only join() flushes
    statements = Statements(hook)
    try:
        answers = await asyncio.gather(
            *(
                hook.deliver({"update_id": 700 + n, **message_update(user_id, "/help")})
                for n, user_id in enumerate(users)
            )
        )
        assert all(status == 200 for status, _ in answers)
        await fake_api.wait_for("sendMessage", lambda call: call.chat_id == users[-1], count=2)
        await hook.intake.join()
    finally:
        statements.close()
    for n in range(len(users)):
        row = await hook.row(700 + n)
        assert row is not None and row.handled_at is not None and row.payload is None
    [mark] = statements.matching("update processed_updates")
    assert " in (" in mark  # ten updates, one statement
    # Nothing else was written for them: no per-update mark, no user refresh.
    writes = [s for s in statements.seen if s.startswith(("update", "delete"))]
    assert writes == [mark]


async def test_an_update_that_wrote_is_marked_inside_its_own_transaction(
    hook: Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inbox_module, "MARK_INTERVAL_S", 30.0)
    statements = Statements(hook)
    try:
        # A first contact through a link stores the user in the update's own transaction
        # (bot/chat/middlewares/user.py): the mark commits with it, before the answer.
        await hook.deliver_and_wait({"update_id": 720, **message_update(7320, "/start ref_x")})
    finally:
        statements.close()
    row = await hook.row(720)
    assert row is not None and row.handled_at is not None
    [mark] = statements.matching("update processed_updates")
    assert " in (" not in mark  # the single-row mark of the update's own transaction
    assert statements.seen.index(mark) > statements.seen.index(
        next(s for s in statements.seen if s.startswith("insert into users"))
    )


async def test_a_writing_update_finished_elsewhere_first_is_rolled_back_quietly(
    hook: Instance, fake_api: FakeBotAPI, clock: FakeClock
) -> None:
    # Another instance's recovery ran this update and stored its mark meanwhile.
    async with hook.container.sessionmaker.begin() as session:
        session.add(ProcessedUpdate(update_id=730, received_at=clock.now, handled_at=clock.now))

    class Marks:
        def __init__(self) -> None:
            self.deferred: list[int] = []

        def defer(self, update_id: int) -> None:
            self.deferred.append(update_id)

    marks = Marks()
    update = Update.model_validate(
        {"update_id": 730, **message_update(7330, "/start ref_x")},
        context={"bot": hook.intake.bot},
    )
    trace = UpdateTrace.of(update)
    await hook.dp.feed_update(hook.intake.bot, update, trace=trace, **{CLAIMED_KEY: marks})
    assert trace.outcome is Outcome.DUPLICATE
    async with hook.container.sessionmaker() as session:
        assert await session.get(User, 7330) is None  # its write was rolled back
    assert marks.deferred == []
    texts = fake_api.texts(7330)
    assert not any("something went wrong" in text for text in texts)  # no apology
