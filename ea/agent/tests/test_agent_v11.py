"""Protocol v1.1 in the agent, on paper and without a server: sizing from the account and
the symbol, legs, guards, breakeven and trailing between polls, position events (once,
also across a restart), close_all, and the device state with the server's poll_wait."""

from __future__ import annotations

import asyncio
import itertools
import json
import sqlite3
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from agent_orders import Crash, euro, followup, open_
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import given, settings
from hypothesis import strategies as st
from signalbridge_agent.agent import Agent, AgentSettings, CredentialsRefused
from signalbridge_agent.client import Credentials
from signalbridge_agent.journal import Journal, Managed, Stage
from signalbridge_agent.paper import PaperAccount, PaperExecutor, PaperSymbol, PricePath, QuoteTable
from signalbridge_agent.protocol import OrderType, Side, parse_instruction
from signalbridge_agent.trading import OpenOrder, SymbolSpec

DEVICE = "dev_" + "V" * 20
START = datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC)
D = Decimal
SIZED = {"mode": "fixed", "lots": "0.10"}
THREE_LEGS = [
    {"take_profit": "1.09000", "share": "0.5"},
    {"take_profit": "1.09500", "share": "0.3"},
    {"take_profit": "1.10000", "share": "0.2"},
]
TWO_LEGS = [{"take_profit": "1.09000", "share": "0.5"}, {"take_profit": "1.09500", "share": "0.5"}]


def open11(instruction_id: str = "ins_v11open01", **changes: Any) -> dict[str, Any]:
    """A v1.1 open: a market buy of EURUSD, stop loss 1.08012, fixed 0.10 lots."""
    v11: dict[str, Any] = {
        "stop_loss": "1.08012",
        "take_profit": ["1.09000", "1.09500", "1.10000"],
        "sizing": SIZED,
    }
    return open_(instruction_id, **{**v11, **changes})


def close_all(instruction_id: str = "ins_closeall1") -> dict[str, Any]:
    return {"id": instruction_id, "action": "close_all", "issued_at": "2026-01-01T00:00:25Z"}


class Rig:
    """An agent over a journal and a paper book, with a clock the test moves."""

    def __init__(self, path: Path, prices: QuoteTable, **paper: Any) -> None:
        self.path = path
        self.prices = prices
        self.paper_options = paper
        self.now = START
        self.crash_on: set[str] = set()
        self.crash_at_call: int | None = None  # crash after this many executor calls
        self.calls = 0
        self.settings = AgentSettings(poll_wait=20, manage_wait=2)
        self.agent = self._agent()

    def _agent(self) -> Agent:
        self.journal = Journal(self.path, DEVICE)
        self.paper = PaperExecutor(
            self.path, self.prices, clock=lambda: self.now, **self.paper_options
        )
        self.paper.start()

        def after(instruction_id: str) -> None:
            self.calls += 1
            if instruction_id in self.crash_on or self.calls == self.crash_at_call:
                raise Crash

        return Agent(
            Credentials("http://127.0.0.1:9", DEVICE, "s" * 43),
            self.paper,
            self.journal,
            settings=self.settings,
            wall_clock=lambda: self.now.timestamp(),
            after_execute=after,
        )

    def restart(self) -> Agent:
        self.journal.close()
        self.paper.stop()
        self.crash_on = set()
        self.crash_at_call = None
        self.agent = self._agent()
        return self.agent

    def later(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def reports(self) -> list[tuple[str, dict[str, Any]]]:
        return [(r.kind, r.body) for r in self.journal.reports()]

    def events(self) -> list[dict[str, Any]]:
        return [body for kind, body in self.reports() if kind == "event"]

    def book(self) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.path) as db:
            return db.execute(
                "SELECT ticket, kind, volume, stop_loss, take_profit, tag, state "
                "FROM paper_book ORDER BY ticket"
            ).fetchall()

    def stop_loss(self, ticket: int) -> Decimal | None:
        held = self.paper.holding(ticket)
        assert held is not None
        return held.stop_loss


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    made = Rig(tmp_path / "journal.sqlite3", euro())
    yield made
    made.journal.close()
    made.paper.stop()


def path_rig(tmp_path: Path, bids: list[str]) -> Rig:
    """A rig whose EURUSD plays ``bids`` (spread 12 points), the first tick current."""
    return Rig(tmp_path / "journal.sqlite3", PricePath.with_spread("EURUSD", bids, "0.00012"))


# --- reading the v1.1 fields ---


