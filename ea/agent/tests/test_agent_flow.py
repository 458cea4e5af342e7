"""The agent's handling of instructions without a server: journaling, execution on paper,
the reports it queues, and recovery from a crash at each point of an execution."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from agent_orders import Crash, followup, open_
from signalbridge_agent.agent import Agent, AgentSettings
from signalbridge_agent.client import Credentials
from signalbridge_agent.journal import Journal, Stage
from signalbridge_agent.paper import PaperExecutor, QuoteTable
from signalbridge_agent.trading import Holding

DEVICE = "dev_" + "F" * 20
NOW = datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC)


class Rig:
    """An agent over a journal file and a paper book; ``restart`` is a new process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.quotes = QuoteTable()
        self.quotes.set("EURUSD", "1.08500", "1.08512")
        self.crash_on: set[str] = set()
        self.agent = self._agent()

    def _agent(self) -> Agent:
        self.journal = Journal(self.path, DEVICE)
        self.paper = PaperExecutor(self.path, self.quotes, clock=lambda: NOW)
        self.paper.start()

        def after(instruction_id: str) -> None:
            if instruction_id in self.crash_on:
                raise Crash

        return Agent(
            Credentials("http://127.0.0.1:9", DEVICE, "s" * 43),
            self.paper,
            self.journal,
            settings=AgentSettings(poll_wait=0),
            wall_clock=NOW.timestamp,
            after_execute=after,
        )

    def restart(self) -> Agent:
        self.journal.close()
        self.paper.stop()
        self.crash_on = set()
        self.agent = self._agent()
        return self.agent

    def reports(self) -> list[tuple[str, dict[str, Any]]]:
        return [(r.kind, r.body) for r in self.journal.reports()]

    def book(self) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.path) as db:
            return db.execute(
                "SELECT ticket, kind, volume, state FROM paper_book ORDER BY ticket"
            ).fetchall()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    made = Rig(tmp_path / "journal.sqlite3")
    yield made
    made.journal.close()
    made.paper.stop()


async def test_market_open_is_acked_then_filled(rig: Rig) -> None:
    await rig.agent.process(open_())
    assert rig.reports() == [
        ("ack", {"report_id": "ins_open0001-ack", "instruction_id": "ins_open0001"}),
        (
            "fill",
            {
                "report_id": "ins_open0001-fill",
                "instruction_id": "ins_open0001",
                "ticket": 5000001,
                "price": "1.08512",
                "volume": "0.10",
                "executed_at": "2026-01-01T00:00:30Z",
            },
        ),
    ]
    assert rig.book() == [(5000001, "position", "0.10", "open")]


async def test_an_instruction_listed_again_is_not_taken_again(rig: Rig) -> None:
    await rig.agent.process(open_())
    await rig.agent.process(open_())
    assert len(rig.reports()) == 2
    assert len(rig.book()) == 1


@pytest.mark.parametrize(
    "raw",
    [
        open_(volume=0.1),
        open_(side="long"),
        open_(order_type="limit"),
        {"id": "ins_open0001", "action": "close_every", "issued_at": "2026-01-01T00:00:00Z"},
    ],
)
async def test_unreadable_instruction_is_error_90008_and_no_trade(
    rig: Rig, raw: dict[str, Any]
) -> None:
    await rig.agent.process(raw)
    [(kind, body)] = rig.reports()
    assert kind == "error" and body["code"] == 90008
    assert body["report_id"] == "ins_open0001-error"
    assert body["message"].startswith("unreadable instruction: ")
    assert rig.book() == []
    entry = rig.journal.entry("ins_open0001")
    assert entry is not None and entry.stage is Stage.DONE and entry.raw == raw


async def test_instruction_without_an_id_is_skipped(rig: Rig) -> None:
    await rig.agent.process(open_(id=None))
    assert rig.reports() == [] and rig.journal.entries() == [] and rig.book() == []


