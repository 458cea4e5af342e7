"""`python -m bot` in webhook mode as a real process: setWebhook, a delivery, SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import BOT_TOKEN, REPO_ROOT
from tests.fake_bot_api import FakeBotAPI, message_update
from tests.process_support import bot_env, free_port

SECRET = "w" * 43


def handled_update_types() -> list[str]:
    """What the handlers use, resolved the way the bot resolves it."""
    from aiogram import Dispatcher

    from handlers import create_routers

    dp = Dispatcher()
    dp.include_routers(*create_routers())
    return dp.resolve_used_update_types()


def process_env(fake_api: FakeBotAPI, database_url: str, port: int) -> dict[str, str]:
    return bot_env(
        fake_api,
        database_url,
        port,
        TELEGRAM__MODE="webhook",
        TELEGRAM__DROP_PENDING_UPDATES="true",
        WEBHOOK__URL=f"http://127.0.0.1:{port}",
        WEBHOOK_SECRET=SECRET,
    )


async def test_webhook_process_sets_the_webhook_serves_updates_and_keeps_it_on_stop(
    fake_api: FakeBotAPI, database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        cwd=tmp_path,
        env=process_env(fake_api, database_url, port),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        [hook] = await fake_api.wait_for("setWebhook", timeout=30)
        assert hook.params["url"] == f"http://127.0.0.1:{port}/tg/webhook"
        assert hook.params["secret_token"] == SECRET
        assert hook.params["allowed_updates"] == handled_update_types()
        assert {"message", "callback_query", "pre_checkout_query"} <= set(handled_update_types())
        assert hook.params["drop_pending_updates"] is True
        assert fake_api.sent("getUpdates") == []

        url = f"http://127.0.0.1:{port}/tg/webhook"
        status, _ = await fake_api.deliver_webhook(url, message_update(5101, "/start"))
        assert status == 401
        status, _ = await fake_api.deliver_webhook(
            url, message_update(5101, "/start", first_name="Hook"), secret_token=SECRET
        )
        assert status == 200
        [reply] = await fake_api.wait_for("sendMessage", lambda c: c.chat_id == 5101, timeout=10)
        assert "Hi, Hook!" in str(reply.text)
        # The reply is sent inside the handler; the update is counted once it has committed.
        handled = 'signalbridge_updates_total{outcome="handled",type="message"} 1.0'
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                    assert response.status == 200
                    if handled in await response.text():
                        break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the handled update was never counted")

        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), timeout=10)
        stderr = (await process.stderr.read()).decode() if process.stderr else ""
        assert code == 0, stderr
        assert "Traceback" not in stderr
        assert BOT_TOKEN not in stderr and SECRET not in stderr
        assert "outcome=handled" in stderr  # the update log
        assert fake_api.sent("deleteWebhook") == []  # the webhook stays
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_webhook_mode_without_a_url_stops_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.__main__ import main

    monkeypatch.setenv("APP_CONFIG", str(REPO_ROOT / "config.toml"))
    monkeypatch.setenv("BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("TELEGRAM__MODE", "webhook")
    monkeypatch.setenv("WEBHOOK_SECRET", SECRET)
    assert main() == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert err.startswith("config error: webhook.url (WEBHOOK__URL")


def test_webhook_mode_refuses_a_secret_telegram_would_refuse(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.__main__ import main

    monkeypatch.setenv("APP_CONFIG", str(REPO_ROOT / "config.toml"))
    monkeypatch.setenv("BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("TELEGRAM__MODE", "webhook")
    monkeypatch.setenv("WEBHOOK__URL", "https://bot.example.com")
    monkeypatch.setenv("WEBHOOK_SECRET", "has spaces and = signs")
    assert main() == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("WEBHOOK_SECRET is malformed")
    assert "spaces" not in err


async def test_delete_on_shutdown_removes_the_webhook(
    fake_api: FakeBotAPI, database_url: str
) -> None:
    from bot.app import _serve
    from bot.factory import create_bot, create_container
    from tests.conftest import make_settings
    from tests.fake_bot_api import close_bot_session
    from tests.webhook_support import dispose

    settings = make_settings(
        database_url,
        fake_api.base_url,
        telegram={"mode": "webhook"},
        webhook={"url": "https://bot.example.com", "delete_on_shutdown": True},
    )
    bot = create_bot(settings)
    container = create_container(settings, bot=bot)
    stop = asyncio.Event()
    try:
        serving = asyncio.create_task(_serve(container, stop))
        await fake_api.wait_for("setWebhook", timeout=10)
        assert fake_api.sent("deleteWebhook") == []
        stop.set()
        await asyncio.wait_for(serving, timeout=10)
        [delete] = fake_api.sent("deleteWebhook")
        assert delete.ok
        assert fake_api.webhook is None
    finally:
        await close_bot_session(bot)
        await dispose(container)