def test_an_open_without_the_v11_fields_reads_as_in_v1() -> None:
    raw = open11()
    del raw["sizing"]
    opened = parse_instruction(raw)
    assert not opened.v11  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"sizing": {"mode": "martingale"}}, "sizing.mode must be one of"),
        ({"sizing": {"mode": "risk_percent", "of": "balance"}}, "percent is missing"),
        ({"sizing": {"mode": "risk_percent", "percent": 1}}, "percent must be a positive"),
        ({"sizing": {"mode": "risk_percent", "percent": "1", "of": "margin"}}, "sizing.of"),
        ({"sizing": {"mode": "risk_money"}}, "amount is missing"),
        ({"legs": []}, "legs must be a non-empty list"),
        ({"legs": [{"take_profit": "1.1"}]}, "share is missing"),
        ({"legs": [{"take_profit": "1.1", "share": "1.5"}]}, "legs.share must be at most 1"),
        ({"management": {"trailing": {"distance_points": 0}}}, "distance_points"),
        ({"management": {"trailing": {"distance_points": 5, "start": "later"}}}, "start"),
        ({"management": {"breakeven": {"offset_points": 5}}}, "after_leg is missing"),
        ({"management": {"breakeven": {"after_leg": "0"}}}, "after_leg must be a whole"),
        ({"guards": {"max_spread_points": -1}}, "max_spread_points"),
        ({"guards": {"reference_price": 1.0852}}, "reference_price"),
        ({"guards": "tight"}, "guards must be an object"),
    ],
)
async def test_a_malformed_v11_field_is_90008_and_no_trade(
    rig: Rig, change: dict[str, Any], problem: str
) -> None:
    await rig.agent.process(open11(**change))
    [(kind, error)] = rig.reports()
    assert (kind, error["code"]) == ("error", 90008)
    assert problem in error["message"]
    assert rig.book() == []


# --- sizing ---


async def test_one_percent_of_the_balance_is_sized_from_the_symbol(rig: Rig) -> None:
    # 1% of 10000 = 100 USD; |1.08512 − 1.08012| = 500 ticks × 1.00 = 500 USD a lot → 0.20
    sizing = {"mode": "risk_percent", "percent": "1.0", "of": "balance", "max_lots": "2.00"}
    await rig.agent.process(open11(sizing=sizing, volume="0.05"))
    (_, ack), (kind, fill) = rig.reports()
    assert ack["report_id"] == "ins_v11open01-ack"
    assert kind == "fill" and (fill["volume"], fill["leg"], fill["price"]) == ("0.20", 0, "1.08512")
    assert [row[2] for row in rig.book()] == ["0.20"]


async def test_risk_money_with_a_tick_value_other_than_one(tmp_path: Path) -> None:
    quotes = QuoteTable()
    quotes.set("USDJPY", "150.490", "150.500")
    yen = PaperSymbol(
        SymbolSpec(D("0.01"), D("0.01"), D("50")),
        D("100000"),
        tick_size=D("0.001"),
        tick_value=D("0.67"),
    )
    rig = Rig(tmp_path / "j.sqlite3", quotes, symbols={"USDJPY": yen})
    try:
        # 50 USD; 0.500 / 0.001 × 0.67 = 335 USD a lot → 0.149 → 0.14
        await rig.agent.process(
            open11(
                symbol="USDJPY",
                stop_loss="150.000",
                take_profit=[],
                sizing={"mode": "risk_money", "amount": "50.00"},
            )
        )
        assert rig.reports()[1][1]["volume"] == "0.14"
    finally:
        rig.journal.close()
        rig.paper.stop()


async def test_sized_of_equity_and_capped(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "j.sqlite3", euro(), account=PaperAccount(balance=D("50000")))
    try:
        # 5% of 50000 = 2500 → 5.00 lots, capped at max_lots 1.5
        sizing = {"mode": "risk_percent", "percent": "5", "of": "equity", "max_lots": "1.5"}
        await rig.agent.process(open11(sizing=sizing))
        assert rig.reports()[1][1]["volume"] == "1.50"
    finally:
        rig.journal.close()
        rig.paper.stop()


async def test_a_size_below_the_minimum_is_90003_and_no_trade(rig: Rig) -> None:
    await rig.agent.process(open11(sizing={"mode": "risk_money", "amount": "1.00"}))
    (_, _), (kind, error) = rig.reports()
    assert (kind, error["code"]) == ("error", 90003)
    assert "below EURUSD's minimum 0.01; no trade" in error["message"]
    assert rig.book() == []


