"""The notifier: sends, edits, and marks users who blocked the bot."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.container import Container
from db.models import User
from tests.conftest import Chat
from tests.fake_bot_api import FakeBotAPI

USER_ID = 424_242


async def test_blocked_user_is_marked_and_send_returns_none(
    chat: Chat,
    container: Container,
    fake_api: FakeBotAPI,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await chat.send(USER_ID, "/start")
    notifier = container.notifier
    sent = await notifier.send(USER_ID, "hello")
    assert sent is not None and sent.text == "hello"
    fake_api.block_chat(USER_ID)
    assert await notifier.send(USER_ID, "again") is None
    await notifier.drain()
    async with sessionmaker() as session:
        user = await session.get(User, USER_ID)
        assert user is not None and user.is_blocked and user.blocked_at is not None


async def test_edit_ignores_not_modified(container: Container, fake_api: FakeBotAPI) -> None:
    notifier = container.notifier
    message = await notifier.send(USER_ID, "state: waiting")
    assert message is not None
    fake_api.fail_next("editMessageText", error="400_not_modified")
    assert await notifier.edit(USER_ID, message.message_id, "state: waiting") is True
    assert await notifier.edit(USER_ID, message.message_id, "state: filled") is True
    assert fake_api.texts(USER_ID)[-1] == "state: filled"
    fake_api.fail_next("editMessageText", error="400", description="message to edit not found")
    assert await notifier.edit(USER_ID, 999, "x") is False
