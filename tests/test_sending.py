"""The one send path: pacing per chat and overall, 429 waits, 403 marking, no duplicates."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import aiohttp
import pytest
from aiogram import Bot
from aiogram.exceptions import (
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import SendMessage
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import SendingSettings
from bot.container import Container
from bot.infra.sending import SendPath
from db.models import User
from tests.conftest import Chat
from tests.fake_bot_api import FakeBotAPI

A, B, C = 5001, 5002, 5003


def ok_sends(fake_api: FakeBotAPI, chat_id: int | None = None) -> list[Any]:
    return [call for call in fake_api.sent("sendMessage", chat_id) if call.ok]


def test_create_bot_installs_the_send_path(bot: Bot, container: Container) -> None:
    path = SendPath.of(bot)
    assert path is not None and path is container.send_path
    assert path.blocked is container.notifier.blocked
    assert [m for m in bot.session.middleware if isinstance(m, SendPath)] == [path]


@pytest.mark.parametrize(
    "settings_overrides",
    [
        {
            "sending": {
                "global_per_second": 1000,
                "per_chat_interval_seconds": 0.25,
                "per_chat_burst": 1,
            }
        }
    ],
)
async def test_one_message_per_interval_per_chat_without_blocking_others(
    container: Container, fake_api: FakeBotAPI, chat: Chat
) -> None:
    notifier = container.notifier
    path = container.send_path
    assert path is not None
    sends = [asyncio.create_task(notifier.send(A, f"a{i}")) for i in range(3)]
    await fake_api.wait_for("sendMessage")
    # The first went out; the others wait for their slots (0.25 s and 0.5 s from now).
    assert 1 <= path.queue_depth <= 2
    other = asyncio.create_task(notifier.send(B, "b0"))
    await asyncio.gather(*sends, other)
    assert path.queue_depth == 0

    to_a = ok_sends(fake_api, A)
    assert [call.text for call in to_a] == ["a0", "a1", "a2"]
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(to_a)]
    assert all(gap >= 0.2 for gap in gaps), gaps
    # B's message did not wait behind A's queue.
    [to_b] = ok_sends(fake_api, B)
    assert to_b.at < to_a[1].at

    # Replies in handlers take the same path: the second reply waits for the chat's slot.
    fake_api.clear()
    await chat.send(C, "/help")
    await chat.send(C, "/help")
    first, second = ok_sends(fake_api, C)
    assert second.at - first.at >= 0.2


@pytest.mark.parametrize(
    "settings_overrides",
    [{"sending": {"global_per_second": 4, "per_chat_interval_seconds": 0}}],
)
async def test_global_rate(container: Container, fake_api: FakeBotAPI) -> None:
    notifier = container.notifier
    await asyncio.gather(*(notifier.send(7000 + i, "hi") for i in range(8)))
    calls = ok_sends(fake_api)
    assert len(calls) == 8
    # A bucket of 4 goes at once; the next 4 leak out at 4/s.
    assert calls[-1].at - calls[0].at >= 0.9


async def test_429_is_waited_out_and_retried_once_delivered(
    container: Container, fake_api: FakeBotAPI
) -> None:
    notifier = container.notifier
    fake_api.fail_next("sendMessage", error="429", retry_after=1)
    message = await notifier.send(A, "after a wait")
    assert message is not None
    calls = fake_api.sent("sendMessage", A)
    assert [call.failed for call in calls] == [429, None]
    assert calls[1].at - calls[0].at >= 0.9
    assert fake_api.texts(A) == ["after a wait"]


@pytest.mark.parametrize("settings_overrides", [{"sending": {"max_retries": 1}}])
async def test_429_retries_are_bounded(container: Container, fake_api: FakeBotAPI) -> None:
    fake_api.fail_next("sendMessage", error="429", retry_after=1, times=2)
    with pytest.raises(TelegramRetryAfter):
        await container.notifier.send(A, "never")
    assert len(fake_api.sent("sendMessage", A)) == 2
    assert fake_api.texts(A) == []


@pytest.mark.parametrize("settings_overrides", [{"sending": {"max_retry_after_seconds": 5}}])
async def test_a_429_asking_too_long_gives_up(container: Container, fake_api: FakeBotAPI) -> None:
    fake_api.fail_next("sendMessage", error="429", retry_after=3600)
    with pytest.raises(TelegramRetryAfter):
        await container.notifier.send(A, "never")
    assert len(fake_api.sent("sendMessage", A)) == 1


async def test_other_failures_are_never_retried(container: Container, fake_api: FakeBotAPI) -> None:
    fake_api.fail_next("sendMessage", error="500")
    with pytest.raises(TelegramServerError):
        await container.notifier.send(A, "maybe delivered")
    assert len(fake_api.sent("sendMessage", A)) == 1


async def test_403_marks_the_user_and_stops_sending_until_they_write_again(
    chat: Chat,
    container: Container,
    fake_api: FakeBotAPI,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await chat.send(A, "/start")
    notifier = container.notifier
    fake_api.block_chat(A)
    assert await notifier.send(A, "one") is None
    assert await notifier.send(A, "two") is None
    assert await notifier.edit(A, 1, "edit") is False
    # Only the first reached Telegram; the rest were refused on the spot.
    assert len(fake_api.sent("sendMessage", A)) == 2  # the /start reply and "one"
    assert fake_api.sent("editMessageText", A) == []
    await notifier.drain()
    async with sessionmaker() as session:
        user = await session.get(User, A)
        assert user is not None and user.is_blocked

    fake_api.unblock_chat(A)
    replies = await chat.send(A, "/help")
    assert replies and "Commands" in replies[0]
    assert await notifier.send(A, "welcome back") is not None
    async with sessionmaker() as session:
        user = await session.get(User, A)
        assert user is not None and not user.is_blocked


class _Recorder:
    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures
        self.calls = 0

    async def __call__(self, bot: Bot, method: Any) -> Any:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "sent"


def _network_error(cause: Exception) -> TelegramNetworkError:
    method = SendMessage(chat_id=A, text="x")
    error = TelegramNetworkError(method=method, message=f"{type(cause).__name__}: {cause}")
    error.__cause__ = cause
    return error


async def test_retries_only_when_the_request_certainly_did_not_leave(bot: Bot) -> None:
    settings = SendingSettings(
        global_per_second=1000, per_chat_interval_seconds=0, connect_retry_delay_seconds=0
    )
    path = SendPath(settings)
    method = SendMessage(chat_id=A, text="x")
    refused = aiohttp.ClientConnectorError(
        aiohttp.client_reqrep.ConnectionKey("h", 1, False, True, None, None, None),
        OSError(111, "Connection refused"),
    )
    make_request = _Recorder([_network_error(refused)])
    assert await path(make_request, bot, method) == "sent"  # type: ignore[comparison-overlap]
    assert make_request.calls == 2

    # A dropped connection may have delivered the message: raised, not retried.
    make_request = _Recorder([_network_error(aiohttp.ServerDisconnectedError())])
    with pytest.raises(TelegramNetworkError):
        await path(make_request, bot, method)
    assert make_request.calls == 1

    forbidden = TelegramForbiddenError(method=method, message="Forbidden: bot was blocked")
    make_request = _Recorder([forbidden])
    with pytest.raises(TelegramForbiddenError):
        await path(make_request, bot, method)
    assert make_request.calls == 1