async def test_a_pending_order_is_sized_from_its_entry(rig: Rig) -> None:
    # entry 1.08000, stop 1.07500: 500 ticks → 100 / 500 = 0.20 lots
    sizing = {"mode": "risk_percent", "percent": "1", "of": "balance"}
    await rig.agent.process(
        open11(order_type="limit", entry="1.08000", stop_loss="1.07500", sizing=sizing)
    )
    assert rig.reports()[1][1]["message"] == "buy limit 0.20 EURUSD @ 1.08000 placed"


# --- legs ---


async def test_three_take_profits_open_three_legs(rig: Rig) -> None:
    await rig.agent.process(open11(legs=THREE_LEGS))
    fills = [body for kind, body in rig.reports() if kind == "fill"]
    assert [(f["report_id"], f["leg"], f["volume"]) for f in fills] == [
        ("ins_v11open01-fill", 0, "0.05"),
        ("ins_v11open01-fill-1", 1, "0.03"),
        ("ins_v11open01-fill-2", 2, "0.02"),
    ]
    assert [(row[2], row[3], row[4], row[5]) for row in rig.book()] == [
        ("0.05", "1.08012", "1.09000", "sb:ins_v11open01"),
        ("0.03", "1.08012", "1.09500", "sb:ins_v11open01:1"),
        ("0.02", "1.08012", "1.10000", "sb:ins_v11open01:2"),
    ]
    entry = rig.journal.entry("ins_v11open01")
    assert entry is not None and entry.stage is Stage.DONE


async def test_legs_the_volume_cannot_give_the_minimum_are_dropped(rig: Rig) -> None:
    await rig.agent.process(open11(legs=THREE_LEGS, sizing={"mode": "fixed", "lots": "0.04"}))
    fills = [body for kind, body in rig.reports() if kind == "fill"]
    assert [(f["leg"], f["volume"]) for f in fills] == [(0, "0.03"), (1, "0.01")]


async def test_without_legs_one_position_takes_the_first_target(rig: Rig) -> None:
    await rig.agent.process(open11())
    assert [(row[2], row[4]) for row in rig.book()] == [("0.10", "1.09000")]


async def test_modify_sets_the_stop_on_every_leg_and_each_its_own_target(rig: Rig) -> None:
    await rig.agent.process(open11(legs=THREE_LEGS))
    await rig.agent.process(
        followup("modify", "ins_modify01", stop_loss="1.08300", take_profit=["1.09100"])
    )
    assert [(row[3], row[4]) for row in rig.book()] == [
        ("1.08300", "1.09100"),
        ("1.08300", "1.09500"),  # no take_profit[1]: leg 1 keeps its own
        ("1.08300", "1.10000"),
    ]
    done = rig.reports()[-1][1]
    assert done["report_id"] == "ins_modify01-done"
    assert done["message"] == (
        "stop loss 1.08300 set on ticket 5000001 take profit 1.09100, ticket 5000002 take "
        "profit 1.09500, ticket 5000003 take profit 1.10000"
    )


async def test_close_takes_the_fraction_of_each_leg(rig: Rig) -> None:
    await rig.agent.process(open11(legs=THREE_LEGS, sizing={"mode": "fixed", "lots": "0.20"}))
    # legs 0.10 / 0.06 / 0.04; half of each: 0.05 / 0.03 / 0.02
    await rig.agent.process(followup("close", "ins_close001", fraction="0.5"))
    fills = [b for k, b in rig.reports() if k == "fill" and b["instruction_id"] == "ins_close001"]
    assert [(f["leg"], f["volume"]) for f in fills] == [(0, "0.05"), (1, "0.03"), (2, "0.02")]
    # 0.3 of 0.05 / 0.03 / 0.02 → 0.01 / 0.009 / 0.006: legs 1 and 2 are left alone
    await rig.agent.process(followup("close", "ins_close002", fraction="0.3"))
    fills = [b for k, b in rig.reports() if k == "fill" and b["instruction_id"] == "ins_close002"]
    assert [(f["leg"], f["volume"]) for f in fills] == [(0, "0.01")]
    await rig.agent.process(followup("close", "ins_close003", fraction="1"))
    fills = [b for k, b in rig.reports() if k == "fill" and b["instruction_id"] == "ins_close003"]
    assert [(f["leg"], f["volume"]) for f in fills] == [(0, "0.04"), (1, "0.03"), (2, "0.02")]
    assert {row[6] for row in rig.book()} == {"closed"}


