"""What reaches Telegram from the bot built by create_bot (aiogram's stock session): HTML
parse mode, no link previews, the text and keyboard as written, files as uploads."""

from __future__ import annotations

from aiogram import Bot
from aiogram.types import BufferedInputFile, InlineKeyboardButton, InlineKeyboardMarkup

from tests.conftest import Chat
from tests.fake_bot_api import FakeBotAPI


async def test_a_reply_is_html_without_link_previews(chat: Chat, fake_api: FakeBotAPI) -> None:
    await chat.send(7101, "/help")
    call = fake_api.last("sendMessage", chat_id=7101)
    assert call.params["parse_mode"] == "HTML"
    assert call.params["link_preview_options"] == {"is_disabled": True}


async def test_text_keyboard_and_flags_arrive_as_written(bot: Bot, fake_api: FakeBotAPI) -> None:
    markup = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Approve ✅", callback_data="a:1")]]
    )
    await bot.send_message(
        42, "<b>EURUSD</b> buy 1.0850 — ünïcødé", reply_markup=markup, disable_notification=False
    )
    call = fake_api.last("sendMessage")
    assert call.params["chat_id"] == 42
    assert call.params["text"] == "<b>EURUSD</b> buy 1.0850 — ünïcødé"
    assert call.params["reply_markup"] == {
        "inline_keyboard": [[{"text": "Approve ✅", "callback_data": "a:1"}]]
    }
    assert call.params["disable_notification"] is False  # an explicit False is still sent
    assert "message_thread_id" not in call.params  # unset fields are left out


async def test_a_file_goes_as_an_upload(bot: Bot, fake_api: FakeBotAPI) -> None:
    document = BufferedInputFile(b"time,profit\n1,2\n", filename="report.csv")
    await bot.send_document(42, document, caption="Weekly report")
    call = fake_api.last("sendDocument")
    assert call.content_type == "multipart/form-data"
    assert call.params["caption"] == "Weekly report"
    assert call.params["document"]["filename"] == "report.csv"
    assert call.params["document"]["data"] == b"time,profit\n1,2\n"
