"""The update log: one structured line per update, no text beyond the command, no secret."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiogram import Dispatcher, F
from aiogram.types import Message

from bot.infra.updatelog import UpdateTrace
from tests.conftest import BOT_TOKEN, TEST_SECRETS, Chat
from tests.fake_bot_api import callback_update, message_update

LINE = re.compile(
    r"^update id=(?P<id>\d+) type=(?P<type>\S+) user=(?P<user>\S+) command=(?P<command>\S+) "
    r"handler=(?P<handler>\S+) outcome=(?P<outcome>\S+) ms=(?P<ms>\d+\.\d)$"
)


def update_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, str]]:
    lines = []
    for record in caplog.records:
        if record.name == "bot.updates":
            match = LINE.match(record.getMessage())
            assert match, record.getMessage()
            lines.append(match.groupdict())
    return lines


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"rate_limit": {"capacity": 2}}


async def test_one_line_per_update_with_command_handler_and_outcome(
    chat: Chat, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="bot.updates")
    await chat.send(8101, "/start ref_Secr3tReferral")
    await chat.send(8101, "my card is 4111 1111 1111 1111")
    [first, second] = update_lines(caplog)
    assert first["type"] == "message"
    assert first["user"] == "8101"
    assert first["command"] == "/start"
    assert first["handler"] == "handlers.start:cmd_start"
    assert first["outcome"] == "handled"
    assert int(first["id"]) == 1
    assert second["command"] == "-"
    assert second["handler"] == "handlers.fallback:stray_message"
    text = caplog.text
    assert "Secr3tReferral" not in text
    assert "4111" not in text


async def test_throttled_unhandled_and_error_outcomes(
    dp: Dispatcher, chat: Chat, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(message: Message) -> None:
        raise RuntimeError("bug")

    dp.message.register(broken, F.text == "/boom")
    caplog.set_level("INFO", logger="bot.updates")
    await chat.send(8102, "/boom")
    await chat.send(8102, "/help")
    await chat.send(8102, "/help")  # over the bucket of 2
    await chat.feed({"my_chat_member": _member_update(8102)})
    outcomes = [
        (line["command"], line["handler"], line["outcome"]) for line in update_lines(caplog)
    ]
    assert outcomes == [
        ("/boom", f"tests.test_update_log:{broken.__qualname__}", "error"),
        ("/help", "handlers.start:cmd_help", "handled"),
        ("/help", "-", "throttled"),
        ("-", "-", "unhandled"),
    ]


async def test_callback_prefix_only_and_no_secret_anywhere(
    chat: Chat, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    await chat.press(8103, "dev:pause:17")
    [line] = update_lines(caplog)
    assert line["type"] == "callback_query"
    assert line["command"] == "cb:dev"
    assert line["handler"] == "handlers.fallback:stale_button"
    assert "pause:17" not in caplog.records[-1].getMessage()
    assert BOT_TOKEN not in caplog.text
    assert BOT_TOKEN.split(":")[1] not in caplog.text
    for secret in TEST_SECRETS.values():
        assert secret not in caplog.text


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("/help", "/help"),
        ("/help@signalbridge_test_bot extra words", "/help"),
        ("/stats 2026-01", "/stats"),
        ("/<script>", "/?"),
        ("/" + "x" * 80, "/?"),
        ("no command", "-"),
    ],
)
def test_only_the_command_word_is_kept(text: str, command: str) -> None:
    from aiogram.types import Update

    update = Update.model_validate({"update_id": 1, **message_update(1, text)})
    assert UpdateTrace.of(update).command == command


@pytest.mark.parametrize(
    ("data", "command"),
    [("dev:pause:17", "cb:dev"), ("plain", "cb:plain"), ("bad prefix\n:1", "cb:?")],
)
def test_only_the_callback_prefix_is_kept(data: str, command: str) -> None:
    from aiogram.types import Update

    update = Update.model_validate({"update_id": 1, **callback_update(1, data)})
    assert UpdateTrace.of(update).command == command


def _member_update(user_id: int) -> dict[str, Any]:
    user = {"id": user_id, "is_bot": False, "first_name": "Test"}
    bot = {"id": 7000000001, "is_bot": True, "first_name": "Bot"}
    return {
        "chat": {"id": user_id, "type": "private", "first_name": "Test"},
        "from": user,
        "date": 1_700_000_000,
        "old_chat_member": {"status": "member", "user": bot},
        "new_chat_member": {"status": "kicked", "user": bot, "until_date": 0},
    }
