"""The agent against the real side server: a signal's whole life on paper, a crash between
the executor call and the report, a wrong secret and a wrong clock."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from agent_orders import euro
from aiohttp.test_utils import TestClient
from signalbridge_agent.agent import CredentialsRefused

from bot.container import Container
from bot.execution.wire import pending_instructions
from db.models import ExecutionRecord
from tests.agent_support import TEST_SETTINGS, run_device
from tests.conftest import FakeClock
from tests.devices_support import add_device
from tests.loop_support import approve, publish, settle, stored_instructions, stored_records
from tests.signals_support import AUTH

OWNER = 4101
QUICK = replace(TEST_SETTINGS, poll_wait=1)  # for tests that wait for whole polls


def kinds(records: list[ExecutionRecord]) -> list[str]:
    return [r.kind for r in records]


async def test_open_ack_fill_modify_close(
    server: TestClient[Any, Any], container: Container, clock: FakeClock, tmp_path: Path
) -> None:
    device, credentials = await add_device(container, OWNER)
    async with run_device(server, clock, credentials, tmp_path / "j.sqlite3", quotes=euro()) as ea:
        outcome = await publish(container)
        await approve(container, outcome, OWNER)
        await ea.until(lambda: ea.unsent() == 0 and len(ea.reports()) == 2)
        [(ack_kind, ack, _), (fill_kind, fill, state)] = ea.reports()
        [opened] = ea.received()
        assert (ack_kind, ack) == (
            "ack",
            {"report_id": f"{opened['id']}-ack", "instruction_id": opened["id"]},
        )
        assert fill_kind == "fill" and state == "accepted"
        assert {k: fill[k] for k in ("report_id", "ticket", "price", "volume")} == {
            "report_id": f"{opened['id']}-fill",
            "ticket": 5000001,
            "price": "1.08512",
            "volume": "0.01",
        }

        signal_id = outcome.signal.public_id
        ea.quotes.set("EURUSD", "1.09010", "1.09022")
        moved = await server.post(
            f"/api/v1/signals/{signal_id}/modify", json={"stop_loss": "1.085"}, headers=AUTH
        )
        assert moved.status == 200
        await ea.until(lambda: ea.unsent() == 0 and len(ea.reports()) == 4)
        closed = await server.post(
            f"/api/v1/signals/{signal_id}/close", json={"fraction": "1"}, headers=AUTH
        )
        assert closed.status == 200
        await ea.until(lambda: ea.unsent() == 0 and len(ea.reports()) == 6)
        modify, close = ea.received()[1:]
        assert (modify["action"], close["action"]) == ("modify", "close")
        _, done, _ = ea.reports()[3]
        assert done == {
            "report_id": f"{modify['id']}-done",
            "instruction_id": modify["id"],
            "ticket": 5000001,
            "message": "stop loss 1.085, take profit 1.095 set on ticket 5000001",
        }
        _, close_fill, _ = ea.reports()[5]
        # Closed at the bid: (1.09010 - 1.08512) × 0.01 lots × 100 000.
        assert {k: close_fill[k] for k in ("ticket", "price", "volume", "profit")} == {
            "ticket": 5000001,
            "price": "1.09010",
            "volume": "0.01",
            "profit": "4.98",
        }
        assert ea.journal.holdings() == []  # nothing of the signal is left open
    await settle(container)
    records = await stored_records(container)
    assert kinds(records) == ["ack", "fill", "ack", "ack", "ack", "fill"]
    assert records[-1].profit == Decimal("4.98")
    assert {i.state for i in await stored_instructions(container)} == {"acked", "filled"}
    assert device.pk == records[0].device_id


class Crash(BaseException):
    """Stands in for kill -9: nothing after it runs, nothing is written."""


async def test_killed_between_the_trade_and_the_report(
    server: TestClient[Any, Any], container: Container, clock: FakeClock, tmp_path: Path
) -> None:
    _, credentials = await add_device(container, OWNER)
    journal = tmp_path / "j.sqlite3"
    calls: list[str] = []

    def crash(instruction_id: str) -> None:
        calls.append(instruction_id)
        raise Crash

    async with run_device(
        server, clock, credentials, journal, quotes=euro(), after_execute=crash
    ) as ea:
        ea.expect_failure = True
        await approve(container, await publish(container), OWNER)
        with pytest.raises(Crash):
            await asyncio.wait_for(ea.task, 5)
        [opened] = ea.received()
        assert [r[0] for r in ea.reports()] == ["ack"]  # the fill was never written
    assert calls == [opened["id"]]
    # The server saw the ack at most; the instruction is no longer served.
    assert {r.kind for r in await stored_records(container)} <= {"ack"}

    async with run_device(
        server, clock, credentials, journal, quotes=euro(), settings=QUICK
    ) as again:
        await again.until(
            lambda: again.unsent() == 0 and any(k == "fill" for k, _, _ in again.reports())
        )
        await again.cycles()
        assert len(again.received()) == 1
        fills = [body for kind, body, _ in again.reports() if kind == "fill"]
        assert [f["ticket"] for f in fills] == [5000001]
    await settle(container)
    records = await stored_records(container)
    assert kinds(records) == ["ack", "fill"]
    assert [i.state for i in await stored_instructions(container)] == ["filled"]
    # One position in the paper book: the trade was not repeated.
    with sqlite3.connect(journal) as db:
        assert db.execute("SELECT COUNT(*) FROM paper_book").fetchone() == (1,)


async def test_wrong_secret_stops_with_the_contracts_error(
    server: TestClient[Any, Any], container: Container, clock: FakeClock, tmp_path: Path
) -> None:
    _, credentials = await add_device(container, OWNER)
    async with run_device(
        server, clock, credentials, tmp_path / "j.sqlite3", secret="W" * 43
    ) as ea:
        ea.expect_failure = True
        with pytest.raises(CredentialsRefused) as refused:
            await asyncio.wait_for(ea.task, 5)
    assert refused.value.error.status == 401
    assert refused.value.error.code == "invalid_signature"


async def test_clock_off_by_an_hour_signs_with_the_servers_time(
    server: TestClient[Any, Any], container: Container, clock: FakeClock, tmp_path: Path
) -> None:
    _, credentials = await add_device(container, OWNER)
    slow = lambda: clock.now.timestamp() - 3600  # noqa: E731
    async with run_device(
        server, clock, credentials, tmp_path / "j.sqlite3", quotes=euro(), wall_clock=slow
    ) as ea:
        await ea.until(lambda: ea.agent.clock.observed)
        assert 3599 <= ea.agent.clock.offset <= 3601
        await approve(container, await publish(container), OWNER)
        await ea.until(lambda: ea.unsent() == 0 and len(ea.reports()) == 2)
    assert kinds(await stored_records(container)) == ["ack", "fill"]


async def test_instruction_older_than_the_agents_max_age_is_error_90001_and_no_trade(
    server: TestClient[Any, Any], container: Container, clock: FakeClock, tmp_path: Path
) -> None:
    _, credentials = await add_device(container, OWNER)
    await approve(container, await publish(container), OWNER)
    [instruction] = await stored_instructions(container)
    # Still served (the device's max age on the server is 5 minutes), but the agent
    # accepts nothing older than 10 s.
    clock.advance(seconds=30)
    strict = replace(TEST_SETTINGS, max_age=timedelta(seconds=10))
    async with run_device(
        server, clock, credentials, tmp_path / "j.sqlite3", quotes=euro(), settings=strict
    ) as ea:
        await ea.until(lambda: ea.unsent() == 0 and len(ea.reports()) == 2)
        (_, ack, _), (kind, error, _) = ea.reports()
        assert kind == "error" and error["code"] == 90001
        assert "older than the 10 s" in error["message"]
        assert ack["report_id"] == f"{instruction.public_id}-ack"
    assert [r.code for r in await stored_records(container)] == [None, 90001]
    assert [i.state for i in await stored_instructions(container)] == ["errored"]
    with sqlite3.connect(tmp_path / "j.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM paper_book").fetchone() == (0,)


async def test_server_errors_back_off_and_retry_until_accepted(
    server: TestClient[Any, Any],
    container: Container,
    clock: FakeClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, credentials = await add_device(container, OWNER)
    await approve(container, await publish(container), OWNER)
    failures = {"polls": 2, "reports": 3}
    real_record = container.reports.record

    async def flaky_pending(*args: Any) -> Any:
        if failures["polls"]:
            failures["polls"] -= 1
            raise OSError("database restarting")
        return await pending_instructions(*args)

    async def flaky_record(*args: Any) -> Any:
        if failures["reports"]:
            failures["reports"] -= 1
            raise OSError("database restarting")
        return await real_record(*args)

    monkeypatch.setattr("bot.web.ea.pending_instructions", flaky_pending)
    monkeypatch.setattr(container.reports, "record", flaky_record)
    async with run_device(server, clock, credentials, tmp_path / "j.sqlite3", quotes=euro()) as ea:
        await ea.until(lambda: ea.unsent() == 0 and len(ea.reports()) == 2)
        assert [state for _, _, state in ea.reports()] == ["accepted", "accepted"]
    assert failures == {"polls": 0, "reports": 0}
    assert kinds(await stored_records(container)) == ["ack", "fill"]


async def test_a_report_resent_after_a_lost_answer_is_a_duplicate(
    server: TestClient[Any, Any], container: Container, clock: FakeClock, tmp_path: Path
) -> None:
    _, credentials = await add_device(container, OWNER)
    journal = tmp_path / "j.sqlite3"
    await approve(container, await publish(container), OWNER)
    async with run_device(server, clock, credentials, journal, quotes=euro()) as ea:
        await ea.until(lambda: ea.unsent() == 0 and len(ea.reports()) == 2)
        assert ea.answers() == ["201", "201"]
    stored = [(r.public_id, r.kind) for r in await stored_records(container)]
    # The server stored both, but the answers never reached the journal (a crash, a
    # dropped connection): as far as the agent knows, they are still to be sent.
    with sqlite3.connect(journal) as db:
        db.execute("UPDATE outbox SET state = 'queued', record_id = NULL, answer = NULL")
    async with run_device(server, clock, credentials, journal, quotes=euro()) as again:
        await again.until(lambda: again.unsent() == 0)
        assert again.answers() == ["200 duplicate", "200 duplicate"]
        assert [r.record_id for r in again.journal.reports()] == [pk for pk, _ in stored]
    assert [(r.public_id, r.kind) for r in await stored_records(container)] == stored


async def test_while_its_reports_fail_the_agent_does_not_poll_in_a_tight_loop(
    server: TestClient[Any, Any],
    container: Container,
    clock: FakeClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The open stays pending (its ack is not stored), so every poll lists it again at
    once; the agent waits for its reports (with growing pauses) instead of re-polling."""
    _, credentials = await add_device(container, OWNER)
    await approve(container, await publish(container), OWNER)
    polls = 0

    async def counted(*args: Any) -> Any:
        nonlocal polls
        polls += 1
        return await pending_instructions(*args)

    async def failing(*_args: Any) -> Any:
        raise OSError("database restarting")

    monkeypatch.setattr("bot.web.ea.pending_instructions", counted)
    monkeypatch.setattr(container.reports, "record", failing)
    async with run_device(server, clock, credentials, tmp_path / "j.sqlite3", quotes=euro()) as ea:
        await ea.until(lambda: len(ea.reports()) == 2)
        await asyncio.sleep(1.5)
        assert ea.unsent() == 2
        assert len(ea.received()) == 1
    # Pauses of 0.02, 0.04, ... up to 0.2 s (the tests' backoff): about ten in 1.5 s.
    assert 2 <= polls <= 20