async def test_a_crash_between_legs_opens_only_the_missing_ones(rig: Rig) -> None:
    rig.crash_at_call = 2  # right after leg 1 opened
    with pytest.raises(Crash):
        await rig.agent.process(open11(legs=THREE_LEGS))
    assert len(rig.book()) == 2  # leg 1 is open, its fill not journaled
    await rig.restart().recover()
    fills = [body for kind, body in rig.reports() if kind == "fill"]
    assert [(f["leg"], f["ticket"]) for f in fills] == [(0, 5000001), (1, 5000002), (2, 5000003)]
    assert len(rig.book()) == 3
    await rig.agent.recover()
    assert len(rig.book()) == 3 and len(rig.reports()) == 4


# --- guards ---


async def test_a_wide_spread_is_90004_and_no_trade(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "j.sqlite3", euro("1.08500", "1.08540"))  # 40 points
    try:
        await rig.agent.process(open11(guards={"max_spread_points": 30}))
        (_, _), (kind, error) = rig.reports()
        assert (kind, error["code"]) == ("error", 90004)
        assert "spread is 40 points, above the 30 allowed" in error["message"]
        assert rig.book() == []
    finally:
        rig.journal.close()
        rig.paper.stop()


async def test_a_price_moved_from_the_reference_is_90005_and_no_trade(rig: Rig) -> None:
    guards = {"max_spread_points": 30, "reference_price": "1.08400", "max_distance_points": 50}
    await rig.agent.process(open11(guards=guards))
    (_, _), (kind, error) = rig.reports()
    assert (kind, error["code"]) == ("error", 90005)
    assert "112 points from the signal's 1.08400 (at most 50)" in error["message"]
    assert rig.book() == []
    near = {"reference_price": "1.08500", "max_distance_points": 50}
    await rig.agent.process(open11("ins_v11open02", guards=near))
    assert rig.reports()[-1][0] == "fill"


async def test_guards_do_not_apply_to_pending_orders(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "j.sqlite3", euro("1.08500", "1.08600"))
    try:
        await rig.agent.process(
            open11(order_type="limit", entry="1.08000", guards={"max_spread_points": 1})
        )
        assert rig.reports()[1][1]["report_id"] == "ins_v11open01-placed"
    finally:
        rig.journal.close()
        rig.paper.stop()


# --- events, breakeven, trailing ---


async def test_take_profit_1_closes_leg_0_then_the_others_go_to_breakeven(tmp_path: Path) -> None:
    rig = path_rig(tmp_path, ["1.08500", "1.08800", "1.09010", "1.09100"])
    management = {"breakeven": {"after_leg": 0, "offset_points": 10}}
    await rig.agent.process(open11(legs=THREE_LEGS, management=management))
    await rig.agent.watch()
    assert rig.events() == []
    assert rig.agent.poll_wait() == 2  # managed positions: short polls
    rig.prices.advance()  # type: ignore[attr-defined]
    await rig.agent.watch()
    assert rig.events() == []
    rig.later(1)
    rig.prices.advance()  # type: ignore[attr-defined]  # bid 1.09010 reaches TP1 1.09000
    await rig.agent.watch()
    closed, moved_1, moved_2 = rig.events()
    assert closed == {
        "report_id": "ins_v11open01-closed-5000001",
        "instruction_id": "ins_v11open01",
        "leg": 0,
        "ticket": 5000001,
        "event": "closed",
        "reason": "tp",
        "price": "1.09010",
        "volume": "0.05",
        "profit": "24.90",  # (1.09010 − 1.08512) / 0.00001 × 1 × 0.05
        "executed_at": "2026-01-01T00:00:31Z",
    }
    # open 1.08512 + 10 points
    assert rig.stop_loss(5000002) == rig.stop_loss(5000003) == D("1.08522")
    assert [(e["event"], e["leg"], e["ticket"], e["stop_loss"]) for e in (moved_1, moved_2)] == [
        ("sl_moved", 1, 5000002, "1.08522"),
        ("sl_moved", 2, 5000003, "1.08522"),
    ]
    assert moved_1["report_id"] == "ins_v11open01-sl-5000002-1"
    rig.prices.advance()  # type: ignore[attr-defined]
    rig.later(30)
    await rig.agent.watch()
    assert len(rig.events()) == 3  # breakeven is done once; nothing moved since
    assert rig.journal.managed(5000002).breakeven_done


