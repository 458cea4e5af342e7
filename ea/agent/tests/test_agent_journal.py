"""The journal's round trip and the paper executor's book."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from agent_orders import market_buy
from signalbridge_agent.journal import (
    HoldingState,
    Journal,
    JournalMismatch,
    Owned,
    Report,
    ReportState,
    Stage,
)
from signalbridge_agent.paper import PaperExecutor, PaperSymbol, QuoteTable
from signalbridge_agent.protocol import OrderType, Side
from signalbridge_agent.trading import HoldingKind, OpenOrder, SymbolSpec, TradeError

DEVICE = "dev_" + "J" * 20
AT = datetime(2026, 1, 1, 12, tzinfo=UTC)


def ack(instruction_id: str, step: str = "ack") -> Report:
    return Report(
        "ack", {"report_id": f"{instruction_id}-{step}", "instruction_id": instruction_id}
    )


def test_round_trip_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    journal = Journal(path, DEVICE)
    raw = {"id": "ins_1", "action": "open", "price": "1.08512"}
    journal.receive("ins_1", raw, signal_id="sig_1", action="open", reports=[ack("ins_1")])
    journal.start("ins_1", {"tag": "sb:ins_1", "volume": "0.10"})
    owned = Owned(
        5000001,
        "sig_1",
        "ins_1",
        HoldingKind.POSITION,
        "EURUSD",
        Side.BUY,
        Decimal("0.10"),
        HoldingState.OPEN,
    )
    fill = Report(
        "fill",
        {
            "report_id": "ins_1-fill",
            "instruction_id": "ins_1",
            "ticket": 5000001,
            "price": "1.08512",
            "volume": "0.10",
        },
    )
    journal.close()

    journal = Journal(path, DEVICE)
    [entry] = journal.unfinished()
    assert (entry.id, entry.stage, entry.raw, entry.plan) == (
        "ins_1",
        Stage.EXECUTING,
        raw,
        {"tag": "sb:ins_1", "volume": "0.10"},
    )
    journal.finish("ins_1", {"ticket": 5000001}, [fill], [owned])
    journal.close()

    journal = Journal(path, DEVICE)
    assert journal.unfinished() == []
    assert journal.known("ins_1") and not journal.known("ins_2")
    assert journal.holdings("sig_1") == [owned]
    assert journal.holdings("sig_2") == []
    queued = journal.queued()
    assert [(q.kind, q.report_id) for q in queued] == [("ack", "ins_1-ack"), ("fill", "ins_1-fill")]
    assert json.loads(queued[1].body) == fill.body
    journal.answered(queued[0].seq, ReportState.ACCEPTED, "exe_1", "201")
    journal.queue([ack("ins_1")])  # the same report id again: not a second report
    assert [q.report_id for q in journal.queued()] == ["ins_1-fill"]
    journal.own([replace(owned, volume=Decimal("0.05"), state=HoldingState.CLOSED)])
    assert journal.holdings("sig_1") == []
    assert journal.holdings("sig_1", open_only=False)[0].volume == Decimal("0.05")
    journal.close()


def test_a_journal_belongs_to_one_device(tmp_path: Path) -> None:
    Journal(tmp_path / "j.sqlite3", DEVICE).close()
    with pytest.raises(JournalMismatch, match="belongs to device"):
        Journal(tmp_path / "j.sqlite3", "dev_" + "K" * 20)


# --- the paper executor ---


@pytest.fixture
def paper(tmp_path: Path) -> PaperExecutor:
    quotes = QuoteTable()
    quotes.set("EURUSD", "1.08500", "1.08512")
    executor = PaperExecutor(
        tmp_path / "j.sqlite3",
        quotes,
        symbols={
            "XAUUSD": PaperSymbol(
                SymbolSpec(Decimal("0.1"), Decimal("0.1"), Decimal("5")), Decimal("100")
            )
        },
        clock=lambda: AT,
    )
    executor.start()
    return executor


def order(**changes: object) -> OpenOrder:
    return market_buy(**{"symbol": "EURUSD", "tag": "sb:ins_1", **changes})


def test_market_orders_fill_at_the_ask_or_bid(paper: PaperExecutor) -> None:
    buy = paper.open(order())
    sell = paper.open(order(side=Side.SELL, tag="sb:ins_2"))
    assert (buy.ticket, buy.price, buy.kind) == (5000001, Decimal("1.08512"), HoldingKind.POSITION)
    assert (sell.ticket, sell.price) == (5000002, Decimal("1.08500"))
    with pytest.raises(TradeError) as unquoted:
        paper.open(order(symbol="GBPUSD"))
    assert unquoted.value.code == 90002


def test_pending_orders_wait_for_the_price_then_fill_at_their_entry(paper: PaperExecutor) -> None:
    limit = paper.open(order(order_type=OrderType.LIMIT, entry=Decimal("1.08000")))
    stop = paper.open(order(order_type=OrderType.STOP, entry=Decimal("1.09000"), tag="sb:ins_2"))
    sell_limit = paper.open(
        order(side=Side.SELL, order_type=OrderType.LIMIT, entry=Decimal("1.09"), tag="sb:ins_3")
    )
    assert {h.kind for h in (limit, stop, sell_limit)} == {HoldingKind.ORDER}
    quotes = paper.prices
    assert isinstance(quotes, QuoteTable)
    quotes.set("EURUSD", "1.07990", "1.07995")  # down through the buy limit
    filled = paper.holding(limit.ticket)
    assert filled is not None and (filled.kind, filled.price) == (
        HoldingKind.POSITION,
        Decimal("1.08000"),
    )
    assert paper.holding(stop.ticket).kind is HoldingKind.ORDER  # type: ignore[union-attr]
    quotes.set("EURUSD", "1.09001", "1.09010")  # up through the buy stop and the sell limit
    assert paper.holding(stop.ticket).kind is HoldingKind.POSITION  # type: ignore[union-attr]
    assert paper.holding(sell_limit.ticket).kind is HoldingKind.POSITION  # type: ignore[union-attr]
    unquoted = paper.open(
        order(symbol="XAUUSD", order_type=OrderType.STOP, entry=Decimal("2400"), tag="sb:ins_4")
    )
    assert paper.holding(unquoted.ticket).kind is HoldingKind.POSITION  # type: ignore[union-attr]


def test_close_parts_with_profit_and_the_deal_is_found_again(paper: PaperExecutor) -> None:
    position = paper.open(order())
    assert isinstance(paper.prices, QuoteTable)
    paper.prices.set("EURUSD", "1.09010", "1.09022")
    half = paper.close(position, Decimal("0.05"), "sb:ins_c")
    assert (half.price, half.volume, half.profit, half.executed_at) == (
        Decimal("1.09010"),
        Decimal("0.05"),
        Decimal("24.90"),
        AT,
    )
    assert paper.holding(position.ticket).volume == Decimal("0.05")  # type: ignore[union-attr]
    assert paper.closed_part(position.ticket, "sb:ins_c", AT) == half
    assert paper.closed_part(position.ticket, "sb:ins_d", AT) is None
    with pytest.raises(TradeError):
        paper.close(position, Decimal("0.06"), "sb:ins_d")
    rest = paper.close(position, Decimal("0.05"), "sb:ins_d")
    assert rest.volume == Decimal("0.05")
    assert paper.holding(position.ticket) is None
    found = paper.find_by_tag("sb:ins_1", AT)
    assert found is not None and not found.is_open


def test_modify_cancel_and_symbols(paper: PaperExecutor) -> None:
    position = paper.open(order())
    paper.modify(position, Decimal("1.085"), None)
    moved = paper.holding(position.ticket)
    assert moved is not None and (moved.stop_loss, moved.take_profit) == (Decimal("1.085"), None)
    pending = paper.open(order(order_type=OrderType.LIMIT, entry=Decimal("1.07"), tag="sb:ins_2"))
    paper.cancel(pending)
    assert paper.holding(pending.ticket) is None
    with pytest.raises(TradeError) as again:
        paper.cancel(pending)
    assert again.value.code == 90007
    assert paper.symbol_spec("XAUUSD").volume_step == Decimal("0.1")
    assert paper.symbol_spec("ANYTHING").volume_min == Decimal("0.01")
    only_listed = PaperExecutor(
        paper.path, paper.prices, symbols=paper.symbols, default_symbol=None
    )
    with pytest.raises(TradeError) as unknown:
        only_listed.symbol_spec("ANYTHING")
    assert unknown.value.code == 90002
