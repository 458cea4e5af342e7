"""``signalbridge-agent`` as its own process against the real side server: credentials from
the environment, a clock a year off, SIGTERM, and kill -9 with reports still queued."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.container import Container
from tests.agent_support import server_url
from tests.conftest import FakeClock
from tests.devices_support import add_device
from tests.loop_support import approve, publish, settle, stored_instructions, stored_records
from webhook_server import create_app

OWNER = 4201
CONFIG = """
[agent]
poll_wait = 1
max_age_seconds = 900

[paper.quotes.EURUSD]
bid = "1.08500"
ask = "1.08512"
"""


@pytest.fixture
async def server(container: Container, aiohttp_client: Any) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = await aiohttp_client(create_app(container))
    return client


async def until(condition: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    async def wait() -> None:
        while not await condition():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(wait(), timeout)


class AgentProcess:
    def __init__(
        self, server: TestClient[Any, Any], device_id: str, secret: str, tmp: Path
    ) -> None:
        self.config = tmp / "agent.toml"
        self.config.write_text(CONFIG, encoding="utf-8")
        self.journal = tmp / "journal.sqlite3"
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "SIGNALBRIDGE_SERVER_URL": server_url(server),
            "SIGNALBRIDGE_DEVICE_ID": device_id,
            "SIGNALBRIDGE_SECRET": secret,
        }
        self.logs: list[str] = []

    async def start(self) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "signalbridge_agent",
            "--executor",
            "paper",
            "--config",
            str(self.config),
            "--journal",
            str(self.journal),
            env=self.env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )

    async def finish(self, process: asyncio.subprocess.Process) -> int:
        _, err = await asyncio.wait_for(process.communicate(), 5)
        self.logs.append(err.decode())
        assert process.returncode is not None
        return process.returncode

    def outbox(self) -> list[tuple[str, str]]:
        try:
            with sqlite3.connect(self.journal) as db:
                return db.execute("SELECT kind, state FROM outbox ORDER BY seq").fetchall()
        except sqlite3.OperationalError:  # the process has not made its tables yet
            return []

    def book(self) -> int:
        with sqlite3.connect(self.journal) as db:
            return int(db.execute("SELECT COUNT(*) FROM paper_book").fetchone()[0])


async def test_runs_from_the_environment_and_stops_on_sigterm(
    server: TestClient[Any, Any], container: Container, clock: FakeClock, tmp_path: Path
) -> None:
    _, credentials = await add_device(container, OWNER)
    agent = AgentProcess(server, credentials.device_id, credentials.secret, tmp_path)
    process = await agent.start()
    await approve(container, await publish(container), OWNER)

    async def filled() -> bool:
        return [r.kind for r in await stored_records(container)] == ["ack", "fill"]

    await until(filled)
    process.send_signal(signal.SIGTERM)
    assert await agent.finish(process) == 0
    log = agent.logs[0]
    assert credentials.secret not in log
    # The process's clock is the real one, the server's is the tests' (a year apart).
    assert "this computer's clock is" in log and "signing with the server's time" in log
    assert "filled: buy 0.01 EURUSD @ 1.08512, ticket 5000001" in log
    assert log.rstrip().endswith("stopped; 0 reports wait for the next start")
    await settle(container)
    [record] = [r for r in await stored_records(container) if r.kind == "fill"]
    assert (record.price, record.volume, record.ticket) == (
        Decimal("1.08512"),
        Decimal("0.01"),
        5000001,
    )


async def test_kill_9_with_reports_queued_loses_and_repeats_nothing(
    server: TestClient[Any, Any],
    container: Container,
    clock: FakeClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, credentials = await add_device(container, OWNER)
    agent = AgentProcess(server, credentials.device_id, credentials.secret, tmp_path)

    async def failing(*_args: Any) -> Any:
        raise RuntimeError("database gone")

    monkeypatch.setattr(container.reports, "record", failing)  # reports answer 500
    process = await agent.start()
    await approve(container, await publish(container), OWNER)

    async def journaled() -> bool:
        return agent.journal.exists() and agent.outbox() == [("ack", "queued"), ("fill", "queued")]

    await until(journaled)
    process.kill()
    assert await agent.finish(process) == -signal.SIGKILL
    assert await stored_records(container) == []
    monkeypatch.undo()

    process = await agent.start()

    async def accepted() -> bool:
        return agent.outbox() == [("ack", "accepted"), ("fill", "accepted")]

    await until(accepted)
    process.send_signal(signal.SIGTERM)
    assert await agent.finish(process) == 0
    assert "2 reports from before the restart will be sent again" in agent.logs[1]
    assert agent.book() == 1
    await settle(container)
    assert [r.kind for r in await stored_records(container)] == ["ack", "fill"]
    assert [i.state for i in await stored_instructions(container)] == ["filled"]


async def test_refuses_bad_settings_without_showing_the_secret(tmp_path: Path) -> None:
    secret = "short-secret"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "signalbridge_agent",
        "--executor",
        "paper",
        env={
            "PATH": os.environ.get("PATH", ""),
            "SIGNALBRIDGE_SERVER_URL": "https://bot.example.com",
            "SIGNALBRIDGE_DEVICE_ID": "dev_" + "A" * 20,
            "SIGNALBRIDGE_SECRET": secret,
        },
        cwd=tmp_path,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode == 2
    text = err.decode()
    assert "refusing to start: the Secret" in text
    assert secret not in text


async def test_a_refused_secret_exits_3_and_a_missing_terminal_exits_4(
    server: TestClient[Any, Any], container: Container, tmp_path: Path
) -> None:
    _, credentials = await add_device(container, OWNER)
    wrong = AgentProcess(server, credentials.device_id, "W" * 43, tmp_path)
    process = await wrong.start()
    assert await wrong.finish(process) == 3
    assert "the server refuses this device's credentials (invalid_signature)" in wrong.logs[0]
    assert "W" * 43 not in wrong.logs[0]

    mt5 = AgentProcess(server, credentials.device_id, credentials.secret, tmp_path)
    mt5.config.write_text("[mt5]\nmagic = 20260101\n", encoding="utf-8")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "signalbridge_agent",
        "--executor",
        "mt5",
        "--config",
        str(mt5.config),
        "--journal",
        str(tmp_path / "mt5.sqlite3"),
        env=mt5.env,
        stderr=asyncio.subprocess.PIPE,
    )
    assert await mt5.finish(process) == 4
    assert "the mt5 executor failed: the MetaTrader5 package is not installed" in mt5.logs[0]
    assert credentials.secret not in mt5.logs[0]