async def test_trailing_follows_a_rising_price_and_never_moves_back(tmp_path: Path) -> None:
    bids = ["1.08500", "1.08700", "1.08900", "1.08800", "1.08750", "1.09000", "1.09020"]
    rig = path_rig(tmp_path, bids)
    trailing = {"distance_points": 200, "step_points": 50, "start": "at_open"}
    await rig.agent.process(open11(management={"trailing": trailing}, take_profit=[]))
    levels: list[Decimal | None] = []
    for _ in bids:
        await rig.agent.watch()
        levels.append(rig.stop_loss(5000001))
        rig.later(1)
        rig.prices.advance()  # type: ignore[attr-defined]
    assert levels == [
        D("1.08300"),  # at open: bid − 200 points, above the signal's 1.08012
        D("1.08500"),
        D("1.08700"),
        D("1.08700"),  # the price fell: the stop stays
        D("1.08700"),
        D("1.08800"),
        D("1.08800"),  # 20 points up: less than the 50-point step
    ]
    # One event at the first move, then at most one per 10 s with the latest level.
    assert [e["stop_loss"] for e in rig.events()] == ["1.08300"]
    rig.later(10)
    await rig.agent.watch()
    assert [e["stop_loss"] for e in rig.events()] == ["1.08300", "1.08800"]
    assert [e["report_id"] for e in rig.events()] == [
        "ins_v11open01-sl-5000001-1",
        "ins_v11open01-sl-5000001-2",
    ]


async def test_trailing_after_breakeven_waits_for_it(tmp_path: Path) -> None:
    rig = path_rig(tmp_path, ["1.08500", "1.08900", "1.09010", "1.09300"])
    management = {
        "breakeven": {"after_leg": 0, "offset_points": 0},
        "trailing": {"distance_points": 200, "step_points": 0, "start": "after_breakeven"},
    }
    await rig.agent.process(open11(legs=TWO_LEGS, management=management))
    rig.prices.advance()  # type: ignore[attr-defined]
    await rig.agent.watch()
    assert rig.stop_loss(5000002) == D("1.08012")  # not trailed before breakeven
    rig.prices.advance()  # type: ignore[attr-defined]  # TP1
    await rig.agent.watch()
    # breakeven (1.08512), then trailed at once: 1.09010 − 200 points
    assert rig.stop_loss(5000002) == D("1.08810")
    rig.prices.advance()  # type: ignore[attr-defined]
    await rig.agent.watch()
    assert rig.stop_loss(5000002) == D("1.09100")


async def test_a_stop_loss_hit_and_a_manual_close_are_events(tmp_path: Path) -> None:
    rig = path_rig(tmp_path, ["1.08500", "1.08000"])
    await rig.agent.process(open11())
    await rig.agent.process(open11("ins_v11open02", stop_loss=None))
    rig.prices.advance()  # type: ignore[attr-defined]  # through the first one's stop loss
    rig.paper.close_by_hand(5000002)
    await rig.agent.watch()
    assert [(e["ticket"], e["reason"], e["price"], e["profit"]) for e in rig.events()] == [
        (5000001, "sl", "1.08000", "-51.20"),
        (5000002, "manual", "1.08000", "-51.20"),
    ]
    assert rig.journal.holdings() == []


async def test_a_closed_event_is_queued_once_across_restarts(tmp_path: Path) -> None:
    rig = path_rig(tmp_path, ["1.08500", "1.09100"])
    await rig.agent.process(open11(legs=TWO_LEGS))
    agent = rig.restart()
    rig.prices.advance()  # type: ignore[attr-defined]  # TP1 reached
    await agent.recover()
    await agent.watch()
    await agent.watch()
    agent = rig.restart()
    await agent.recover()
    await agent.watch()
    [event] = rig.events()
    assert (event["report_id"], event["reason"]) == ("ins_v11open01-closed-5000001", "tp")
    assert [kind for kind, _ in rig.reports()] == ["ack", "fill", "fill", "event"]


async def test_a_move_under_way_at_a_crash_is_found_on_the_broker(rig: Rig) -> None:
    management = {"trailing": {"distance_points": 200, "step_points": 0}}
    await rig.agent.process(open11(management=management))
    # The agent wrote its intent, the broker moved the stop, then the agent died.
    rig.journal.manage(Managed(5000001, sl_intent=D("1.08300")))
    held = rig.paper.holding(5000001)
    assert held is not None
    rig.paper.modify(held, D("1.08300"), held.take_profit)
    await rig.restart().recover()
    await rig.agent.watch()
    state = rig.journal.managed(5000001)
    assert (state.sl_intent, state.sl_moved, state.sl_reported) == (
        None,
        D("1.08300"),
        D("1.08300"),
    )
    assert [e["stop_loss"] for e in rig.events()] == ["1.08300"]


