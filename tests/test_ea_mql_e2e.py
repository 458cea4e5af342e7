"""The shipped EAs end to end: SignalBridge.mq5 and .mq4, compiled with g++ and the shim,
against the real side server (production factories, a migrated database) over a real
socket, trading on the simulated broker, killed and restarted mid-trade; protocol v1.1
(risk sizing, legs, breakeven, trailing, guards, close_all, position events) on a scripted
market whose stop losses and take profits the broker executes."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import update

from bot.container import Container
from bot.domain.devices import Credentials, DeviceDTO, Platform, issue_close_all
from db.models import ExecutionRecord, Instruction, PositionEvent
from tests.conftest import FakeClock
from tests.devices_support import add_device
from tests.ea_mql_support import EARun, Market, Ticket, broker_tickets, compile_all, live
from tests.loop_support import (
    approve,
    configure,
    publish,
    settle,
    stored_instructions,
    stored_records,
)
from tests.signals_support import AUTH
from tests.wire_support import set_device, stored_events, stored_state
from webhook_server import create_app

OWNER = 3301
MAGIC = 20260113


@pytest.fixture(scope="session")
def ea_binaries(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return compile_all(tmp_path_factory.mktemp("ea_mql"), ("mt5", "mt4"))


class TickingClock(FakeClock):
    """The server's clock in real time: the EA lives in real time (its max age, its clock
    correction from X-Server-Time), so time must pass on both sides alike."""

    def __init__(self) -> None:
        super().__init__(datetime.now(UTC).replace(microsecond=0))
        self._started = time.monotonic()

    def __call__(self) -> datetime:
        return self.now + timedelta(seconds=time.monotonic() - self._started)


@pytest.fixture
def clock() -> FakeClock:
    return TickingClock()


@pytest.fixture
async def server(container: Container, aiohttp_client: Any) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(container))


class Terminal:
    """One MetaTrader terminal: a Files folder, a broker account, the EA's inputs."""

    def __init__(
        self,
        binary: Path,
        workdir: Path,
        server: TestClient[Any, Any],
        credentials: Credentials,
    ) -> None:
        self.binary = binary
        self.workdir = workdir
        self.market = Market(workdir / "market.txt")
        self.inputs = {
            "SB_SERVER_URL": f"http://127.0.0.1:{server.port}",
            "SB_DEVICE_ID": credentials.device_id,
            "SB_SECRET": credentials.secret,
            "SB_MAGIC": str(MAGIC),
        }
        self.runs: list[EARun] = []

    async def start(self, **env: str) -> EARun:
        run = EARun(self.binary, self.workdir, {**self.inputs, **env})
        self.runs.append(run)
        return await run.start()

    def seed_foreign_trades(self, symbol: str) -> list[Ticket]:
        """A manual position and another EA's pending order, there before this EA starts."""
        (self.workdir / "broker.txt").write_text(
            "next 5000001 9000001\n"
            f"ticket 4000001 {symbol} 0 0.5 1.084 1.07 1.1 0 manual 1767225600 0 0 0 0\n"
            f"ticket 4000002 {symbol} 2 0.3 1.07 1.06 1.09 777 other%20EA 1767225600 0 0 0 0\n"
        )
        return self.tickets()

    def tickets(self) -> list[Ticket]:
        return broker_tickets(self.workdir / "broker.txt")

    @property
    def output(self) -> str:
        return "".join(run.output for run in self.runs)

    async def close(self) -> None:
        for run in self.runs:
            await run.kill()


@pytest.fixture
async def terminal_of(
    container: Container, server: TestClient[Any, Any], ea_binaries: dict[str, Path], tmp_path: Path
) -> Any:
    made: list[Terminal] = []

    async def make(platform: Platform) -> tuple[DeviceDTO, Terminal]:
        device, credentials = await add_device(container, OWNER, f"T{len(made)}", platform)
        workdir = tmp_path / f"terminal-{len(made)}"
        workdir.mkdir()
        terminal = Terminal(ea_binaries[platform.value], workdir, server, credentials)
        made.append(terminal)
        return device, terminal

    yield make
    for terminal in made:
        await terminal.close()


