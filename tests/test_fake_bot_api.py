"""Tests for the fake Telegram Bot API server, driven through aiogram's real HTTP session."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.filters import CommandStart
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LabeledPrice,
    Message,
    Update,
)
from aiohttp import web

from tests.fake_bot_api import (
    NOT_MODIFIED_DESCRIPTION,
    Call,
    FakeApiError,
    FakeBotAPI,
    callback_update,
    close_bot_session,
    message_update,
    pre_checkout_update,
    successful_payment_update,
    user_dict,
)

TOKEN = "123456:" + "A" * 35
USER = 42
OTHER_USER = 43


@pytest.fixture
async def fake_api() -> AsyncIterator[FakeBotAPI]:
    api = FakeBotAPI()
    await api.start()
    yield api
    await api.close()


@pytest.fixture
async def bot(fake_api: FakeBotAPI) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(fake_api.base_url))
    bot = Bot(token=TOKEN, session=session)
    yield bot
    await close_bot_session(bot)  # bot.session.close() without aiogram's 250 ms TLS pause


def keyboard(*data: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=d.title(), callback_data=d) for d in data]]
    )


async def test_start_returns_local_base_url(fake_api: FakeBotAPI) -> None:
    assert fake_api.base_url.startswith("http://127.0.0.1:")
    assert int(fake_api.base_url.rsplit(":", 1)[1]) > 0


async def test_get_me(bot: Bot, fake_api: FakeBotAPI) -> None:
    me = await bot.get_me()

    assert me.id == 7000000001
    assert me.is_bot is True
    assert me.username == "signalbridge_test_bot"
    assert me.can_join_groups is True
    (call,) = fake_api.sent("getMe")
    assert call.token == TOKEN
    assert call.method == "getMe"
    assert call.ok


async def test_send_message_with_inline_keyboard(bot: Bot, fake_api: FakeBotAPI) -> None:
    message = await bot.send_message(USER, "Approve signal?", reply_markup=keyboard("yes", "no"))

    assert isinstance(message, Message)
    assert message.message_id == 1
    assert message.chat.id == USER
    assert message.chat.type == "private"
    assert message.from_user is not None and message.from_user.is_bot
    assert message.text == "Approve signal?"
    assert message.reply_markup is not None
    assert message.reply_markup.inline_keyboard[0][1].callback_data == "no"

    (call,) = fake_api.sent("sendMessage", chat_id=USER)
    assert call.params["chat_id"] == USER
    assert call.params["text"] == "Approve signal?"
    assert call.params["reply_markup"] == {
        "inline_keyboard": [
            [{"text": "Yes", "callback_data": "yes"}, {"text": "No", "callback_data": "no"}]
        ]
    }
    assert fake_api.texts(USER) == ["Approve signal?"]

    # message ids increase per chat
    assert (await bot.send_message(USER, "second")).message_id == 2
    assert (await bot.send_message(OTHER_USER, "first there")).message_id == 1
    assert fake_api.texts() == ["Approve signal?", "second", "first there"]
    assert [c.method for c in fake_api.sent()] == ["sendMessage"] * 3


async def test_numeric_looking_text_stays_a_string(bot: Bot, fake_api: FakeBotAPI) -> None:
    await bot.send_message(USER, "12345")
    await bot.answer_callback_query("4000000000000000123", text="42")

    assert fake_api.last("sendMessage").params["text"] == "12345"
    answer = fake_api.last("answerCallbackQuery").params
    assert answer == {"callback_query_id": "4000000000000000123", "text": "42"}


async def test_edit_message_text(bot: Bot, fake_api: FakeBotAPI) -> None:
    sent = await bot.send_message(USER, "Pending…", reply_markup=keyboard("ok"))
    edited = await bot.edit_message_text(
        text="Approved ✅", chat_id=USER, message_id=sent.message_id
    )

    assert isinstance(edited, Message)
    assert edited.message_id == sent.message_id
    assert edited.text == "Approved ✅"
    assert edited.edit_date is not None
    assert edited.reply_markup is None  # editing without reply_markup drops the keyboard
    assert fake_api.texts(USER) == ["Pending…", "Approved ✅"]

    markup = await bot.edit_message_reply_markup(
        chat_id=USER, message_id=sent.message_id, reply_markup=keyboard("undo")
    )
    assert isinstance(markup, Message)
    assert markup.text == "Approved ✅"
    assert markup.reply_markup is not None
    assert markup.reply_markup.inline_keyboard[0][0].callback_data == "undo"

    inline = await bot.edit_message_text(text="inline", inline_message_id="AAQ123")
    assert inline is True


async def test_429_raises_retry_after(bot: Bot, fake_api: FakeBotAPI) -> None:
    fake_api.fail_next("sendMessage", error="429", retry_after=3)

    with pytest.raises(TelegramRetryAfter) as exc_info:
        await bot.send_message(USER, "hello")
    assert exc_info.value.retry_after == 3
    assert "Too Many Requests: retry after 3" in exc_info.value.message

    # the rule is consumed: the retry succeeds
    await bot.send_message(USER, "hello")
    failed, retried = fake_api.sent("sendMessage")
    assert failed.failed == 429 and not failed.ok
    assert retried.ok and retried.failed is None
    assert fake_api.texts(USER) == ["hello"]
    assert fake_api.texts(USER, include_failed=True) == ["hello", "hello"]


async def test_403_raises_forbidden(bot: Bot, fake_api: FakeBotAPI) -> None:
    fake_api.fail_next("sendMessage", error="403", chat_id=USER)

    await bot.send_message(OTHER_USER, "not affected")  # rule is only for USER
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(USER, "hello")
    assert fake_api.last("sendMessage").failed == 403


async def test_not_modified_raises_bad_request(bot: Bot, fake_api: FakeBotAPI) -> None:
    fake_api.fail_next("editMessageText", error="400_not_modified")

    with pytest.raises(TelegramBadRequest, match="message is not modified") as exc_info:
        await bot.edit_message_text(text="same", chat_id=USER, message_id=1)
    assert exc_info.value.message == NOT_MODIFIED_DESCRIPTION


async def test_other_injected_errors(bot: Bot, fake_api: FakeBotAPI) -> None:
    fake_api.fail_next("sendChatAction", error="400", description="chat not found", times=2)
    fake_api.fail_next("getMe", error="500")

    for _ in range(2):
        with pytest.raises(TelegramBadRequest, match=r"^Telegram server says - Bad Request: chat"):
            await bot.send_chat_action(USER, "typing")
    assert await bot.send_chat_action(USER, "typing") is True
    with pytest.raises(TelegramServerError, match="Internal Server Error"):
        await bot.get_me()
    with pytest.raises(ValueError, match="unknown error kind"):
        fake_api.fail_next("getMe", error="418")  # type: ignore[arg-type]


async def test_block_chat(bot: Bot, fake_api: FakeBotAPI) -> None:
    fake_api.block_chat(USER)

    with pytest.raises(TelegramForbiddenError, match="Forbidden: bot was blocked by the user"):
        await bot.send_message(USER, "one")
    with pytest.raises(TelegramForbiddenError):
        await bot.send_photo(USER, BufferedInputFile(b"png", filename="chart.png"))
    await bot.send_message(OTHER_USER, "still fine")

    fake_api.unblock_chat(USER)
    await bot.send_message(USER, "two")

    assert [c.failed for c in fake_api.sent(chat_id=USER)] == [403, 403, None]
    assert fake_api.texts(USER) == ["two"]


async def test_unknown_method_is_recorded_and_rejected(bot: Bot, fake_api: FakeBotAPI) -> None:
    with pytest.raises(TelegramBadRequest, match="method not found"):
        await bot.get_chat(USER)
    assert fake_api.last("getChat").failed == 400

    def refuse(call: Call) -> bool:
        raise FakeApiError(400, "Bad Request: CHAT_ADMIN_REQUIRED")

    fake_api.set_handler("leaveChat", refuse)
    with pytest.raises(TelegramBadRequest, match="CHAT_ADMIN_REQUIRED"):
        await bot.leave_chat(-1)
    fake_api.set_handler("leaveChat", lambda call: True)
    assert await bot.leave_chat(-1) is True

    def crash(call: Call) -> bool:
        raise RuntimeError("boom")

    fake_api.set_handler("leaveChat", crash)
    with pytest.raises(TelegramServerError, match="fake handler crashed: RuntimeError"):
        await bot.leave_chat(-1)
    fake_api.set_handler("leaveChat", None)
    with pytest.raises(TelegramBadRequest, match="method not found"):
        await bot.leave_chat(-1)


async def test_long_polling_returns_injected_update(bot: Bot, fake_api: FakeBotAPI) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await fake_api.wait_for("getUpdates")
    started = time.monotonic()
    update_id = fake_api.inject_update(message_update(USER, "/start"))

    updates = await asyncio.wait_for(poll, 2)
    assert time.monotonic() - started < 1
    assert [u.update_id for u in updates] == [update_id]
    assert updates[0].message is not None
    assert updates[0].message.text == "/start"


async def test_long_polling_times_out_with_empty_list(bot: Bot, fake_api: FakeBotAPI) -> None:
    started = time.monotonic()
    assert await bot.get_updates(timeout=1) == []
    assert 0.9 <= time.monotonic() - started < 2
    assert fake_api.last("getUpdates").params["timeout"] == 1
    # getUpdates is recorded but not part of sent() without a method
    assert fake_api.sent() == []


async def test_offset_confirms_updates(bot: Bot, fake_api: FakeBotAPI) -> None:
    first = fake_api.inject_update(message_update(USER, "one"))
    second = fake_api.inject_update(callback_update(USER, "approve:1"))
    assert second == first + 1

    updates = await bot.get_updates()
    assert [u.update_id for u in updates] == [first, second]
    # not confirmed yet: delivered again
    assert [u.update_id for u in await bot.get_updates()] == [first, second]
    # limit
    assert [u.update_id for u in await bot.get_updates(limit=1)] == [first]

    updates = await bot.get_updates(offset=second)
    assert [u.update_id for u in updates] == [second]
    assert await bot.get_updates(offset=second + 1, timeout=0) == []
    assert fake_api.pending_updates == []

    explicit = fake_api.inject_update({**message_update(USER, "x"), "update_id": 1000})
    assert explicit == 1000
    assert fake_api.inject_update(message_update(USER, "y")) == 1001


async def test_allowed_updates_filter_like_telegram(bot: Bot, fake_api: FakeBotAPI) -> None:
    fake_api.inject_update(message_update(USER, "hi"))
    fake_api.inject_update(pre_checkout_update(USER, payload="p", total_amount=5))

    updates = await bot.get_updates(allowed_updates=["pre_checkout_query"])
    assert [u.pre_checkout_query is not None for u in updates] == [True]
    assert [u["message"]["text"] for u in fake_api.skipped_updates] == ["hi"]


async def test_close_ends_pending_long_poll_quickly(bot: Bot, fake_api: FakeBotAPI) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=30))
    await fake_api.wait_for("getUpdates")
    started = time.monotonic()
    await fake_api.close()
    assert await asyncio.wait_for(poll, 2) == []
    assert time.monotonic() - started < 1


async def test_send_photo_upload(bot: Bot, fake_api: FakeBotAPI) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"x" * 2048
    message = await bot.send_photo(
        USER,
        BufferedInputFile(png, filename="equity.png"),
        caption="Equity curve",
        reply_markup=keyboard("refresh"),
    )

    assert message.photo is not None and len(message.photo) == 3
    assert message.photo[-1].file_size == len(png)
    assert message.caption == "Equity curve"
    assert message.reply_markup is not None
    assert message.reply_markup.inline_keyboard[0][0].callback_data == "refresh"

    call = fake_api.last("sendPhoto", chat_id=USER)
    photo = call.params["photo"]
    assert photo["filename"] == "equity.png"
    assert photo["size"] == len(png)
    assert photo["data"] == png
    assert isinstance(photo["content_type"], str)
    assert call.params["caption"] == "Equity curve"
    assert call.params["reply_markup"] == keyboard("refresh").model_dump(exclude_none=True)
    assert fake_api.texts(USER) == ["Equity curve"]

    # a file_id is echoed back
    again = await bot.send_photo(USER, message.photo[-1].file_id)
    assert again.photo is not None and again.photo[-1].file_id == message.photo[-1].file_id


async def test_send_document_upload(bot: Bot, fake_api: FakeBotAPI) -> None:
    message = await bot.send_document(USER, BufferedInputFile(b"a,b\n1,2\n", filename="t.csv"))

    assert message.document is not None
    assert message.document.file_name == "t.csv"
    assert message.document.file_size == 8
    assert message.document.mime_type == "text/csv"


async def test_send_invoice_in_stars(bot: Bot, fake_api: FakeBotAPI) -> None:
    message = await bot.send_invoice(
        chat_id=USER,
        title="Pro plan",
        description="30 days of signals",
        payload="plan:pro:42",
        currency="XTR",
        prices=[LabeledPrice(label="Pro", amount=250)],
    )

    assert message.invoice is not None
    assert message.invoice.currency == "XTR"
    assert message.invoice.total_amount == 250
    assert message.invoice.title == "Pro plan"
    assert message.invoice.start_parameter == ""

    params = fake_api.last("sendInvoice").params
    assert params["prices"] == [{"label": "Pro", "amount": 250}]
    assert params["payload"] == "plan:pro:42"
    assert "provider_token" not in params


async def test_payments_answers(bot: Bot, fake_api: FakeBotAPI) -> None:
    assert await bot.answer_pre_checkout_query("5000000000000000001", ok=True) is True
    assert await bot.refund_star_payment(user_id=USER, telegram_payment_charge_id="ch_1") is True

    refund = fake_api.last("refundStarPayment").params
    assert refund == {"user_id": USER, "telegram_payment_charge_id": "ch_1"}
    assert fake_api.last("answerPreCheckoutQuery").params["ok"] is True


async def test_bot_settings(bot: Bot, fake_api: FakeBotAPI) -> None:
    commands = [BotCommand(command="start", description="Start")]
    assert await bot.set_my_commands(commands) is True
    assert [(c.command, c.description) for c in await bot.get_my_commands()] == [("start", "Start")]
    assert fake_api.commands() == [{"command": "start", "description": "Start"}]
    assert await bot.delete_my_commands() is True
    assert await bot.get_my_commands() == []

    assert await bot.set_my_description("Signals bridge") is True
    assert (await bot.get_my_description()).description == "Signals bridge"
    assert await bot.set_my_short_description("short") is True
    assert await bot.set_chat_menu_button() is True
    assert (await bot.get_chat_menu_button()).type == "default"
    assert await bot.delete_message(USER, 1) is True
    assert await bot.answer_callback_query("1", text="Done") is True
    assert (await bot.copy_message(USER, OTHER_USER, 5)).message_id == 1
    assert await bot.log_out() is True
    assert await bot.close() is True


async def test_webhook_methods(bot: Bot, fake_api: FakeBotAPI) -> None:
    assert fake_api.webhook is None
    assert (await bot.get_webhook_info()).url == ""

    await bot.set_webhook(
        "https://example.test/tg/webhook",
        secret_token="s3cr3t",
        allowed_updates=["message", "callback_query"],
        drop_pending_updates=True,
    )
    assert fake_api.webhook is not None
    assert fake_api.webhook["url"] == "https://example.test/tg/webhook"
    assert fake_api.webhook["secret_token"] == "s3cr3t"
    assert fake_api.webhook["allowed_updates"] == ["message", "callback_query"]

    info = await bot.get_webhook_info()
    assert info.url == "https://example.test/tg/webhook"
    assert info.pending_update_count == 0
    assert info.allowed_updates == ["message", "callback_query"]

    assert await bot.delete_webhook() is True
    assert fake_api.webhook is None


async def test_deliver_webhook(fake_api: FakeBotAPI) -> None:
    received: list[tuple[dict[str, Any], str | None, str]] = []

    async def handler(request: web.Request) -> web.Response:
        received.append(
            (
                await request.json(),
                request.headers.get("X-Telegram-Bot-Api-Secret-Token"),
                request.content_type,
            )
        )
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/webhook", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        status, body = await fake_api.deliver_webhook(
            f"http://{host}:{port}/webhook", message_update(USER, "/start"), secret_token="s3"
        )
        assert (status, body) == (200, "ok")
        status, _ = await fake_api.deliver_webhook(f"http://{host}:{port}/nope", {"x": 1})
        assert status == 404
    finally:
        await runner.cleanup()

    ((update, secret, content_type),) = received
    assert secret == "s3"
    assert content_type == "application/json"
    assert isinstance(update["update_id"], int)
    Update.model_validate(update)


def test_builders_parse_as_aiogram_updates() -> None:
    start = Update.model_validate({"update_id": 1, **message_update(USER, "/start ref_7")})
    assert start.message is not None and start.message.from_user is not None
    assert start.message.from_user.id == USER
    assert start.message.chat.type == "private"
    assert start.message.entities is not None
    entity = start.message.entities[0]
    assert (entity.type, entity.offset, entity.length) == ("bot_command", 0, 6)
    plain = Update.model_validate({"update_id": 2, **message_update(USER, "hello", chat_id=-5)})
    assert plain.message is not None and plain.message.entities is None
    assert plain.message.chat.type == "group"

    pressed = Update.model_validate({"update_id": 3, **callback_update(USER, "approve:9")})
    query = pressed.callback_query
    assert query is not None and query.data == "approve:9"
    assert isinstance(query.message, Message)
    assert query.message.message_id == 1
    assert query.message.from_user is not None and query.message.from_user.is_bot
    other = callback_update(USER, "approve:9")
    assert other["callback_query"]["id"] != query.id

    checkout = Update.model_validate(
        {"update_id": 4, **pre_checkout_update(USER, payload="plan:pro", total_amount=250)}
    )
    assert checkout.pre_checkout_query is not None
    assert checkout.pre_checkout_query.invoice_payload == "plan:pro"
    assert checkout.pre_checkout_query.currency == "XTR"

    paid = Update.model_validate(
        {
            "update_id": 5,
            **successful_payment_update(
                USER, payload="plan:pro", total_amount=250, charge_id="stxABC"
            ),
        }
    )
    assert paid.message is not None and paid.message.successful_payment is not None
    assert paid.message.successful_payment.telegram_payment_charge_id == "stxABC"

    assert user_dict(1, username="u", last_name="L", language_code=None) == {
        "id": 1,
        "is_bot": False,
        "first_name": "Test",
        "last_name": "L",
        "username": "u",
    }


async def test_wait_for_counts_and_times_out(bot: Bot, fake_api: FakeBotAPI) -> None:
    async def later() -> None:
        await asyncio.sleep(0.05)
        await bot.send_message(USER, "a")
        await bot.send_message(USER, "b")

    task = asyncio.create_task(later())
    calls = await fake_api.wait_for("sendmessage", count=2, timeout=2)
    await task
    assert [c.params["text"] for c in calls] == ["a", "b"]

    def is_c(call: Call) -> bool:
        return call.params.get("text") == "c"

    with pytest.raises(AssertionError, match=r"(?s)waiting for 1 sendMessage.*sendMessage"):
        await fake_api.wait_for("sendMessage", is_c, timeout=0.05)

    fake_api.clear()
    assert fake_api.calls == []


async def test_validation_like_telegram(bot: Bot, fake_api: FakeBotAPI) -> None:
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(USER, "x" * 4097)
    await bot.send_message(USER, "<b>" + "x" * 4096 + "</b>", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(USER, "hi", reply_markup=keyboard("d" * 65))

    strict = FakeBotAPI(detect_not_modified=True)
    await strict.start()
    try:
        session = AiohttpSession(api=TelegramAPIServer.from_base(strict.base_url))
        async with Bot(token=TOKEN, session=session) as strict_bot:
            sent = await strict_bot.send_message(USER, "same")
            with pytest.raises(TelegramBadRequest, match="message is not modified"):
                await strict_bot.edit_message_text(
                    text="same", chat_id=USER, message_id=sent.message_id
                )
    finally:
        await strict.close()


async def test_dispatcher_polling_end_to_end(bot: Bot, fake_api: FakeBotAPI) -> None:
    dp = Dispatcher()

    @dp.message(CommandStart())
    async def start(message: Message) -> None:
        await message.answer("Welcome!", reply_markup=keyboard("connect"))

    @dp.callback_query()
    async def pressed(query: Any) -> None:
        await query.answer("Connected")

    polling = asyncio.create_task(
        dp.start_polling(bot, handle_signals=False, close_bot_session=False, polling_timeout=5)
    )
    try:
        fake_api.inject_update(message_update(USER, "/start"))
        (reply,) = await fake_api.wait_for("sendMessage", timeout=3)
        assert reply.params["text"] == "Welcome!"
        assert reply.chat_id == USER

        fake_api.inject_update(callback_update(USER, "connect"))
        (answer,) = await fake_api.wait_for("answerCallbackQuery", timeout=3)
        assert answer.params["text"] == "Connected"
    finally:
        await dp.stop_polling()
        await asyncio.wait_for(polling, 3)
    assert fake_api.pending_updates == []  # dispatcher confirmed the updates it processed


async def test_raw_json_and_get_requests_are_understood(fake_api: FakeBotAPI) -> None:
    async with aiohttp.ClientSession() as session:
        url = f"{fake_api.base_url}/bot{TOKEN}/SENDMESSAGE"
        async with session.post(url, json={"chat_id": USER, "text": "raw"}) as response:
            body = await response.json()
        assert body["ok"] is True
        assert body["result"]["text"] == "raw"
        async with session.get(f"{fake_api.base_url}/bot{TOKEN}/getMe") as response:
            assert (await response.json())["result"]["is_bot"] is True
    assert [c.method for c in fake_api.sent()] == ["SENDMESSAGE", "getMe"]
    assert fake_api.sent("sendMessage")[0].params == {"chat_id": USER, "text": "raw"}