async def test_a_v1_server_gets_no_events(tmp_path: Path) -> None:
    rig = path_rig(tmp_path, ["1.08500", "1.09100"])
    rig.journal.set_meta("server_protocol", "1")
    await rig.agent.process(open11())
    rig.prices.advance()  # type: ignore[attr-defined]
    await rig.agent.watch()
    assert rig.events() == []
    [owned] = rig.journal.holdings(open_only=False)
    assert (owned.state.value, owned.exit_reason) == ("closed", "tp")


async def test_a_pending_order_filled_and_closed_between_looks(tmp_path: Path) -> None:
    rig = path_rig(tmp_path, ["1.08500", "1.07980", "1.09100"])
    await rig.agent.process(open11(order_type="limit", entry="1.08000", take_profit=["1.09"]))
    rig.prices.advance(steps=2)  # type: ignore[attr-defined]
    await rig.agent.watch()
    fill = [b for k, b in rig.reports() if k == "fill"]
    assert [(f["price"], f["leg"]) for f in fill] == [("1.08000", 0)]
    [event] = rig.events()
    assert (event["reason"], event["price"]) == ("tp", "1.09100")


# --- close_all ---


async def test_close_all_closes_only_what_the_agent_placed(rig: Rig) -> None:
    await rig.agent.process(open11(legs=TWO_LEGS))
    await rig.agent.process(open11("ins_v11open02", order_type="stop", entry="1.09000"))
    foreign = rig.paper.open(
        OpenOrder("someone else", "EURUSD", Side.SELL, OrderType.MARKET, None, None, None, D("1"))
    )
    rig.prices.set("EURUSD", "1.08600", "1.08612")
    await rig.agent.process(close_all())
    assert rig.reports()[-3][1] == {
        "report_id": "ins_closeall1-ack",
        "instruction_id": "ins_closeall1",
    }
    events = rig.events()
    assert [(e["ticket"], e["leg"], e["reason"], e["volume"], e["price"]) for e in events] == [
        (5000001, 0, "close_all", "0.05", "1.08600"),
        (5000002, 1, "close_all", "0.05", "1.08600"),
    ]
    assert [e["report_id"] for e in events] == [
        "ins_v11open01-closed-5000001",
        "ins_v11open01-closed-5000002",
    ]
    assert [(row[0], row[6]) for row in rig.book()] == [
        (5000001, "closed"),
        (5000002, "closed"),
        (5000003, "deleted"),
        (foreign.ticket, "open"),
    ]
    assert rig.journal.holdings() == []


async def test_close_all_cut_short_by_a_crash_closes_each_position_once(rig: Rig) -> None:
    await rig.agent.process(open11(legs=THREE_LEGS))
    rig.crash_on = {"ins_closeall1"}
    with pytest.raises(Crash):
        await rig.agent.process(close_all())
    assert [row[6] for row in rig.book()] == ["closed", "open", "open"]
    await rig.restart().recover()
    assert [row[6] for row in rig.book()] == ["closed", "closed", "closed"]
    assert [(e["ticket"], e["reason"]) for e in rig.events()] == [
        (5000001, "close_all"),
        (5000002, "close_all"),
        (5000003, "close_all"),
    ]
    with sqlite3.connect(rig.path) as db:
        deals = db.execute("SELECT ticket FROM paper_deals ORDER BY id").fetchall()
    assert deals == [(5000001,), (5000002,), (5000003,)]  # each closed once


# --- device state ---


