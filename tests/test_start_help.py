"""/start, /help, /cancel, fallbacks, the user middleware and the errors handler."""

from __future__ import annotations

import logging

import pytest
from aiogram import Bot, Dispatcher
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.chat import commands as commands_module
from bot.chat import texts
from bot.chat.commands import CommandInfo
from bot.chat.i18n import Text
from bot.container import Container
from bot.domain.deeplink import parse_start_payload
from bot.domain.errors import AppError, ErrorCode
from bot.factory import set_commands
from db.models import User
from tests.conftest import ADMIN_ID, Chat, FakeClock
from tests.fake_bot_api import FakeBotAPI

USER_ID = 111_222_333


async def get_user(sessionmaker: async_sessionmaker[AsyncSession], user_id: int) -> User | None:
    async with sessionmaker() as session:
        return await session.get(User, user_id)


async def test_start_creates_user_and_greets(
    chat: Chat, sessionmaker: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    replies = await chat.send(USER_ID, "/start", first_name="Ann <b>", username="ann")
    assert len(replies) == 1
    assert "Hi, Ann &lt;b&gt;!" in replies[0]
    assert "/help" in replies[0]
    user = await get_user(sessionmaker, USER_ID)
    assert user is not None
    assert (user.first_name, user.username, user.role) == ("Ann <b>", "ann", "user")
    assert user.created_at == clock.now


def test_start_payload_parsing() -> None:
    assert parse_start_payload(None).referral_token is None
    assert parse_start_payload("ref_AbCdEf123_-x").referral_token == "AbCdEf123_-x"
    assert parse_start_payload("ref_short").referral_token is None
    assert parse_start_payload("ref_" + "a" * 61).referral_token is None
    assert parse_start_payload("promo").raw == "promo"
    assert parse_start_payload("bad payload!").raw is None


async def test_start_with_referral_payload_still_greets(chat: Chat) -> None:
    replies = await chat.send(USER_ID, "/start ref_unknownToken123")
    assert len(replies) == 1 and "Hi, Test!" in replies[0]


async def test_help_for_user_and_admin(chat: Chat, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        commands_module,
        "COMMANDS",
        (*commands_module.COMMANDS, CommandInfo("secretadmin", Text("Admin only thing"), True)),
    )
    [user_help] = await chat.send(USER_ID, "/help")
    assert "/start" in user_help and "/help" in user_help
    assert "/secretadmin" not in user_help and str(texts.HELP_ADMIN_HEADER) not in user_help
    [admin_help] = await chat.send(ADMIN_ID, "/help")
    assert str(texts.HELP_ADMIN_HEADER) in admin_help and "/secretadmin" in admin_help


async def test_admin_role_from_config(
    chat: Chat, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await chat.send(ADMIN_ID, "/start")
    admin = await get_user(sessionmaker, ADMIN_ID)
    assert admin is not None and admin.role == "admin"


async def test_fallbacks_and_cancel(chat: Chat) -> None:
    assert await chat.send(USER_ID, "/nonsense") == [str(texts.UNKNOWN_COMMAND)]
    assert await chat.send(USER_ID, "hello there") == [str(texts.NOT_A_COMMAND)]
    assert await chat.send(USER_ID, "/cancel") == [str(texts.NOTHING_TO_CANCEL)]


async def test_stale_button_is_answered(chat: Chat) -> None:
    calls = await chat.press(USER_ID, "zz:unknown:1")
    answers = [c for c in calls if c.method == "answerCallbackQuery"]
    assert len(answers) == 1
    assert answers[0].params["text"] == str(texts.NOT_AVAILABLE)


async def test_user_row_refreshed_only_when_needed(
    chat: Chat, sessionmaker: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    await chat.send(USER_ID, "/help")
    first_seen = clock.now
    clock.advance(minutes=1)
    await chat.send(USER_ID, "/help")
    user = await get_user(sessionmaker, USER_ID)
    assert user is not None and user.last_seen_at == first_seen  # no write for a minute
    await chat.send(USER_ID, "/help", first_name="Renamed")
    user = await get_user(sessionmaker, USER_ID)
    assert user is not None and user.first_name == "Renamed" and user.last_seen_at == clock.now
    clock.advance(minutes=6)
    await chat.send(USER_ID, "/help", first_name="Renamed")
    user = await get_user(sessionmaker, USER_ID)
    assert user is not None and user.last_seen_at == clock.now


async def test_blocked_user_who_writes_again_is_unblocked(
    chat: Chat,
    sessionmaker: async_sessionmaker[AsyncSession],
    container: Container,
    fake_api: FakeBotAPI,
) -> None:
    await chat.send(USER_ID, "/start")  # the user is now cached as seen a moment ago
    fake_api.block_chat(USER_ID)
    notifier = container.notifier
    assert await notifier.send(USER_ID, "a signal") is None  # 403: marked blocked
    await notifier.blocked.drain()
    user = await get_user(sessionmaker, USER_ID)
    assert user is not None and user.is_blocked
    fake_api.unblock_chat(USER_ID)
    assert await chat.send(USER_ID, "/help")
    user = await get_user(sessionmaker, USER_ID)
    assert user is not None and not user.is_blocked and user.blocked_at is None


@pytest.fixture
def failing_handlers(dp: Dispatcher) -> None:
    """Handlers on the dispatcher itself run before every included router."""

    @dp.message(Command("apperror"))
    async def app_error(message: Message, session: AsyncSession) -> None:
        session.add(
            User(
                id=555,
                first_name="ghost",
                role="user",
                is_blocked=False,
                created_at=FakeClock().now,
                last_seen_at=FakeClock().now,
            )
        )
        await session.flush()
        raise AppError(ErrorCode.PAYOUT_ABOVE_BALANCE, balance="25.00 USD")

    @dp.message(Command("crash"))
    async def crash(message: Message) -> None:
        raise RuntimeError("token=123:secret")

    @dp.callback_query(lambda q: q.data == "crash")
    async def crash_button(query: CallbackQuery) -> None:
        raise AppError(ErrorCode.NOT_AVAILABLE)


@pytest.mark.usefixtures("failing_handlers")
async def test_app_error_becomes_reply_and_rolls_back(
    chat: Chat, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    assert await chat.send(USER_ID, "/apperror") == [
        "That is more than your available balance (25.00 USD)."
    ]
    async with sessionmaker() as session:
        # What the handler wrote was rolled back...
        assert (await session.scalars(select(User.id).where(User.id == 555))).first() is None
        # ...after the first contact's row was committed on its own (bot/chat/middlewares/user.py).
        assert await session.get(User, USER_ID) is not None


@pytest.mark.usefixtures("failing_handlers")
async def test_unexpected_error_apologises_and_logs(
    chat: Chat, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="handlers.errors"):
        replies = await chat.send(USER_ID, "/crash")
    assert replies == [str(texts.APOLOGY)]
    assert "token=123:secret" not in replies[0]
    records = [r for r in caplog.records if r.name == "handlers.errors"]
    assert len(records) == 1 and "update 1 failed: RuntimeError" in records[0].getMessage()


@pytest.mark.usefixtures("failing_handlers")
async def test_failing_button_answered_once_with_reason(chat: Chat) -> None:
    calls = await chat.press(USER_ID, "crash")
    answers = [c for c in calls if c.method == "answerCallbackQuery"]
    assert len(answers) == 1
    assert (
        answers[0].params["text"] == "This is not available any more."
        and answers[0].params["show_alert"] is True
    )


async def test_set_commands_for_users_and_admins(bot: Bot, fake_api: FakeBotAPI) -> None:
    await set_commands(bot, frozenset({ADMIN_ID}))
    calls = fake_api.sent("setMyCommands")
    assert [(c.params["scope"]["type"], c.params.get("language_code")) for c in calls] == [
        ("default", None),
        ("default", "ru"),
        ("chat", None),
        ("chat", "ru"),
    ]
    assert [c["command"] for c in calls[0].params["commands"]][:2] == ["start", "help"]
    assert calls[0].params["commands"][1]["description"] == "What this bot can do"
    # Russian speakers get the same commands described in Russian.
    assert [c["command"] for c in calls[1].params["commands"]] == [
        c["command"] for c in calls[0].params["commands"]
    ]
    assert calls[1].params["commands"][1]["description"] != "What this bot can do"
    assert calls[2].params["scope"] == {"type": "chat", "chat_id": ADMIN_ID}
    assert len(calls[2].params["commands"]) > len(calls[0].params["commands"])
