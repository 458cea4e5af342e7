"""SIGTERM on the real process (`python -m bot`) under load: signed EA reports arriving
all the time, their notices queued to two chats at the default 1 message/s, and a user's
updates waiting for their replies. It must stop taking work at once (503 shutting_down
with Retry-After), lose no report it acknowledged, keep every update it took, and exit 0
within 5 s."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from bench.ea_support import MASTER_KEY, BenchDevice, fill_request, prepare_fills, settings_for
from bot.factory import create_container
from db.models import ExecutionRecord, ProcessedUpdate
from tests.conftest import ADMIN_ID
from tests.fake_bot_api import FakeBotAPI, message_update
from tests.process_support import bot_env, free_port

SECRET = "w" * 43
CLIENTS = 32
OWNERS = 2  # every fill notice goes to one of two chats, paced 1 per second each
INSTRUCTIONS = 20_000
CHATTY_USER = 5301
# The whole stop, from the signal to the exit code, must stay below this.
LIMIT_S = 5.0


@dataclass
class Load:
    """What the EAs saw: each report id with its answer (None: no answer at all)."""

    answers: dict[str, int | None] = field(default_factory=dict)
    shutting_down: list[dict[str, Any]] = field(default_factory=list)
    retry_after: set[str] = field(default_factory=set)
    running: bool = True


async def report_client(
    http: aiohttp.ClientSession, base: str, targets: list[tuple[BenchDevice, str]], load: Load
) -> None:
    for device, instruction_id in targets:
        if not load.running:
            return
        report_id = f"r-{instruction_id}"
        request = fill_request(device, instruction_id, report_id)
        load.answers[report_id] = None
        try:
            async with http.request(
                request.method, base + request.path, data=request.body, headers=request.headers
            ) as response:
                load.answers[report_id] = response.status
                if response.status == 503:
                    load.shutting_down.append(await response.json())
                    load.retry_after.add(response.headers.get("Retry-After", ""))
                    await asyncio.sleep(0.05)
                else:
                    await response.read()
        except (aiohttp.ClientError, TimeoutError):
            # The listener is gone: an unanswered report is resent by the EA later.
            await asyncio.sleep(0.05)


async def stored_reports(database_url: str) -> set[str]:
    container = create_container(settings_for(database_url))
    try:
        async with container.sessionmaker() as session:
            return set((await session.scalars(select(ExecutionRecord.report_id))).all())
    finally:
        await container.engine.dispose()


async def stored_updates(database_url: str) -> dict[int, bool]:
    """Every update id stored, and whether it was handled."""
    container = create_container(settings_for(database_url))
    try:
        async with container.sessionmaker() as session:
            rows = await session.execute(
                select(ProcessedUpdate.update_id, ProcessedUpdate.handled_at)
            )
            return {update_id: handled is not None for update_id, handled in rows}
    finally:
        await container.engine.dispose()


def process_env(fake_api: FakeBotAPI, database_url: str, port: int, mode: str) -> dict[str, str]:
    # config.toml's default pace: 1 message/s per chat.
    env = bot_env(
        fake_api,
        database_url,
        port,
        TELEGRAM__MODE=mode,
        TELEGRAM__ADMIN_IDS=f"[{ADMIN_ID}]",
        MASTER_KEY=MASTER_KEY,
        WEBHOOK_SECRET=SECRET,
        LOGGING__LEVEL="WARNING",
    )
    if mode == "webhook":
        env["WEBHOOK__URL"] = f"http://127.0.0.1:{port}"
    return env


@pytest.mark.parametrize("mode", ["polling", "webhook"])
async def test_sigterm_under_report_load_and_paced_replies_exits_0_within_5_s(
    fake_api: FakeBotAPI, clean_database: str, tmp_path: Path, mode: str
) -> None:
    targets = await prepare_fills(clean_database, OWNERS, INSTRUCTIONS)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        cwd=tmp_path,
        env=process_env(fake_api, clean_database, port, mode),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    load = Load()
    loop = asyncio.get_running_loop()
    clients: list[asyncio.Task[None]] = []
    try:
        await fake_api.wait_for("getUpdates" if mode == "polling" else "setWebhook", timeout=30)
        connector = aiohttp.TCPConnector(limit=CLIENTS)
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            clients = [
                asyncio.create_task(report_client(http, base, targets[n::CLIENTS], load))
                for n in range(CLIENTS)
            ]
            # A user's commands, answered one per second in their chat (the default pace).
            update_ids = []
            for n in range(8):
                update = {"update_id": 900 + n, **message_update(CHATTY_USER, "/help")}
                update_ids.append(900 + n)
                if mode == "polling":
                    fake_api.inject_update(update)
                else:
                    status, _ = await fake_api.deliver_webhook(
                        f"{base}/tg/webhook", update, secret_token=SECRET
                    )
                    assert status == 200
            await fake_api.wait_for(
                "sendMessage", lambda call: call.chat_id == CHATTY_USER, timeout=10
            )
            # Let the notices pile up in the owners' chats (hundreds at 1 per second).
            for _ in range(400):
                if sum(1 for status in load.answers.values() if status == 201) >= 500:
                    break
                assert process.returncode is None
                await asyncio.sleep(0.05)
            else:
                statuses = sorted({str(status) for status in load.answers.values()})
                raise AssertionError(f"the reports are not stored: {statuses}")

            started = loop.time()
            process.send_signal(signal.SIGTERM)
            if mode == "webhook":
                # Telegram's next delivery is refused, so it is redelivered after the restart.
                await asyncio.sleep(0.2)
                late = {"update_id": 950, **message_update(CHATTY_USER, "/help")}
                status, body = await fake_api.deliver_webhook(
                    f"{base}/tg/webhook", late, secret_token=SECRET
                )
                assert status == 503, body
                assert json.loads(body)["error"] == "shutting_down"
            code = await asyncio.wait_for(process.wait(), timeout=15)
            elapsed = loop.time() - started
            load.running = False
            await asyncio.gather(*clients)
        stderr = (await process.stderr.read()).decode() if process.stderr else ""
    finally:
        load.running = False
        for client in clients:
            client.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
        if process.returncode is None:
            process.kill()
            await process.wait()

    print(f"{mode}: stopped in {elapsed:.2f} s under load")
    assert code == 0, stderr
    assert elapsed < LIMIT_S, f"took {elapsed:.2f} s to stop"
    assert "Traceback" not in stderr, stderr

    # Stopped taking work first: later requests were refused in the contract's terms.
    assert load.shutting_down, "no request was answered 503 while stopping"
    assert all(body["error"] == "shutting_down" for body in load.shutting_down)
    assert load.retry_after == {"5"}
    # No acknowledged report lost; every report stored was acknowledged or unanswered.
    stored = await stored_reports(clean_database)
    acknowledged = {rid for rid, status in load.answers.items() if status in (200, 201)}
    assert acknowledged <= stored
    assert all(load.answers[rid] in (200, 201, None) for rid in stored)
    # Every update Telegram handed over is stored (handled, or pending for the restart).
    updates = await stored_updates(clean_database)
    unconfirmed = {int(u["update_id"]) for u in fake_api.pending_updates}
    assert all(uid in updates or uid in unconfirmed for uid in update_ids)
    assert updates[900]  # the first /help was answered and marked
    assert 950 not in updates  # refused while stopping (webhook): Telegram delivers it again