async def test_the_state_lists_only_its_own_positions_and_its_symbols(rig: Rig) -> None:
    await rig.agent.process(open11(legs=TWO_LEGS))
    rig.paper.open(
        OpenOrder("someone else", "EURUSD", Side.SELL, OrderType.MARKET, None, None, None, D("1"))
    )
    rig.prices.set("EURUSD", "1.08600", "1.08612")
    state = await rig.agent.state()
    assert state["protocol"] == "1.1"
    assert state["ea"] == {"name": "signalbridge-agent", "version": "1.1.0", "platform": "paper"}
    assert state["account"] == {
        "currency": "USD",
        "balance": "10000.00",
        "equity": "9896.80",  # +4.40 +4.40 on the legs, −112.00 on the other position
        "margin_free": "9896.80",
        "leverage": 100,
        "trade_allowed": True,
        "company": "signalbridge paper",
    }
    assert state["positions"] == [
        {
            "ticket": 5000001,
            "instruction_id": "ins_v11open01",
            "leg": 0,
            "symbol": "EURUSD",
            "side": "buy",
            "volume": "0.05",
            "open_price": "1.08512",
            "profit": "4.40",
            "stop_loss": "1.08012",
            "take_profit": "1.09000",
        },
        {
            "ticket": 5000002,
            "instruction_id": "ins_v11open01",
            "leg": 1,
            "symbol": "EURUSD",
            "side": "buy",
            "volume": "0.05",
            "open_price": "1.08512",
            "profit": "4.40",
            "stop_loss": "1.08012",
            "take_profit": "1.09500",
        },
    ]
    assert state["symbols"] == [
        {
            "name": "EURUSD",
            "tick_size": "0.00001",
            "tick_value": "1.00000",
            "volume_min": "0.01",
            "volume_step": "0.01",
            "volume_max": "100",
        }
    ]


