"""The bot's Bot API session: JSON requests, multipart uploads, aiogram's errors, one type."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramRetryAfter,
)
from aiogram.methods import Response
from aiogram.types import BufferedInputFile, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.telegram_session import BotApiSession, response_type
from tests.conftest import BOT_TOKEN
from tests.fake_bot_api import FakeBotAPI, close_bot_session


async def test_the_bot_uses_the_session(bot: Bot) -> None:
    assert isinstance(bot.session, BotApiSession)


async def test_a_message_goes_as_json_with_nested_objects_as_values(
    bot: Bot, fake_api: FakeBotAPI
) -> None:
    markup = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Approve", callback_data="a:1")]]
    )
    sent = await bot.send_message(42, "<b>EURUSD</b> buy 1.0850 — ünïcødé", reply_markup=markup)

    call = fake_api.last("sendMessage")
    assert call.content_type == "application/json"
    assert call.params["chat_id"] == 42
    assert call.params["text"] == "<b>EURUSD</b> buy 1.0850 — ünïcødé"
    # Defaults of the bot are filled in, as aiogram's form would send them.
    assert call.params["parse_mode"] == "HTML"
    assert call.params["link_preview_options"] == {"is_disabled": True}
    assert call.params["reply_markup"] == {
        "inline_keyboard": [[{"text": "Approve", "callback_data": "a:1"}]]
    }
    # Unset optional fields are left out, not sent as null.
    assert "message_thread_id" not in call.params
    assert isinstance(sent, Message)
    assert sent.chat.id == 42
    assert sent.bot is bot  # the answer is bound to the bot, so sent.answer() works


async def test_a_false_flag_and_a_zero_are_still_sent(bot: Bot, fake_api: FakeBotAPI) -> None:
    await bot.send_message(42, "quiet", disable_notification=False, message_effect_id="0")
    call = fake_api.last("sendMessage")
    assert call.params["disable_notification"] is False
    assert call.params["message_effect_id"] == "0"


async def test_a_file_upload_keeps_the_multipart_form(bot: Bot, fake_api: FakeBotAPI) -> None:
    document = BufferedInputFile(b"time,profit\n1,2\n", filename="report.csv")
    await bot.send_document(42, document, caption="Weekly report")

    call = fake_api.last("sendDocument")
    assert call.content_type == "multipart/form-data"
    assert call.params["caption"] == "Weekly report"
    assert call.params["document"]["filename"] == "report.csv"
    assert call.params["document"]["data"] == b"time,profit\n1,2\n"


@pytest.fixture
async def bare_bot(fake_api: FakeBotAPI) -> AsyncIterator[Bot]:
    """The session alone, without the send path (which retries 429 and absorbs 403)."""
    instance = Bot(
        token=BOT_TOKEN,
        session=BotApiSession(api=TelegramAPIServer.from_base(fake_api.base_url)),
    )
    try:
        yield instance
    finally:
        await close_bot_session(instance)


async def test_error_answers_raise_aiograms_exceptions(bare_bot: Bot, fake_api: FakeBotAPI) -> None:
    fake_api.fail_next("sendMessage", error="429", retry_after=7)
    with pytest.raises(TelegramRetryAfter) as retry:
        await bare_bot.send_message(42, "x")
    assert retry.value.retry_after == 7

    fake_api.block_chat(43)
    with pytest.raises(TelegramForbiddenError):
        await bare_bot.send_message(43, "x")

    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bare_bot.send_message(42, "")


async def test_each_response_type_is_built_once_and_kept(bot: Bot, fake_api: FakeBotAPI) -> None:
    await bot.send_message(42, "one")
    first = response_type(Message)
    gc.collect()  # pydantic's own cache is weak: without our reference this would rebuild
    await bot.send_message(42, "two")
    assert response_type(Message) is first
    assert Response[Message] is first