async def until(
    condition: Callable[[], Any], run: EARun | None = None, timeout: float = 20
) -> None:
    """Wait (serving the server meanwhile) until condition() holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await _holds(condition):
        if run is not None and run.process is not None and run.process.returncode is not None:
            raise AssertionError(f"the EA exited ({run.process.returncode}):\n{run.output}")
        if loop.time() > deadline:
            raise AssertionError("timed out; EA output:\n" + (run.output if run else ""))
        await asyncio.sleep(0.05)


async def _holds(condition: Callable[[], Any]) -> bool:
    value = condition()
    if asyncio.iscoroutine(value):
        value = await value
    return bool(value)


async def records_by_action(container: Container) -> list[tuple[str, str]]:
    """(action of the instruction, kind of report) for every stored record, in order."""
    actions = {i.id: i.action for i in await stored_instructions(container)}
    return [(actions[r.instruction_id], r.kind) for r in await stored_records(container)]


async def has_records(container: Container, *expected: tuple[str, str]) -> bool:
    await settle(container)
    return await records_by_action(container) == list(expected)


async def has_record(container: Container, expected: tuple[str, str]) -> bool:
    await settle(container)
    return expected in await records_by_action(container)


def own(tickets: list[Ticket]) -> list[Ticket]:
    return [t for t in live(tickets) if t.magic == MAGIC]


def record_of(
    records: list[ExecutionRecord], instruction: Instruction, kind: str
) -> ExecutionRecord:
    [found] = [r for r in records if r.instruction_id == instruction.id and r.kind == kind]
    return found


async def provider(
    server: TestClient[Any, Any], signal: str, change: str, body: dict[str, Any]
) -> None:
    response = await server.post(f"/api/v1/signals/{signal}/{change}", json=body, headers=AUTH)
    assert response.status == 200, await response.text()


async def approved_open(
    container: Container, terminal_of: Any, platform: Platform, *, foreign: bool = False
) -> Terminal:
    """A terminal with EURUSD (and, if asked, trades not its own) and one approved open."""
    device, terminal = await terminal_of(platform)
    await configure(container, device, lot_size="0.10")
    terminal.market.set("EURUSD", "1.08500", "1.08512")
    if foreign:
        terminal.seed_foreign_trades("EURUSD")
    await approve(container, await publish(container, symbol="EURUSD"), OWNER)
    return terminal


@pytest.mark.parametrize("platform", [Platform.MT5, Platform.MT4])
async def test_open_modify_close_across_crashes(
    platform: Platform, container: Container, server: TestClient[Any, Any], terminal_of: Any
) -> None:
    device, terminal = await terminal_of(platform)
    await configure(container, device, symbol_suffix=".m", lot_size="0.10")
    terminal.market.set("EURUSD.m", "1.08500", "1.08512")
    foreign = terminal.seed_foreign_trades("EURUSD.m")
    outcome = await publish(
        container, symbol="EURUSD", stop_loss="1.08", take_profit=["1.095", "1.1"]
    )
    await approve(container, outcome, OWNER)
    signal = outcome.signal.public_id

    # Run 1: the terminal's clock is an hour behind; the EA learns the server's time from
    # the first answer. It acks, opens, and dies right after the trade call returns.
    run = await terminal.start(SB_CLOCK_SKEW="-3600", SB_CRASH_AFTER_TRADE="open")
    assert await run.wait() == 137, run.output
    # Whole seconds on both sides, read a moment apart: the offset is 3600 give or take one.
    assert re.search(r"the terminal's clock is (3599|3600|3601) s behind the server's", run.output)
    assert await has_records(container, ("open", "ack"))
    [position] = own(terminal.tickets())
    assert (position.type, position.volume, position.price, position.magic) == (
        0,
        0.1,
        1.08512,
        MAGIC,
    )
    assert (position.sl, position.tp) == (1.08, 1.095)
    [opened] = await stored_instructions(container)
    assert position.comment == f"sb:{opened.public_id}"

    # Run 2: it finds the position it opened (magic and comment), reports the fill once,
    # then follows the provider's modify and the first half of the close, and dies right
    # after that close's trade call.
    run = await terminal.start(SB_CRASH_AFTER_TRADE="close")
    await until(lambda: has_records(container, ("open", "ack"), ("open", "fill")), run)
    assert "the open was done before the EA stopped" in run.output
    [position] = own(terminal.tickets())
    records = await stored_records(container)
    fill = record_of(records, opened, "fill")
    assert (fill.ticket, fill.price, fill.volume) == (
        position.ticket,
        Decimal("1.08512"),
        Decimal("0.1"),
    )

    await provider(server, signal, "modify", {"stop_loss": "1.085"})
    await until(
        lambda: has_records(
            container, ("open", "ack"), ("open", "fill"), ("modify", "ack"), ("modify", "fill")
        ),
        run,
    )
    [position] = own(terminal.tickets())
    assert (position.sl, position.tp) == (1.085, 1.095)

    terminal.market.set("EURUSD.m", "1.09010", "1.09022")
    await provider(server, signal, "close", {"fraction": "0.5"})
    assert await run.wait() == 137, run.output
    [rest] = own(terminal.tickets())
    assert rest.volume == 0.05
    await settle(container)
    assert (await records_by_action(container))[-1] == ("close", "ack")

    # Run 3: it finds the close in the history and sends the fill; it dies as soon as the
    # server has stored it, before it can strike it from its journal.
    run = await terminal.start(SB_CRASH_AFTER_POST="/api/v1/exec/fill")
    assert await run.wait() == 137, run.output
    assert "the close was done before the EA stopped" in run.output

    # Run 4: the fill goes again; the server knows its report id (200, a duplicate).
    run = await terminal.start()
    await until(lambda: "accepted (duplicate of one already stored)" in run.output, run)
    await provider(server, signal, "close", {"fraction": "1"})
    await until(lambda: not own(terminal.tickets()), run)
    await until(
        lambda: has_records(
            container,
            ("open", "ack"),
            ("open", "fill"),
            ("modify", "ack"),
            ("modify", "fill"),
            ("close", "ack"),
            ("close", "fill"),
            ("close", "ack"),
            ("close", "fill"),
        ),
        run,
    )
    assert await run.stop() == 0, run.output

    # One position ever: opened once, closed in two parts, nothing else traded.
    opens = [
        t for t in terminal.tickets() if t.magic == MAGIC and not t.comment.startswith("from #")
    ]
    assert len(opens) == 1 and opens[0].state == 1
    # What is not its own stays as it was.
    assert [t for t in terminal.tickets() if t.magic != MAGIC] == foreign
    instructions = await stored_instructions(container)
    records = await stored_records(container)
    first_close, last_close = [i for i in instructions if i.action == "close"]
    half = record_of(records, first_close, "fill")
    assert (half.price, half.volume, half.profit) == (
        Decimal("1.0901"),
        Decimal("0.05"),
        Decimal("24.9"),
    )
    rest_fill = record_of(records, last_close, "fill")
    assert (rest_fill.volume, rest_fill.profit) == (Decimal("0.05"), Decimal("24.9"))
    assert all(r.report_id.startswith(("ack-", "fill-")) for r in records)
    assert "ERROR" not in terminal.output.replace("SignalBridge ERROR network", "")


@pytest.mark.parametrize("platform", [Platform.MT5, Platform.MT4])
async def test_refusals_trade_nothing_and_say_why(
    platform: Platform, container: Container, terminal_of: Any
) -> None:
    device, terminal = await terminal_of(platform)
    await configure(container, device, lot_size="0.10")
    terminal.market.set("EURUSD", "1.08500", "1.08512", open_=False)
    for symbol in ("XAUUSD", "EURUSD"):
        await approve(container, await publish(container, symbol=symbol), OWNER)

    run = await terminal.start()
    await until(lambda: has_records(container, *[("open", "ack"), ("open", "error")] * 2), run)
    codes = [r.code for r in await stored_records(container) if r.kind == "error"]
    assert codes == [90002, 90009]

    terminal.market.set("EURUSD", "1.08500", "1.08512")
    await run.stop()
    run = await terminal.start(SB_TRADE_ALLOWED="0")
    await approve(container, await publish(container, symbol="EURUSD"), OWNER)
    await until(lambda: has_records(container, *[("open", "ack"), ("open", "error")] * 3), run)
    await run.stop()

    # Issued 2.5 s before an EA that acts on nothing older than 1 s sees it (the EA
    # counts whole seconds, so a shorter wait could read as exactly 1 s).
    await approve(container, await publish(container, symbol="EURUSD"), OWNER)
    await asyncio.sleep(2.5)
    run = await terminal.start(SB_MAX_AGE="1")
    await until(lambda: has_records(container, *[("open", "ack"), ("open", "error")] * 4), run)
    await run.stop()

    records = [r for r in await stored_records(container) if r.kind == "error"]
    assert [r.code for r in records] == [90002, 90009, 90006, 90001]
    assert "XAUUSD" in str(records[0].message)
    assert "market closed" in str(records[1].message)
    assert "algo trading is off" in str(records[2].message) or "AutoTrading" in str(
        records[2].message
    )
    assert "MaxAgeSeconds" in str(records[3].message)
    assert terminal.tickets() == []


async def test_allow_list_error_names_the_menu_and_the_url(terminal_of: Any) -> None:
    _, terminal = await terminal_of(Platform.MT5)
    run = await terminal.start(SB_ALLOWED_URLS="https://elsewhere.example")
    origin = terminal.inputs["SB_SERVER_URL"]
    await until(lambda: "ALERT" in run.output, run)
    assert await run.stop() == 0
    [alert] = [line for line in run.output.splitlines() if line.startswith("ALERT")]
    assert "(error 4014)" in alert
    assert "Tools -> Options -> Expert Advisors" in alert
    assert '"Allow WebRequest for listed URL"' in alert
    assert f"add {origin} to the list" in alert


async def test_mt4_allow_list_error_is_4060(terminal_of: Any) -> None:
    _, terminal = await terminal_of(Platform.MT4)
    run = await terminal.start(SB_ALLOWED_URLS="https://elsewhere.example")
    await until(lambda: "ALERT" in run.output, run)
    await run.stop()
    assert "(error 4060)" in run.output


async def test_wrong_secret_is_told_once_and_refuses_to_start_on_bad_inputs(
    terminal_of: Any,
) -> None:
    _, terminal = await terminal_of(Platform.MT5)
    run = await terminal.start(SB_SECRET="x" * 43)
    await until(lambda: "invalid_signature" in run.output, run)
    await run.stop()
    alerts = [line for line in run.output.splitlines() if line.startswith("ALERT")]
    assert len(alerts) == 1 and "Check the Device ID and Secret" in alerts[0]

    run = await terminal.start(SB_DEVICE_ID="not-a-device")
    assert await run.wait() == 3
    assert "DeviceId must be the Device ID shown in the chat" in run.output


@pytest.mark.parametrize("platform", [Platform.MT5, Platform.MT4])
async def test_pending_order_fills_later_and_cancel_deletes_only_its_own(
    platform: Platform, container: Container, server: TestClient[Any, Any], terminal_of: Any
) -> None:
    device, terminal = await terminal_of(platform)
    await configure(container, device, lot_size="0.20")
    terminal.market.set("EURUSD", "1.08500", "1.08512")
    foreign = terminal.seed_foreign_trades("EURUSD")
    limit = await publish(
        container, order_type="limit", entry="1.08", stop_loss="1.07", take_profit=["1.1"]
    )
    await approve(container, limit, OWNER)
    stop = await publish(
        container, order_type="stop", entry="1.09", stop_loss="1.08", take_profit=["1.1"]
    )
    await approve(container, stop, OWNER)

    # Killed right after placing the first order: the restart finds it by its comment and
    # places only the second.
    run = await terminal.start(SB_CRASH_AFTER_TRADE="open")
    assert await run.wait() == 137, run.output
    assert len(own(terminal.tickets())) == 1
    run = await terminal.start()
    await until(lambda: len(own(terminal.tickets())) == 2, run)
    orders = sorted(own(terminal.tickets()), key=lambda t: t.type)
    assert [(t.type, t.price, t.volume) for t in orders] == [(2, 1.08, 0.2), (4, 1.09, 0.2)]

    # The market falls to the limit: it fills, and the EA reports the position it became.
    terminal.market.set("EURUSD", "1.07990", "1.08000")
    await until(
        lambda: has_records(container, ("open", "ack"), ("open", "ack"), ("open", "fill")), run
    )
    # The provider cancels the stop order: the EA deletes it, and only it.
    await provider(server, stop.signal.public_id, "cancel", {})
    await until(
        lambda: has_records(
            container,
            ("open", "ack"),
            ("open", "ack"),
            ("open", "fill"),
            ("cancel", "ack"),
            ("cancel", "fill"),
        ),
        run,
    )
    await run.stop()
    [position] = own(terminal.tickets())
    assert (position.type, position.price, position.volume) == (0, 1.08, 0.2)
    deleted = [t for t in terminal.tickets() if t.state == 2]
    assert [(t.type, t.magic) for t in deleted] == [(4, MAGIC)]
    assert [t for t in terminal.tickets() if t.magic != MAGIC] == foreign


async def test_one_device_runs_in_one_ea_at_a_time(terminal_of: Any) -> None:
    _, terminal = await terminal_of(Platform.MT5)
    first = await terminal.start()
    await until(lambda: "poll:" in first.output, first)
    second = EARun(terminal.binary, terminal.workdir, terminal.inputs)
    await second.start()
    assert await second.wait() == 3
    assert "already runs in another EA of this terminal" in second.output
    assert await first.stop() == 0


@pytest.mark.parametrize("platform", [Platform.MT5, Platform.MT4])
async def test_a_trade_the_terminal_never_shows_is_reported_not_retried(
    platform: Platform, container: Container, terminal_of: Any
) -> None:
    """Killed as the trade call starts: after the restart the EA looks for the trade, and
    when the terminal has none once the grace period is over it reports 90007 and stops."""
    terminal = await approved_open(container, terminal_of, platform)
    run = await terminal.start(SB_CRASH_BEFORE_TRADE="open")
    assert await run.wait() == 137, run.output
    assert await has_records(container, ("open", "ack"))

    run = await terminal.start()
    await until(lambda: has_records(container, ("open", "ack"), ("open", "error")), run)
    await asyncio.sleep(2)  # a few more polls: still nothing is traded
    assert await run.stop() == 0
    [error] = [r for r in await stored_records(container) if r.kind == "error"]
    assert error.code == 90007
    assert "stopped while opening" in str(error.message)
    assert "not tried again" in str(error.message)
    assert terminal.tickets() == []
    assert "1 trade call(s) to reconcile" in run.output


async def test_an_instruction_it_cannot_read_is_90008_and_no_trade(
    container: Container, terminal_of: Any
) -> None:
    _, terminal = await terminal_of(Platform.MT5)
    terminal.market.set("EURUSD", "1.08500", "1.08512")
    await approve(container, await publish(container, symbol="EURUSD"), OWNER)
    async with container.sessionmaker.begin() as session:
        await session.execute(update(Instruction).values(volume=None))  # served as "volume": null
    run = await terminal.start()
    await until(lambda: has_records(container, ("open", "error")), run)
    await run.stop()
    [error] = await stored_records(container)
    assert (error.code, error.message) == (
        90008,
        "the instruction cannot be read: volume is missing",
    )
    assert terminal.tickets() == []


async def test_an_unreachable_server_is_retried_with_growing_waits(terminal_of: Any) -> None:
    _, terminal = await terminal_of(Platform.MT5)
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    run = await terminal.start(SB_SERVER_URL=f"http://127.0.0.1:{port}")
    await until(lambda: "retrying in 4 s" in run.output, run, timeout=30)
    assert await run.stop() == 0
    assert "poll: no answer from http://127.0.0.1" in run.output
    waits = re.findall(r"retrying in (\d+) s", run.output)
    assert waits[:3] == ["1", "2", "4"]


@pytest.mark.parametrize("platform", [Platform.MT5, Platform.MT4])
async def test_nothing_is_traded_before_the_terminal_is_connected(
    platform: Platform, container: Container, terminal_of: Any
) -> None:
    terminal = await approved_open(container, terminal_of, platform)
    run = await terminal.start(SB_CONNECTED="0")
    await until(lambda: "waiting for the terminal to connect" in run.output, run)
    await asyncio.sleep(1.5)
    assert await run.stop() == 0
    assert await stored_records(container) == []
    assert terminal.tickets() == []

    run = await terminal.start()
    await until(lambda: has_records(container, ("open", "ack"), ("open", "fill")), run)
    assert await run.stop() == 0
    assert len(own(terminal.tickets())) == 1


@pytest.mark.parametrize("platform", [Platform.MT5, Platform.MT4])
async def test_an_open_whose_comment_the_broker_changed_is_still_found(
    platform: Platform, container: Container, terminal_of: Any
) -> None:
    terminal = await approved_open(container, terminal_of, platform, foreign=True)
    foreign = [t for t in terminal.tickets() if t.magic != MAGIC]
    run = await terminal.start(SB_BROKER_COMMENT="broker-note", SB_CRASH_AFTER_TRADE="open")
    assert await run.wait() == 137, run.output

    run = await terminal.start()
    await until(lambda: has_records(container, ("open", "ack"), ("open", "fill")), run)
    assert await run.stop() == 0
    assert (
        'found by magic number, symbol and volume (its comment is now "broker-note")' in run.output
    )
    [position] = own(terminal.tickets())
    [fill] = [r for r in await stored_records(container) if r.kind == "fill"]
    assert fill.ticket == position.ticket
    assert [t for t in terminal.tickets() if t.magic != MAGIC] == foreign


@pytest.mark.parametrize("platform", [Platform.MT5, Platform.MT4])
async def test_a_timeout_from_the_trade_server_is_looked_up_not_retried(
    platform: Platform, container: Container, terminal_of: Any
) -> None:
    """The order is made, but the answer is a timeout: the EA finds it in the terminal."""
    terminal = await approved_open(container, terminal_of, platform)
    run = await terminal.start(SB_TRADE_TIMEOUT="open")
    await until(lambda: has_records(container, ("open", "ack"), ("open", "fill")), run)
    assert await run.stop() == 0
    assert "did not say whether it was done" in run.output
    [position] = own(terminal.tickets())
    [fill] = [r for r in await stored_records(container) if r.kind == "fill"]
    assert (fill.ticket, fill.volume) == (position.ticket, Decimal("0.1"))


@pytest.mark.parametrize("platform", [Platform.MT5, Platform.MT4])
async def test_modify_and_cancel_interrupted_by_a_kill_are_finished_once(
    platform: Platform, container: Container, server: TestClient[Any, Any], terminal_of: Any
) -> None:
    device, terminal = await terminal_of(platform)
    await configure(container, device, lot_size="0.10")
    terminal.market.set("EURUSD", "1.08500", "1.08512")
    market = await publish(container, symbol="EURUSD")
    await approve(container, market, OWNER)
    limit = await publish(
        container, order_type="limit", entry="1.08", stop_loss="1.07", take_profit=["1.1"]
    )
    await approve(container, limit, OWNER)
    run = await terminal.start(SB_CRASH_AFTER_TRADE="modify")
    await until(lambda: len(own(terminal.tickets())) == 2, run)
    await provider(server, market.signal.public_id, "modify", {"stop_loss": "1.085"})
    assert await run.wait() == 137, run.output

    run = await terminal.start(SB_CRASH_AFTER_TRADE="delete")
    await until(lambda: has_record(container, ("modify", "fill")), run)
    await provider(server, limit.signal.public_id, "cancel", {})
    assert await run.wait() == 137, run.output

    run = await terminal.start()
    await until(lambda: has_record(container, ("cancel", "fill")), run)
    assert await run.stop() == 0
    [position] = own(terminal.tickets())
    assert position.sl == 1.085
    assert [(t.type, t.state) for t in terminal.tickets() if t.type == 2] == [(2, 2)]
    kinds = await records_by_action(container)
    opens = [("open", "ack"), ("open", "fill"), ("open", "ack")]
    changes = [("modify", "ack"), ("modify", "fill"), ("cancel", "ack"), ("cancel", "fill")]
    assert sorted(kinds) == sorted([*opens, *changes])


# --- protocol v1.1 --------------------------------------------------------------------------

STOP_MOVE = re.compile(r"(breakeven|trailing): stop loss of #(\d+) ([\d.]+) -> ([\d.]+)")


async def v11_started(
    container: Container, terminal: Terminal, device: DeviceDTO, **env: str
) -> EARun:
    """The EA running, its first state stored: the device speaks v1.1 from now on."""
    run = await terminal.start(**env)
    await until(lambda: stored_state(container, device.pk), run)
    return run


async def eurusd_terminal(
    container: Container, terminal_of: Any, platform: Platform, lot_size: str = "0.10"
) -> tuple[DeviceDTO, Terminal]:
    """A terminal with EURUSD at 1.08500 / 1.08512 and a device of lot_size lots."""
    device, terminal = await terminal_of(platform)
    await configure(container, device, lot_size=lot_size)
    terminal.market.set("EURUSD", "1.08500", "1.08512")
    return device, terminal


async def events_of(container: Container, event: str) -> list[PositionEvent]:
    await settle(container)
    return [e for e in await stored_events(container) if e.event == event]


async def fills_of(container: Container, instruction: str) -> dict[str, ExecutionRecord]:
    """The fills of one instruction by report id."""
    await settle(container)
    ids = {i.id for i in await stored_instructions(container) if i.public_id == instruction}
    return {
        r.report_id: r
        for r in await stored_records(container)
        if r.instruction_id in ids and r.kind == "fill"
    }


@pytest.mark.parametrize("platform", [Platform.MT5, Platform.MT4])
async def test_risk_sized_legs_take_profit_breakeven_and_a_trailing_stop(
    platform: Platform, container: Container, terminal_of: Any
) -> None:
    device, terminal = await terminal_of(platform)
    await set_device(
        container,
        device.pk,
        sizing_mode="risk_percent",
        risk_percent=Decimal("1"),
        tp_mode="split",
        tp_shares=["0.5", "0.3", "0.2"],
        breakeven_after_leg=0,
        breakeven_offset_points=10,
        trailing_distance_points=300,
        trailing_step_points=50,
        trailing_start="after_breakeven",
    )
    # A tick worth 0.5 of the account's currency (a quote currency other than the account's).
    terminal.market.set("EURUSD", "1.08500", "1.08512", tick=("0.00001", "0.5"))
    path = terminal.workdir / "path.txt"
    run = await v11_started(
        container, terminal, device, SB_PRICE_PATH=str(path), SB_POLL_WAIT="3", SB_RUN_SECONDS="300"
    )
    await until(lambda: "instructions?wait=3 -> 200" in run.output, run)
    state = await stored_state(container, device.pk)
    assert state is not None
    assert (state.protocol, state.platform, state.currency, state.balance) == (
        "1.1",
        platform.value,
        "USD",
        Decimal("10000"),
    )
    outcome = await publish(
        container, symbol="EURUSD", stop_loss="1.08012", take_profit=["1.09", "1.095", "1.1"]
    )
    await approve(container, outcome, OWNER)
    [opened] = await stored_instructions(container)

    # 1 % of 10000 at a stop loss 500 ticks away, 0.5 a tick: 100 / 250 = 0.4 lots, split
    # 0.5 / 0.3 / 0.2 into three positions, each with its own take profit.
    await until(lambda: len(own(terminal.tickets())) == 3, run)
    legs = sorted(own(terminal.tickets()), key=lambda t: t.ticket)
    assert [(t.volume, t.tp, t.sl) for t in legs] == [
        (0.2, 1.09, 1.08012),
        (0.12, 1.095, 1.08012),
        (0.08, 1.1, 1.08012),
    ]
    assert [t.comment for t in legs] == [f"sb{i}:{opened.public_id}" for i in range(3)]
    await until(lambda: _count(fills_of(container, opened.public_id), 3), run)
    fills = await fills_of(container, opened.public_id)
    assert sorted(fills) == [f"fill{i}-{opened.public_id}" for i in range(3)]
    assert [fills[f"fill{i}-{opened.public_id}"].ticket for i in range(3)] == [
        t.ticket for t in legs
    ]
    await until(lambda: _state_positions(container, device.pk, 3), run)
    # While trailing stops are to be managed, polls wait at most 1 s, not PollWaitSeconds.
    managed_from = len(run.output)
    await until(lambda: run.output.count("instructions?wait=", managed_from) >= 3, run)
    waits = re.findall(r"instructions\?wait=(\d+)", run.output[managed_from:])
    assert set(waits) <= {"0", "1"}, waits
    state = await stored_state(container, device.pk)
    assert state is not None
    assert sorted((p["leg"], p["ticket"], p["volume"]) for p in state.positions) == [
        (0, legs[0].ticket, "0.2"),
        (1, legs[1].ticket, "0.12"),
        (2, legs[2].ticket, "0.08"),
    ]
    assert {p["instruction_id"] for p in state.positions} == {opened.public_id}
    assert state.symbols == [
        {
            "name": "EURUSD",
            "tick_size": "0.00001",
            "tick_value": "0.5",
            "volume_min": "0.01",
            "volume_step": "0.01",
            "volume_max": "100",
        }
    ]

    # The market rises through the first take profit: the broker closes leg 0 there, the EA
    # reports it and moves the other legs to breakeven, then trails them; the dip does not
    # move them back, the last rise is less than a step.
    path.write_text(
        "EURUSD 1.08800 1.08812\n"
        "EURUSD 1.09010 1.09022\n"
        "EURUSD 1.09200 1.09212\n"
        "EURUSD 1.09100 1.09112\n"
        "EURUSD 1.09000 1.09012\n"
        "EURUSD 1.09400 1.09412\n"
        "EURUSD 1.09420 1.09432\n"
    )
    await until(lambda: run.output.count("1.08900000 -> 1.09100000") == 2, run, timeout=40)
    moves = STOP_MOVE.findall(run.output)
    for leg in legs[1:]:
        assert [
            (why, old, new) for why, ticket, old, new in moves if int(ticket) == leg.ticket
        ] == [
            ("breakeven", "1.08012000", "1.08522000"),
            ("trailing", "1.08522000", "1.08710000"),
            ("trailing", "1.08710000", "1.08900000"),
            ("trailing", "1.08900000", "1.09100000"),
        ]
    [tp] = await events_of(container, "closed")
    assert (tp.leg, tp.ticket, tp.reason, tp.price, tp.volume, tp.profit) == (
        0,
        legs[0].ticket,
        "tp",
        Decimal("1.09"),
        Decimal("0.2"),
        Decimal("48.8"),
    )
    # One sl_moved per position per 10 s, with the latest level: the first at once, then
    # the level the stop reached meanwhile.
    await until(lambda: _count(events_of(container, "sl_moved"), 4), run, timeout=45)
    moved = await events_of(container, "sl_moved")
    for leg in legs[1:]:
        mine = [e for e in moved if e.ticket == leg.ticket]
        assert [e.stop_loss for e in mine] == [Decimal("1.0871"), Decimal("1.091")]
        assert (mine[1].executed_at - mine[0].executed_at).total_seconds() >= 10
    assert [t.sl for t in sorted(own(terminal.tickets()), key=lambda t: t.ticket)] == [1.091, 1.091]

    # The market falls back: the trailing stop closes the other two legs at 1.091.
    terminal.market.set("EURUSD", "1.09050", "1.09062", tick=("0.00001", "0.5"))
    await until(lambda: _count(events_of(container, "closed"), 3), run)
    idle_from = len(run.output)
    await until(lambda: "instructions?wait=3 -> 200" in run.output[idle_from:], run)
    assert await run.stop() == 0, run.output
    closed = await events_of(container, "closed")
    assert [(e.leg, e.reason, e.price, e.volume, e.profit) for e in closed] == [
        (0, "tp", Decimal("1.09"), Decimal("0.2"), Decimal("48.8")),
        (1, "sl", Decimal("1.091"), Decimal("0.12"), Decimal("35.28")),
        (2, "sl", Decimal("1.091"), Decimal("0.08"), Decimal("23.52")),
    ]
    assert all(e.instruction_id == opened.id for e in closed)
    assert own(terminal.tickets()) == []
    assert "ALERT" not in run.output


async def _count(items: Any, expected: int) -> bool:
    return len(await items) >= expected


async def _state_positions(container: Container, device_pk: int, expected: int) -> bool:
    state = await stored_state(container, device_pk)
    return state is not None and len(state.positions) == expected


@pytest.mark.parametrize("platform", [Platform.MT5, Platform.MT4])
async def test_guards_refuse_and_close_all_closes_only_its_own(
    platform: Platform, container: Container, terminal_of: Any
) -> None:
    device, terminal = await terminal_of(platform)
    await set_device(container, device.pk, max_spread_points=30, max_distance_points=50)
    await configure(container, device, lot_size="0.10")
    terminal.market.set("EURUSD", "1.08500", "1.08560")  # a 60-point spread
    foreign = terminal.seed_foreign_trades("EURUSD")
    run = await v11_started(container, terminal, device)

    await approve(container, await publish(container, symbol="EURUSD"), OWNER)
    await until(lambda: has_records(container, ("open", "ack"), ("open", "error")), run)
    terminal.market.set("EURUSD", "1.08500", "1.08512")
    # The provider's price was 1.08000: the market is 512 points away from it.
    far = await publish(container, symbol="EURUSD", price="1.08000")
    near = await publish(container, symbol="EURUSD", price="1.08510")
    await approve(container, far, OWNER)
    await approve(container, near, OWNER)
    limit = await publish(
        container, order_type="limit", entry="1.08", stop_loss="1.07", take_profit=["1.1"]
    )
    await approve(container, limit, OWNER)
    await until(lambda: len(own(terminal.tickets())) == 2, run)
    await until(lambda: has_record(container, ("open", "fill")), run)
    errors = [r for r in await stored_records(container) if r.kind == "error"]
    assert [r.code for r in errors] == [90004, 90005]
    assert "spread of EURUSD is 60 points, above max_spread_points 30" in str(errors[0].message)
    assert "512 points from the provider's price 1.08" in str(errors[1].message)

    # The owner confirms Close all: the EA closes its position and deletes its pending
    # order, and leaves the account's other trades alone.
    async with container.sessionmaker.begin() as session:
        await issue_close_all(
            session,
            owner_id=OWNER,
            device_pk=device.pk,
            now=container.clock(),
            wake=container.device_hub.notify,
        )
    await until(lambda: not own(terminal.tickets()), run)
    await until(lambda: _count(events_of(container, "closed"), 1), run)
    assert await run.stop() == 0, run.output
    [closed] = await events_of(container, "closed")
    assert (closed.reason, closed.volume, closed.price) == (
        "close_all",
        Decimal("0.1"),
        Decimal("1.085"),
    )
    assert [t for t in terminal.tickets() if t.magic != MAGIC] == foreign
    mine = [t for t in terminal.tickets() if t.magic == MAGIC]
    assert sorted((t.type, t.state) for t in mine) == [(0, 1), (2, 2)]
    kinds = await records_by_action(container)
    assert ("close_all", "ack") in kinds


@pytest.mark.parametrize("platform", [Platform.MT5, Platform.MT4])
async def test_a_stop_loss_hit_while_the_ea_was_stopped_is_reported_exactly_once(
    platform: Platform, container: Container, terminal_of: Any
) -> None:
    device, terminal = await eurusd_terminal(container, terminal_of, platform)
    run = await v11_started(container, terminal, device)
    await approve(container, await publish(container, stop_loss="1.08", take_profit=["1.1"]), OWNER)
    await until(lambda: has_records(container, ("open", "ack"), ("open", "fill")), run)
    [position] = own(terminal.tickets())
    assert await run.stop() == 0

    # While the terminal is off the market falls through the stop loss: the broker closes
    # the position there. The EA finds it at its start and reports it; it is killed as soon
    # as the server has stored the event, before it can strike it from its journal.
    terminal.market.set("EURUSD", "1.07950", "1.07962")
    run = await terminal.start(SB_CRASH_AFTER_POST="/api/v1/exec/event")
    assert await run.wait() == 137, run.output
    assert own(terminal.tickets()) == []
    # Started again: the same event once more, a duplicate at the server; then nothing.
    run = await terminal.start()
    await until(lambda: "event closed-" in run.output and "duplicate" in run.output, run)
    await asyncio.sleep(1.5)
    assert await run.stop() == 0
    run = await terminal.start()
    await until(lambda: "poll: 0 instruction(s)" in run.output, run)
    assert await run.stop() == 0
    assert "event closed-" not in run.output
    [closed] = await events_of(container, "closed")
    assert (closed.ticket, closed.reason, closed.price, closed.volume, closed.profit) == (
        position.ticket,
        "sl",
        Decimal("1.08"),
        Decimal("0.1"),
        Decimal("-51.2"),
    )
    state = await stored_state(container, device.pk)
    assert state is not None and state.positions == []


@pytest.mark.parametrize("platform", [Platform.MT5, Platform.MT4])
async def test_legs_open_once_across_a_kill_and_are_modified_and_closed_per_leg(
    platform: Platform, container: Container, server: TestClient[Any, Any], terminal_of: Any
) -> None:
    device, terminal = await eurusd_terminal(container, terminal_of, platform, lot_size="0.40")
    await set_device(container, device.pk, tp_mode="split", tp_shares=["0.5", "0.25", "0.25"])
    run = await v11_started(container, terminal, device)
    assert await run.stop() == 0
    outcome = await publish(container, stop_loss="1.08", take_profit=["1.095", "1.1", "1.105"])
    await approve(container, outcome, OWNER)
    signal = outcome.signal.public_id
    [opened] = await stored_instructions(container)

    # Killed right after the first leg's trade call: the restart finds it by its comment
    # and opens only the other two.
    run = await terminal.start(SB_CRASH_AFTER_TRADE="open")
    assert await run.wait() == 137, run.output
    assert len(own(terminal.tickets())) == 1
    run = await terminal.start()
    await until(lambda: _count(fills_of(container, opened.public_id), 3), run)
    assert "the open was done before the EA stopped" in run.output
    legs = sorted(own(terminal.tickets()), key=lambda t: t.ticket)
    assert [(t.volume, t.tp) for t in legs] == [(0.2, 1.095), (0.1, 1.1), (0.1, 1.105)]

    # modify: the stop loss to every leg, take_profit[i] to leg i (leg 2 keeps its own).
    await provider(
        server, signal, "modify", {"stop_loss": "1.083", "take_profit": ["1.096", "1.101"]}
    )
    await until(lambda: has_record(container, ("modify", "fill")), run)
    legs = sorted(own(terminal.tickets()), key=lambda t: t.ticket)
    assert [(t.sl, t.tp) for t in legs] == [(1.083, 1.096), (1.083, 1.101), (1.083, 1.105)]

    # close half: half of each leg, each leg's part its own fill.
    terminal.market.set("EURUSD", "1.09000", "1.09012")
    await provider(server, signal, "close", {"fraction": "0.5"})
    first_close = await _instruction(container, "close")
    await until(lambda: _count(fills_of(container, first_close), 3), run)
    parts = await fills_of(container, first_close)
    assert {rid: r.volume for rid, r in parts.items()} == {
        f"fill0-{first_close}": Decimal("0.1"),
        f"fill1-{first_close}": Decimal("0.05"),
        f"fill2-{first_close}": Decimal("0.05"),
    }
    assert sum(t.volume for t in own(terminal.tickets())) == pytest.approx(0.2)
    await provider(server, signal, "close", {"fraction": "1"})
    await until(lambda: not own(terminal.tickets()), run)
    assert await run.stop() == 0, run.output
    # Every close was the server's: no closed events.
    assert await events_of(container, "closed") == []
    assert "ALERT" not in terminal.output


async def _instruction(container: Container, action: str) -> str:
    """The public id of the first instruction of action."""
    return next(i.public_id for i in await stored_instructions(container) if i.action == action)


@pytest.mark.parametrize("platform", [Platform.MT5, Platform.MT4])
async def test_closes_by_hand_and_by_stop_out_are_reported_with_their_reason(
    platform: Platform, container: Container, terminal_of: Any
) -> None:
    device, terminal = await eurusd_terminal(container, terminal_of, platform)
    path = terminal.workdir / "path.txt"
    run = await v11_started(container, terminal, device, SB_PRICE_PATH=str(path))
    for _ in range(2):
        await approve(container, await publish(container, stop_loss="1.08"), OWNER)
    await until(lambda: len(own(terminal.tickets())) == 2, run)
    manual, stopped = sorted(own(terminal.tickets()), key=lambda t: t.ticket)
    path.write_text(f"EURUSD 1.08600 1.08612\nclose {manual.ticket}\nstopout {stopped.ticket}\n")
    await until(lambda: _count(events_of(container, "closed"), 2), run)
    assert await run.stop() == 0, run.output
    closed = sorted(await events_of(container, "closed"), key=lambda e: e.ticket)
    assert [(e.ticket, e.reason, e.price, e.profit) for e in closed] == [
        (manual.ticket, "manual", Decimal("1.086"), Decimal("8.8")),
        (stopped.ticket, "stop_out", Decimal("1.086"), Decimal("8.8")),
    ]
    assert all(e.leg is None for e in closed)


@pytest.mark.parametrize("platform", [Platform.MT5, Platform.MT4])
async def test_a_risk_too_small_for_the_minimum_lot_opens_nothing(
    platform: Platform, container: Container, terminal_of: Any
) -> None:
    device, terminal = await eurusd_terminal(container, terminal_of, platform)
    # 2.00 USD at a stop loss 512 points away: 0.0039 lots, below the minimum 0.01.
    await set_device(container, device.pk, sizing_mode="risk_money", risk_money_minor=200)
    run = await v11_started(container, terminal, device)
    await approve(container, await publish(container, stop_loss="1.08"), OWNER)
    await until(lambda: has_records(container, ("open", "ack"), ("open", "error")), run)
    assert await run.stop() == 0
    [error] = [r for r in await stored_records(container) if r.kind == "error"]
    assert error.code == 90003
    assert "risk 2 USD at the stop loss 1.08 from 1.08512" in str(error.message)
    assert "below the symbol's minimum 0.01; not opened" in str(error.message)
    assert terminal.tickets() == []