class StateServer:
    """A fake side server for the state endpoint: answers what the test sets."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.status = 200
        self.answer: dict[str, Any] = {"server_time": 1767225630, "poll_wait": 7}

    async def state(self, request: web.Request) -> web.Response:
        assert request.headers["X-Device-Id"] == DEVICE  # signed like every device request
        assert len(request.headers["X-Signature"]) == 64
        self.bodies.append(json.loads(await request.read()))
        return web.json_response(self.answer, status=self.status)


@pytest.fixture
async def state_server() -> AsyncIterator[tuple[StateServer, str]]:
    fake = StateServer()
    app = web.Application()
    app.router.add_post("/api/v1/ea/state", fake.state)
    server = TestServer(app)
    await server.start_server()
    yield fake, str(server.make_url("")).rstrip("/")
    await server.close()


async def test_the_state_is_sent_and_the_servers_poll_wait_is_used(
    tmp_path: Path, state_server: tuple[StateServer, str]
) -> None:
    fake, url = state_server
    journal = Journal(tmp_path / "j.sqlite3", DEVICE)
    paper = PaperExecutor(tmp_path / "j.sqlite3", euro(), clock=lambda: START)
    paper.start()
    agent = Agent(
        Credentials(url, DEVICE, "s" * 43),
        paper,
        journal,
        settings=AgentSettings(poll_wait=20, manage_wait=2, symbols=("XAUUSD",)),
        wall_clock=START.timestamp,
    )
    try:
        assert agent.poll_wait() == 20
        assert await agent.send_state()
        [sent] = fake.bodies
        assert sent["protocol"] == "1.1" and sent["positions"] == []
        assert [s["name"] for s in sent["symbols"]] == ["XAUUSD"]
        assert agent.poll_wait() == 7 and journal.meta("server_protocol") == "1.1"
        await agent.process(open11(management={"trailing": {"distance_points": 200}}))
        await agent.watch()
        assert agent.poll_wait() == 2  # stop losses managed: polls come back sooner
        fake.status, fake.answer = 404, {"error": "not_found", "message": "no such path"}
        assert not await agent.send_state()
        assert journal.meta("server_protocol") == "1"  # a v1 server: no events for it
        fake.status, fake.answer = 422, {"error": "invalid_request", "message": "bad"}
        assert not await agent.send_state()
        assert journal.meta("server_protocol") == "1"
    finally:
        await agent.client.close()
        journal.close()
        paper.stop()


async def test_a_state_refused_for_its_credentials_stops_the_agent(
    tmp_path: Path, state_server: tuple[StateServer, str]
) -> None:
    fake, url = state_server
    fake.status = 401
    fake.answer = {"error": "invalid_signature", "message": "Unknown device or bad signature."}
    journal = Journal(tmp_path / "j.sqlite3", DEVICE)
    paper = PaperExecutor(tmp_path / "j.sqlite3", euro(), clock=lambda: START)
    agent = Agent(Credentials(url, DEVICE, "s" * 43), paper, journal, wall_clock=START.timestamp)
    try:
        with pytest.raises(CredentialsRefused) as refused:
            await asyncio.wait_for(agent.run(), 5)
        assert refused.value.error.code == "invalid_signature"
        assert len(fake.bodies) == 1  # the state at start, then nothing more
    finally:
        journal.close()


@settings(max_examples=20, deadline=None)
@given(moves=st.lists(st.integers(min_value=-150, max_value=150), min_size=1, max_size=25))
def test_the_agents_trailing_stop_never_moves_back_whatever_the_path(
    tmp_path_factory: pytest.TempPathFactory, moves: list[int]
) -> None:
    bids = [D("1.08500")]
    for move in moves:
        bids.append(bids[-1] + move * D("0.00001"))
    rig = path_rig(tmp_path_factory.mktemp("trail"), [str(b) for b in bids])
    trailing = {"distance_points": 200, "step_points": 50}

    async def play() -> list[Decimal]:
        await rig.agent.process(open11(management={"trailing": trailing}, take_profit=[]))
        levels: list[Decimal] = []
        for _ in bids:
            await rig.agent.watch()
            held = rig.paper.holding(5000001)
            if held is None:  # the stop loss was hit: nothing more to trail
                break
            assert held.stop_loss is not None
            levels.append(held.stop_loss)
            rig.later(11)  # each move may be reported
            rig.prices.advance()  # type: ignore[attr-defined]
        return levels

    try:
        levels = asyncio.run(play())
        reported = [D(e["stop_loss"]) for e in rig.events() if e["event"] == "sl_moved"]
    finally:
        rig.journal.close()
        rig.paper.stop()
    steps = [later - earlier for earlier, later in itertools.pairwise(levels)]
    assert all(step == 0 or step >= D("0.00050") for step in steps)  # up by a step or not at all
    assert reported == sorted(set(reported))  # each level once, never back
    assert reported[-1:] == levels[-1:] or levels[-1] == D("1.08012")


async def test_a_leg_opened_and_closed_while_the_agent_was_down_is_filled_then_closed(
    tmp_path: Path,
) -> None:
    rig = path_rig(tmp_path, ["1.08500", "1.09100"])
    rig.crash_at_call = 1  # right after leg 0 opened: nothing of it journaled
    with pytest.raises(Crash):
        await rig.agent.process(open11(legs=TWO_LEGS))
    agent = rig.restart()
    rig.prices.advance()  # type: ignore[attr-defined]  # leg 0's take profit 1.09 is reached
    assert rig.paper.holding(5000001) is None  # closed by the broker at 1.09100
    await agent.recover()
    assert [(k, b.get("leg"), b.get("reason")) for k, b in rig.reports()] == [
        ("ack", None, None),
        ("fill", 0, None),
        ("event", 0, "tp"),
        ("fill", 1, None),
    ]
    fill = rig.reports()[1][1]
    assert (fill["ticket"], fill["volume"]) == (5000001, "0.05")


async def test_the_state_describes_100_symbols_at_most_the_most_recent_first(rig: Rig) -> None:
    for number in range(105):
        symbol = f"SYM{number:03d}"
        rig.prices.set(symbol, "1.00000", "1.00010")
        await rig.agent.process(open11(f"ins_many{number:03d}", symbol=symbol))
    names = [s["name"] for s in (await rig.agent.state())["symbols"]]
    assert len(names) == 100
    assert names[:2] == ["SYM104", "SYM103"] and "SYM004" not in names


async def test_the_state_lists_200_positions_at_most_the_most_recent(rig: Rig) -> None:
    for number in range(203):
        await rig.agent.process(
            open11(f"ins_pos{number:05d}", sizing={"mode": "fixed", "lots": "0.01"})
        )
    positions = (await rig.agent.state())["positions"]
    assert len(positions) == 200
    ids = {p["instruction_id"] for p in positions}
    assert "ins_pos00202" in ids and "ins_pos00002" not in ids


async def test_where_the_agent_cannot_size_it_trades_the_servers_estimate(
    tmp_path: Path,
) -> None:
    unknown = PaperSymbol(SymbolSpec(D("0.01"), D("0.01"), D("50")), D("100000"), tick_value=D(0))
    rig = Rig(tmp_path / "j.sqlite3", euro(), symbols={"EURUSD": unknown})
    try:
        risk = {"mode": "risk_percent", "percent": "1", "of": "balance"}
        await rig.agent.process(open11(sizing=risk, volume="0.07"))
        await rig.agent.process(open11("ins_v11open02", sizing=risk, volume="0.03", stop_loss=None))
        assert [b["volume"] for k, b in rig.reports() if k == "fill"] == ["0.07", "0.03"]
    finally:
        rig.journal.close()
        rig.paper.stop()
