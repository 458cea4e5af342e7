"""/settings: three toggles, stored per user; auto-approve changes how signals arrive."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.chat.callbacks import SettingsCb, SettingsToggle
from bot.container import Container
from bot.domain.signal_rules import validate_new_signal
from db.models import UserSettings
from tests.conftest import Chat
from tests.fake_bot_api import FakeBotAPI

USER = 8001


async def test_settings_toggles(
    chat: Chat,
    container: Container,
    fake_api: FakeBotAPI,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    [text] = await chat.send(USER, "/settings")
    assert "Auto-approve signals</b>: off" in text
    assert "Fill notifications</b>: on" in text
    assert "Error notifications</b>: on" in text
    message_id = fake_api.last("sendMessage", USER).result["message_id"]

    calls = await chat.press(
        USER, SettingsCb(toggle=SettingsToggle.AUTO_APPROVE).pack(), message_id=message_id
    )
    [edit] = [c for c in calls if c.method == "editMessageText"]
    assert "Auto-approve signals</b>: on" in edit.params["text"]
    assert edit.params["message_id"] == message_id
    [answer] = [c for c in calls if c.method == "answerCallbackQuery"]
    assert answer.params["text"] == "Auto-approve signals: on."
    await chat.press(USER, SettingsCb(toggle=SettingsToggle.NOTIFY_FILLS).pack())
    await chat.press(USER, SettingsCb(toggle=SettingsToggle.NOTIFY_ERRORS).pack())
    await chat.press(USER, SettingsCb(toggle=SettingsToggle.NOTIFY_ERRORS).pack())
    async with sessionmaker() as session:
        row = await session.get(UserSettings, USER)
        assert row is not None
        assert (row.auto_approve, row.notify_fills, row.notify_errors) == (True, False, True)
    [text] = await chat.send(USER, "/settings")
    assert "Auto-approve signals</b>: on" in text and "Fill notifications</b>: off" in text

    draft = validate_new_signal({"symbol": "EURUSD", "side": "sell"}, container.settings.signals)
    outcome = await container.signals.submit(sessionmaker, draft, source="provider")
    await container.outbox_worker.drain()
    message = fake_api.last("sendMessage", USER)
    assert "Auto-approved" in message.params["text"] and "reply_markup" not in message.params
    assert outcome.recipients >= 1
