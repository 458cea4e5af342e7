"""The user's language_code picks the catalog: Russian for ru, English for anything else."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.chat.callbacks import DeviceAction, DeviceCb
from bot.container import Container
from bot.domain.referrals import ensure_account
from bot.domain.signal_rules import validate_new_signal
from db.models import User
from tests.conftest import ADMIN_ID, Chat, FakeClock
from tests.fake_bot_api import FakeBotAPI, callback_update
from tests.signals_support import add_users

USER_ID = 444_555_666


async def test_russian_user_is_greeted_and_helped_in_russian(chat: Chat) -> None:
    [greeting] = await chat.send(USER_ID, "/start", first_name="Аня", language_code="ru")
    assert greeting.startswith("Привет, Аня! Я <b>signalbridge</b>.")
    assert "/devices – Ваши терминалы MetaTrader" in greeting
    [help_text] = await chat.send(USER_ID, "/help", language_code="ru")
    assert help_text.startswith("<b>Команды</b>\n/start – Запустить бота")
    assert await chat.send(USER_ID, "/cancel", language_code="ru") == ["Отменять нечего."]
    assert await chat.send(USER_ID, "/nosuchthing", language_code="ru-RU") == [
        "Я не знаю такой команды. /help покажет, что я умею."
    ]


@pytest.mark.parametrize("language_code", ["de", None])
async def test_a_language_without_a_catalog_reads_english(
    chat: Chat, language_code: str | None
) -> None:
    [greeting] = await chat.send(USER_ID, "/start", language_code=language_code)
    assert greeting.startswith("Hi, Test! I am <b>signalbridge</b>.")
    [help_text] = await chat.send(USER_ID, "/help", language_code=language_code)
    assert help_text.startswith("<b>Commands</b>\n/start – Start the bot")


async def test_a_signal_command_that_cannot_be_read_is_explained_in_russian(chat: Chat) -> None:
    [reply] = await chat.send(ADMIN_ID, "/signal EURUSD long sl 1.08", language_code="ru")
    assert reply.startswith("«long» — не направление: напишите buy или sell.\n\n")
    [reply] = await chat.send(ADMIN_ID, "/signal EURUSD buy sl 1 sl 2", language_code="ru")
    assert reply.startswith("sl указан дважды.")
    [reply] = await chat.send(ADMIN_ID, "/signal EURUSD buy limit 1 stop 2", language_code="ru")
    assert reply.startswith("тип ордера указан дважды.")


def russian_press(data: str) -> dict[str, Any]:
    update = callback_update(USER_ID, data)
    update["callback_query"]["from"]["language_code"] = "ru"
    return update


async def test_errors_are_told_in_the_users_language(chat: Chat, fake_api: FakeBotAPI) -> None:
    [too_long] = await chat.send(USER_ID, "x" * 40, language_code="ru")  # not in a flow yet
    assert too_long == "Я отвечаю на команды и кнопки. /help покажет, что я умею."
    # The domain refuses by code (NotFoundError); the errors handler words it in Russian.
    await chat.feed(russian_press(DeviceCb(action=DeviceAction.MENU, device=999).pack()))
    [alert] = fake_api.sent("answerCallbackQuery")
    assert alert.params["text"] == "Это больше недоступно."
    assert alert.params["show_alert"] is True
    # A press nobody handles is answered by the fallback, in Russian too.
    await chat.feed(russian_press("nothing-here"))
    assert fake_api.sent("answerCallbackQuery")[-1].params["text"] == "Это больше недоступно."


async def test_a_notice_reads_in_its_recipients_language(
    chat: Chat, fake_api: FakeBotAPI, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    # The referrer speaks Russian, the friend who joins does not: the referrer's notice is
    # worded when it is sent, in the referrer's language (users.language_code).
    referrer, friend = 7001, 7002
    await chat.send(referrer, "/start", language_code="ru")
    async with sessionmaker.begin() as session:
        token = (await ensure_account(session, referrer, datetime.now(UTC))).token
    await chat.send(friend, f"/start ref_{token}", first_name="<Eve>")
    assert fake_api.texts(friend)[-1].startswith("Hi, &lt;Eve&gt;!")
    assert fake_api.texts(referrer)[-1] == (
        "🎉 <b>&lt;Eve&gt;</b> — новый реферал по вашей ссылке."
    )


async def test_a_signal_reaches_each_recipient_in_their_language(
    container: Container,
    fake_api: FakeBotAPI,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FakeClock,
) -> None:
    russian, other = 7101, 7102
    await add_users(sessionmaker, [russian, other], clock.now)
    async with sessionmaker.begin() as session:
        await session.execute(update(User).where(User.id == russian).values(language_code="ru"))
    data = {"symbol": "EURUSD", "side": "buy", "stop_loss": "1.08", "take_profit": "1.1"}
    draft = validate_new_signal(data, container.settings.signals)
    await container.signals.submit(container.sessionmaker, draft, source="provider")
    await container.outbox_worker.drain()
    ru = fake_api.last("sendMessage", russian)
    assert "Одобрите, чтобы исполнить его на ваших устройствах, или отклоните." in str(ru.text)
    assert [b["text"] for b in ru.params["reply_markup"]["inline_keyboard"][0]] == [
        "✅ Одобрить",
        "❌ Отклонить",
    ]
    en = fake_api.last("sendMessage", other)
    assert "Approve to execute it on your devices, or reject it." in str(en.text)