@pytest.mark.parametrize(
    ("changes", "code", "words"),
    [
        ({"expires_at": "2026-01-01T00:00:30Z"}, 90001, "expired at"),
        ({"issued_at": "2025-12-31T23:40:00Z"}, 90001, "older than the 900 s"),
        ({"symbol": "GBPUSD"}, 90002, "no quote for GBPUSD"),
        ({"volume": "0.004"}, 90003, "below EURUSD's minimum 0.01"),
    ],
)
async def test_refused_before_any_trade(
    rig: Rig, changes: dict[str, Any], code: int, words: str
) -> None:
    await rig.agent.process(open_(**changes))
    (_, ack), (kind, error) = rig.reports()
    assert ack["report_id"] == "ins_open0001-ack"
    assert (kind, error["code"]) == ("error", code)
    assert words in error["message"]
    assert rig.book() == []


async def test_pending_order_is_placed_then_filled_when_the_price_comes(rig: Rig) -> None:
    await rig.agent.process(open_(order_type="limit", entry="1.08"))
    assert rig.reports()[1] == (
        "ack",
        {
            "report_id": "ins_open0001-placed",
            "instruction_id": "ins_open0001",
            "ticket": 5000001,
            "message": "buy limit 0.10 EURUSD @ 1.08 placed",
        },
    )
    await rig.agent.watch_orders()
    assert len(rig.reports()) == 2
    rig.quotes.set("EURUSD", "1.07990", "1.07998")
    await rig.agent.watch_orders()
    kind, fill = rig.reports()[2]
    assert (kind, fill["report_id"], fill["price"], fill["ticket"]) == (
        "fill",
        "ins_open0001-fill",
        "1.08",
        5000001,
    )
    await rig.agent.watch_orders()
    assert len(rig.reports()) == 3


async def test_modify_close_cancel_act_on_the_signals_own_tickets(rig: Rig) -> None:
    await rig.agent.process(open_())
    await rig.agent.process(followup("modify", "ins_modify01", stop_loss="1.085", take_profit=[]))
    assert rig.reports()[3] == (
        "ack",
        {
            "report_id": "ins_modify01-done",
            "instruction_id": "ins_modify01",
            "ticket": 5000001,
            "message": "stop loss 1.085, take profit none set on ticket 5000001",
        },
    )
    position = rig.paper.holding(5000001)
    assert position is not None and (str(position.stop_loss), position.take_profit) == (
        "1.085",
        None,
    )
    await rig.agent.process(followup("cancel", "ins_cancel01"))
    kind, error = rig.reports()[5]
    assert (kind, error["code"]) == ("error", 90007)
    assert "it was filled, ticket 5000001 stays open" in error["message"]
    rig.quotes.set("EURUSD", "1.09010", "1.09022")
    await rig.agent.process(followup("close", "ins_close001", fraction="0.5"))
    kind, fill = rig.reports()[7]
    assert kind == "fill" and (fill["volume"], fill["price"], fill["profit"]) == (
        "0.05",
        "1.09010",
        "24.90",
    )
    await rig.agent.process(followup("close", "ins_close002", fraction="0.3"))
    # 0.3 of the 0.05 left rounds to 0.01, leaving 0.04.
    assert rig.reports()[9][1]["volume"] == "0.01"
    await rig.agent.process(followup("close", "ins_close003", fraction="1"))
    assert rig.reports()[11][1]["volume"] == "0.04"
    assert rig.book() == [(5000001, "position", "0.00", "closed")]
    await rig.agent.process(followup("close", "ins_close004", fraction="1"))
    assert rig.reports()[13][1]["code"] == 90007


async def test_close_of_an_unfilled_pending_order_deletes_it(rig: Rig) -> None:
    await rig.agent.process(open_(order_type="stop", entry="1.09"))
    await rig.agent.process(followup("close", "ins_close001", fraction="0.5"))
    assert rig.reports()[3][1]["code"] == 90007  # nothing filled to take a part of
    await rig.agent.process(followup("close", "ins_close002", fraction="1"))
    assert rig.reports()[5] == (
        "ack",
        {
            "report_id": "ins_close002-done",
            "instruction_id": "ins_close002",
            "ticket": 5000001,
            "message": "nothing was filled: ticket 5000001",
        },
    )
    assert rig.book() == [(5000001, "order", "0.10", "deleted")]


