"""The fake Bot API's own behaviour that the flow tests rely on, through aiogram's session."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramRetryAfter,
    TelegramServerError,
)
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
)

TOKEN = "123456:" + "A" * 35
USER = 42
OTHER_USER = 43


@pytest.fixture
async def bot(fake_api: FakeBotAPI) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(fake_api.base_url))
    bot = Bot(token=TOKEN, session=session)
    yield bot
    await close_bot_session(bot)


def keyboard(*data: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=d.title(), callback_data=d) for d in data]]
    )


async def test_a_message_is_recorded_decoded_and_answered_like_telegram(
    bot: Bot, fake_api: FakeBotAPI
) -> None:
    message = await bot.send_message(USER, "Approve signal?", reply_markup=keyboard("yes", "no"))

    assert (message.message_id, message.chat.id, message.chat.type) == (1, USER, "private")
    assert message.from_user is not None and message.from_user.is_bot
    assert message.reply_markup is not None
    assert message.reply_markup.inline_keyboard[0][1].callback_data == "no"
    call = fake_api.last("sendMessage", chat_id=USER)
    assert call.token == TOKEN
    assert call.params["reply_markup"] == {
        "inline_keyboard": [
            [{"text": "Yes", "callback_data": "yes"}, {"text": "No", "callback_data": "no"}]
        ]
    }
    # Message ids count per chat; texts() lists what each chat was told, in order.
    assert (await bot.send_message(USER, "12345")).message_id == 2
    assert (await bot.send_message(OTHER_USER, "first there")).message_id == 1
    assert fake_api.texts(USER) == ["Approve signal?", "12345"]
    assert fake_api.texts() == ["Approve signal?", "12345", "first there"]
    # A number-like text or callback query id stays a string.
    await bot.answer_callback_query("4000000000000000123", text="42")
    answer = fake_api.last("answerCallbackQuery").params
    assert answer == {"callback_query_id": "4000000000000000123", "text": "42"}


async def test_an_edit_replaces_the_text_and_drops_a_keyboard_not_sent_again(
    bot: Bot, fake_api: FakeBotAPI
) -> None:
    sent = await bot.send_message(USER, "Pending…", reply_markup=keyboard("ok"))
    edited = await bot.edit_message_text(
        text="Approved ✅", chat_id=USER, message_id=sent.message_id
    )

    assert isinstance(edited, Message)
    assert (edited.message_id, edited.text, edited.reply_markup) == (
        sent.message_id,
        "Approved ✅",
        None,
    )
    assert edited.edit_date is not None
    assert fake_api.texts(USER) == ["Pending…", "Approved ✅"]


async def test_a_429_is_consumed_and_the_retry_is_what_the_user_saw(
    bot: Bot, fake_api: FakeBotAPI
) -> None:
    fake_api.fail_next("sendMessage", error="429", retry_after=3)

    with pytest.raises(TelegramRetryAfter) as exc_info:
        await bot.send_message(USER, "hello")
    assert exc_info.value.retry_after == 3
    await bot.send_message(USER, "hello")

    assert [call.failed for call in fake_api.sent("sendMessage")] == [429, None]
    assert fake_api.texts(USER) == ["hello"]
    assert fake_api.texts(USER, include_failed=True) == ["hello", "hello"]


async def test_a_blocked_chat_or_a_chat_scoped_rule_fails_only_that_chat(
    bot: Bot, fake_api: FakeBotAPI
) -> None:
    fake_api.fail_next("sendMessage", error="403", chat_id=USER)
    await bot.send_message(OTHER_USER, "not affected")
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(USER, "one")

    fake_api.block_chat(USER)
    with pytest.raises(TelegramForbiddenError):
        await bot.send_photo(USER, BufferedInputFile(b"png", filename="chart.png"))
    await bot.send_message(OTHER_USER, "still fine")
    fake_api.unblock_chat(USER)
    await bot.send_message(USER, "two")

    assert [c.failed for c in fake_api.sent(chat_id=USER)] == [403, 403, None]
    assert fake_api.texts(USER) == ["two"]


async def test_the_other_injected_errors_raise_what_aiogram_raises_for_telegrams(
    bot: Bot, fake_api: FakeBotAPI
) -> None:
    fake_api.fail_next("sendChatAction", error="400", description="chat not found", times=2)
    fake_api.fail_next("editMessageText", error="400_not_modified")
    fake_api.fail_next("getMe", error="500")

    for _ in range(2):
        with pytest.raises(TelegramBadRequest, match=r"^Telegram server says - Bad Request: chat"):
            await bot.send_chat_action(USER, "typing")
    assert await bot.send_chat_action(USER, "typing") is True
    with pytest.raises(TelegramBadRequest) as not_modified:
        await bot.edit_message_text(text="same", chat_id=USER, message_id=1)
    assert not_modified.value.message == NOT_MODIFIED_DESCRIPTION
    with pytest.raises(TelegramServerError, match="Internal Server Error"):
        await bot.get_me()
    with pytest.raises(ValueError, match="unknown error kind"):
        fake_api.fail_next("getMe", error="418")  # type: ignore[arg-type]


async def test_a_held_method_is_answered_once_released(bot: Bot, fake_api: FakeBotAPI) -> None:
    gate = fake_api.hold("sendMessage")
    sending = asyncio.create_task(bot.send_message(USER, "slow"))
    (call,) = await fake_api.wait_for("sendMessage")
    await asyncio.sleep(0.05)
    assert not sending.done() and call.result is None

    fake_api.recover()
    assert gate.is_set()
    assert (await asyncio.wait_for(sending, 2)).text == "slow"


async def test_an_unknown_method_fails_unless_the_test_answers_it(
    bot: Bot, fake_api: FakeBotAPI
) -> None:
    with pytest.raises(TelegramBadRequest, match="method not found"):
        await bot.get_chat(USER)

    def refuse(call: Call) -> bool:
        raise FakeApiError(400, "Bad Request: CHAT_ADMIN_REQUIRED")

    def crash(call: Call) -> bool:
        raise RuntimeError("boom")

    fake_api.set_handler("leaveChat", refuse)
    with pytest.raises(TelegramBadRequest, match="CHAT_ADMIN_REQUIRED"):
        await bot.leave_chat(-1)
    fake_api.set_handler("leaveChat", lambda call: True)
    assert await bot.leave_chat(-1) is True
    fake_api.set_handler("leaveChat", crash)
    with pytest.raises(TelegramServerError, match="fake handler crashed: RuntimeError"):
        await bot.leave_chat(-1)
    fake_api.set_handler("leaveChat", None)
    with pytest.raises(TelegramBadRequest, match="method not found"):
        await bot.leave_chat(-1)


async def test_a_long_poll_wakes_for_an_update_and_ends_empty(
    bot: Bot, fake_api: FakeBotAPI
) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await fake_api.wait_for("getUpdates")
    update_id = fake_api.inject_update(message_update(USER, "/start"))
    updates = await asyncio.wait_for(poll, 2)  # well before the poll's own 5 s
    assert [u.update_id for u in updates] == [update_id]
    assert updates[0].message is not None and updates[0].message.text == "/start"

    assert await bot.get_updates(offset=update_id + 1, timeout=1) == []
    assert fake_api.sent() == []  # getUpdates is left out unless asked for by name

    poll = asyncio.create_task(bot.get_updates(timeout=30))
    await fake_api.wait_for("getUpdates", count=3)
    await fake_api.close()
    assert await asyncio.wait_for(poll, 2) == []


async def test_updates_stay_until_confirmed_and_only_allowed_types_come(
    bot: Bot, fake_api: FakeBotAPI
) -> None:
    first = fake_api.inject_update(message_update(USER, "one"))
    second = fake_api.inject_update(callback_update(USER, "approve:1"))
    assert second == first + 1
    assert [u.update_id for u in await bot.get_updates()] == [first, second]
    assert [u.update_id for u in await bot.get_updates(limit=1)] == [first]
    assert [u.update_id for u in await bot.get_updates(offset=second)] == [second]
    assert await bot.get_updates(offset=second + 1) == []
    assert fake_api.inject_update({**message_update(USER, "x"), "update_id": 1000}) == 1000
    assert fake_api.inject_update(message_update(USER, "y")) == 1001

    fake_api.inject_update(pre_checkout_update(USER, payload="p", total_amount=5))
    updates = await bot.get_updates(allowed_updates=["pre_checkout_query"])
    assert [u.pre_checkout_query is not None for u in updates] == [True]
    assert len(fake_api.pending_updates) == 1  # the messages were dropped, as Telegram does


async def test_an_uploaded_photo_is_recorded_with_its_bytes(bot: Bot, fake_api: FakeBotAPI) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"x" * 2048
    message = await bot.send_photo(
        USER, BufferedInputFile(png, filename="equity.png"), caption="Equity curve"
    )

    assert message.photo is not None and message.photo[-1].file_size == len(png)
    assert message.caption == "Equity curve"
    photo = fake_api.last("sendPhoto", chat_id=USER).params["photo"]
    assert (photo["filename"], photo["size"], photo["data"]) == ("equity.png", len(png), png)
    assert fake_api.texts(USER) == ["Equity curve"]
    again = await bot.send_photo(USER, message.photo[-1].file_id)  # a file_id is echoed back
    assert again.photo is not None and again.photo[-1].file_id == message.photo[-1].file_id


async def test_an_invoice_in_stars(bot: Bot, fake_api: FakeBotAPI) -> None:
    message = await bot.send_invoice(
        chat_id=USER,
        title="Pro plan",
        description="30 days of signals",
        payload="plan:pro:42",
        currency="XTR",
        prices=[LabeledPrice(label="Pro", amount=250)],
    )

    assert message.invoice is not None
    assert (message.invoice.currency, message.invoice.total_amount) == ("XTR", 250)
    params = fake_api.last("sendInvoice").params
    assert params["prices"] == [{"label": "Pro", "amount": 250}]
    assert params["payload"] == "plan:pro:42"
    assert "provider_token" not in params


async def test_commands_and_the_webhook_are_remembered(bot: Bot, fake_api: FakeBotAPI) -> None:
    assert await bot.set_my_commands([BotCommand(command="start", description="Start")])
    assert fake_api.commands() == [{"command": "start", "description": "Start"}]

    fake_api.inject_update(message_update(USER, "stale"))
    await bot.set_webhook(
        "https://example.test/tg/webhook",
        secret_token="s3cr3t",
        allowed_updates=["message", "callback_query"],
        drop_pending_updates=True,
    )
    assert fake_api.webhook is not None
    assert fake_api.webhook["secret_token"] == "s3cr3t"
    assert fake_api.webhook["allowed_updates"] == ["message", "callback_query"]
    assert fake_api.pending_updates == []
    assert await bot.delete_webhook() is True
    assert fake_api.webhook is None


async def test_deliver_webhook_posts_like_telegram(fake_api: FakeBotAPI) -> None:
    received: list[tuple[dict[str, Any], str | None, str]] = []

    async def handler(request: web.Request) -> web.Response:
        secret = request.headers.get("X-Telegram-Bot-Api-Secret-Token")
        received.append((await request.json(), secret, request.content_type))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/webhook", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        url = f"http://{host}:{port}/webhook"
        assert await fake_api.deliver_webhook(
            url, message_update(USER, "/start"), secret_token="s3"
        ) == (200, "ok")
        status, _ = await fake_api.deliver_webhook(f"http://{host}:{port}/nope", {"x": 1})
        assert status == 404
    finally:
        await runner.cleanup()

    ((update, secret, content_type),) = received
    assert (secret, content_type) == ("s3", "application/json")
    assert Update.model_validate(update).update_id > 0


def test_builders_parse_as_aiogram_updates() -> None:
    start = Update.model_validate({"update_id": 1, **message_update(USER, "/start ref_7")})
    assert start.message is not None and start.message.from_user is not None
    assert (start.message.from_user.id, start.message.chat.type) == (USER, "private")
    assert start.message.entities is not None
    entity = start.message.entities[0]
    assert (entity.type, entity.offset, entity.length) == ("bot_command", 0, 6)
    plain = Update.model_validate({"update_id": 2, **message_update(USER, "hello", chat_id=-5)})
    assert plain.message is not None and plain.message.entities is None
    assert plain.message.chat.type == "group"

    pressed = Update.model_validate({"update_id": 3, **callback_update(USER, "approve:9")})
    query = pressed.callback_query
    assert query is not None and query.data == "approve:9"
    assert isinstance(query.message, Message) and query.message.from_user is not None
    assert query.message.from_user.is_bot
    assert callback_update(USER, "approve:9")["callback_query"]["id"] != query.id

    checkout = Update.model_validate(
        {"update_id": 4, **pre_checkout_update(USER, payload="plan:pro", total_amount=250)}
    )
    assert checkout.pre_checkout_query is not None
    assert checkout.pre_checkout_query.invoice_payload == "plan:pro"
    payment = successful_payment_update(USER, payload="plan:pro", total_amount=250, charge_id="c1")
    paid = Update.model_validate({"update_id": 5, **payment})
    assert paid.message is not None and paid.message.successful_payment is not None
    assert paid.message.successful_payment.telegram_payment_charge_id == "c1"


async def test_wait_for_counts_and_says_what_came_instead(bot: Bot, fake_api: FakeBotAPI) -> None:
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

    with pytest.raises(AssertionError, match=r"(?s)waiting for 1 sendMessage.*text='b'"):
        await fake_api.wait_for("sendMessage", is_c, timeout=0.05)
    fake_api.clear()
    assert fake_api.calls == []


async def test_telegrams_limits_are_enforced(bot: Bot, fake_api: FakeBotAPI) -> None:
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(USER, "x" * 4097)
    await bot.send_message(USER, "<b>" + "x" * 4096 + "</b>", parse_mode="HTML")  # tags are free
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(USER, "hi", reply_markup=keyboard("d" * 65))
    with pytest.raises(TelegramBadRequest, match="MESSAGE_TOO_LONG"):
        await bot.answer_callback_query("1", text="x" * 201)


async def test_json_bodies_and_get_requests_are_understood(fake_api: FakeBotAPI) -> None:
    async with aiohttp.ClientSession() as session:
        url = f"{fake_api.base_url}/bot{TOKEN}/SENDMESSAGE"
        async with session.post(url, json={"chat_id": USER, "text": "raw"}) as response:
            assert (await response.json())["result"]["text"] == "raw"
        async with session.get(f"{fake_api.base_url}/bot{TOKEN}/getMe") as response:
            assert (await response.json())["result"]["is_bot"] is True
    assert [c.method for c in fake_api.sent()] == ["SENDMESSAGE", "getMe"]
    assert fake_api.sent("sendMessage")[0].params == {"chat_id": USER, "text": "raw"}
