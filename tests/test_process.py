"""`python -m bot` as a real process against the fake Bot API: /start, /healthz, SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import aiohttp

from tests.conftest import BOT_TOKEN
from tests.fake_bot_api import FakeBotAPI, message_update
from tests.process_support import bot_env, free_port


async def test_process_answers_start_and_healthz_then_stops_on_sigterm(
    fake_api: FakeBotAPI, database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = bot_env(
        fake_api, database_url, port, TELEGRAM__POLLING_TIMEOUT="20", TELEGRAM__ADMIN_IDS="[42]"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await fake_api.wait_for("getUpdates", timeout=30)
        fake_api.inject_update(message_update(5001, "/start", first_name="Proc"))
        [reply] = await fake_api.wait_for(
            "sendMessage", lambda c: c.params.get("chat_id") == 5001, timeout=10
        )
        assert "Hi, Proc!" in str(reply.params["text"])
        fake_api.inject_update(message_update(5001, "/help"))
        await fake_api.wait_for(
            "sendMessage", lambda c: "/start" in str(c.params.get("text")), timeout=10
        )
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/healthz") as response,
        ):
            assert response.status == 200
            assert await response.json() == {"status": "ok"}
        commands = fake_api.sent("setMyCommands")
        assert commands and commands[0].params["scope"] == {"type": "default"}

        started = asyncio.get_running_loop().time()
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), timeout=10)
        elapsed = asyncio.get_running_loop().time() - started
        stderr = (await process.stderr.read()).decode() if process.stderr else ""
        assert code == 0, stderr
        assert elapsed < 5, f"took {elapsed:.1f}s to stop"
        assert "Traceback" not in stderr
        assert BOT_TOKEN not in stderr
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