# --- recovery ---


async def test_crash_after_the_open_reports_it_once_after_the_restart(rig: Rig) -> None:
    rig.crash_on = {"ins_open0001"}
    with pytest.raises(Crash):
        await rig.agent.process(open_())
    assert [kind for kind, _ in rig.reports()] == ["ack"]
    [entry] = rig.journal.unfinished()
    assert entry.stage is Stage.EXECUTING and entry.plan == {
        "tag": "sb:ins_open0001",
        "volume": "0.10",
    }
    agent = rig.restart()
    await agent.recover()
    assert [kind for kind, _ in rig.reports()] == ["ack", "fill"]
    assert rig.reports()[1][1]["ticket"] == 5000001
    assert rig.book() == [(5000001, "position", "0.10", "open")]
    assert rig.journal.unfinished() == []
    await agent.recover()  # a second restart changes nothing
    assert len(rig.reports()) == 2 and len(rig.book()) == 1


async def test_crash_before_the_executor_was_reached_executes_once_after_the_restart(
    rig: Rig,
) -> None:
    rig.journal.receive("ins_open0001", open_(), signal_id="sig_1", action="open", reports=[])
    rig.journal.start("ins_open0001", {"tag": "sb:ins_open0001", "volume": "0.10"})
    agent = rig.restart()
    await agent.recover()
    assert [kind for kind, _ in rig.reports()] == ["fill"]
    assert len(rig.book()) == 1


async def test_journaled_but_not_executed_is_checked_again_after_the_restart(rig: Rig) -> None:
    late = open_(expires_at="2026-01-01T00:00:10Z")
    rig.journal.receive("ins_open0001", late, signal_id="sig_1", action="open", reports=[])
    await rig.restart().recover()
    [(kind, error)] = rig.reports()
    assert (kind, error["code"]) == ("error", 90001)
    assert rig.book() == []


async def test_crash_after_a_partial_close_does_not_close_again(rig: Rig) -> None:
    await rig.agent.process(open_())
    rig.quotes.set("EURUSD", "1.09010", "1.09022")
    rig.crash_on = {"ins_close001"}
    with pytest.raises(Crash):
        await rig.agent.process(followup("close", "ins_close001", fraction="0.5"))
    assert rig.book() == [(5000001, "position", "0.05", "open")]
    await rig.restart().recover()
    kind, fill = rig.reports()[-1]
    assert (kind, fill["volume"], fill["profit"]) == ("fill", "0.05", "24.90")
    assert rig.book() == [(5000001, "position", "0.05", "open")]  # not 0.025
    [owned] = rig.journal.holdings("sig_1")
    assert str(owned.volume) == "0.05"


async def test_crash_after_a_modify_finishes_without_sending_it_again(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    await rig.agent.process(open_())
    rig.crash_on = {"ins_modify01"}
    with pytest.raises(Crash):
        await rig.agent.process(
            followup("modify", "ins_modify01", stop_loss="1.085", take_profit=["1.1"])
        )
    agent = rig.restart()
    calls: list[int] = []
    original = rig.paper.modify

    def counted(holding: Holding, stop_loss: Decimal | None, take_profit: Decimal | None) -> None:
        calls.append(holding.ticket)
        original(holding, stop_loss, take_profit)

    monkeypatch.setattr(rig.paper, "modify", counted)
    await agent.recover()
    assert calls == []
    assert rig.reports()[-1][1]["report_id"] == "ins_modify01-done"


async def test_crash_after_a_cancel_reports_it_done(rig: Rig) -> None:
    await rig.agent.process(open_(order_type="limit", entry="1.07"))
    rig.crash_on = {"ins_cancel01"}
    with pytest.raises(Crash):
        await rig.agent.process(followup("cancel", "ins_cancel01"))
    await rig.restart().recover()
    assert rig.reports()[-1] == (
        "ack",
        {
            "report_id": "ins_cancel01-done",
            "instruction_id": "ins_cancel01",
            "ticket": 5000001,
            "message": "pending order deleted: ticket 5000001",
        },
    )
    assert rig.book() == [(5000001, "order", "0.10", "deleted")]
