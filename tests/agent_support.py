"""Real devices for the tests: the device agent (ea/agent) with its paper executor, run
in-process against the side server the test started, signing with the test's clock."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from signalbridge_agent.agent import Agent, AgentSettings
from signalbridge_agent.client import Credentials
from signalbridge_agent.journal import Journal
from signalbridge_agent.paper import PaperAccount, PaperExecutor, PaperSymbol, QuoteTable

from bot.domain.devices import Credentials as DeviceCredentials
from tests.conftest import FakeClock

# Short waits: the tests' server answers at once and their faults are scripted. A v1
# device (no state sent): the tests written for protocol v1 see its exact instructions.
TEST_SETTINGS = AgentSettings(
    poll_wait=5, backoff_min=0.02, backoff_max=0.2, stop_within=3.0, protocol="1"
)
# A v1.1 device (EA_PROTOCOL section 5): sends its state, gets sized opens and close_all.
V11_SETTINGS = replace(TEST_SETTINGS, protocol="1.1", manage_wait=1)


def server_url(server: TestClient[Any, Any]) -> str:
    return str(server.make_url("/")).rstrip("/")


@dataclass
class Device:
    """A running agent and what the test reads or changes on it."""

    agent: Agent
    quotes: QuoteTable
    journal: Journal
    task: asyncio.Task[None]
    paper: PaperExecutor
    expect_failure: bool = False  # the test crashes the agent on purpose

    def received(self) -> list[dict[str, Any]]:
        """The instructions as the agent received them (raw JSON), in order."""
        return [entry.raw for entry in self.journal.entries()]

    def reports(self) -> list[tuple[str, dict[str, Any], str]]:
        """(kind, body, state) of every report the agent queued, in order."""
        return [(r.kind, r.body, r.state.value) for r in self.journal.reports()]

    def answers(self) -> list[str | None]:
        """The server's answer to each report: "201", "200 duplicate", or the error."""
        return [r.answer for r in self.journal.reports()]

    def unsent(self) -> int:
        return len(self.journal.queued())

    async def until(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        async def wait() -> None:
            while not condition():
                if self.task.done():
                    self.task.result()  # the agent's own failure, if any
                    raise AssertionError("the agent stopped")
                await asyncio.sleep(0.005)

        await asyncio.wait_for(wait(), timeout)

    async def cycles(self, count: int = 2, timeout: float = 10.0) -> None:
        """Wait for ``count`` polls to be handled (2: one that began after this call)."""
        for _ in range(count):
            await asyncio.wait_for(self.agent.next_cycle(), timeout)


@contextlib.asynccontextmanager
async def run_device(
    server: TestClient[Any, Any],
    clock: FakeClock,
    credentials: DeviceCredentials,
    journal_path: Path,
    *,
    quotes: QuoteTable | None = None,
    after_execute: Callable[[str], None] | None = None,
    settings: AgentSettings = TEST_SETTINGS,
    secret: str | None = None,
    wall_clock: Callable[[], float] | None = None,
    symbols: Mapping[str, PaperSymbol] | None = None,
    account: PaperAccount | None = None,
) -> AsyncIterator[Device]:
    """Start an agent for the device; stop it (cleanly) when the block ends. ``quotes``
    may be a PricePath the test plays; ``symbols`` and ``account`` set up the paper broker."""
    table = quotes or QuoteTable()
    journal = Journal(journal_path, credentials.device_id)
    executor = PaperExecutor(
        journal_path, table, clock=lambda: clock.now, symbols=symbols, account=account
    )
    agent = Agent(
        Credentials(server_url(server), credentials.device_id, secret or credentials.secret),
        executor,
        journal,
        settings=settings,
        wall_clock=wall_clock or (lambda: clock.now.timestamp()),
        after_execute=after_execute,
    )
    task = asyncio.create_task(agent.run())
    device = Device(agent, table, journal, task, executor)
    try:
        yield device
    finally:
        agent.stop()
        try:
            await asyncio.wait_for(asyncio.shield(task), 10)
        except BaseException:
            if not device.expect_failure:
                raise
        finally:
            journal.close()
