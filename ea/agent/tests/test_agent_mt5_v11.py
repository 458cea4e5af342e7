"""The MT5 executor's side of protocol v1.1 against the fake MetaTrader5 module: symbol
data, quotes, account figures and build for the state, how a position ended (the closing
deal's reason), and the agent's legs, sizing and breakeven through it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from agent_orders import market_buy
from fake_mt5 import DEAL_REASON_SL, DEAL_REASON_TP, FakeMT5
from signalbridge_agent.agent import Agent, AgentSettings
from signalbridge_agent.client import Credentials
from signalbridge_agent.journal import Journal
from signalbridge_agent.mt5 import Mt5Executor
from signalbridge_agent.protocol import CloseReason
from signalbridge_agent.trading import Account, Quote, SymbolSpec

MAGIC = 424242
SINCE = datetime(2026, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC)
DEVICE = "dev_" + "M" * 20
D = Decimal


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> FakeMT5:
    fake = FakeMT5()
    fake.add_symbol("EURUSD.m", bid=1.085, ask=1.08512)
    return fake.install(monkeypatch)


@pytest.fixture
def mt5(broker: FakeMT5) -> Mt5Executor:
    executor = Mt5Executor(magic=MAGIC, deviation=15)
    executor.start()
    return executor


def test_symbol_data_quote_account_and_build(mt5: Mt5Executor, broker: FakeMT5) -> None:
    broker.symbols["EURUSD.m"] = broker.symbols["EURUSD.m"]._replace(trade_tick_value=0.93)
    data = mt5.symbol_data("EURUSD.m")
    assert (data.spec, data.tick_size, data.tick_value, data.point) == (
        SymbolSpec(D("0.01"), D("0.01"), D("50.0")),
        D("0.00001"),
        D("0.93"),
        D("0.00001"),
    )
    assert mt5.quote("EURUSD.m") == Quote(D("1.085"), D("1.08512"))
    assert mt5.account() == Account(
        currency="USD",
        balance=D("10000.0"),
        equity=D("10012.5"),
        margin_free=D("9800.0"),
        leverage=100,
        trade_allowed=True,
        company="Broker Ltd",
        server="Broker-Demo",
    )
    assert "31337" not in repr(mt5.account())  # never the account number
    broker.trade_allowed = False
    assert not mt5.account().trade_allowed  # Algo Trading off in the terminal
    assert mt5.build() == 4620


def test_how_a_position_ended_comes_from_its_closing_deal(
    mt5: Mt5Executor, broker: FakeMT5
) -> None:
    tp = mt5.open(market_buy(symbol="EURUSD.m", tag="sb:ins_a"))
    sl = mt5.open(market_buy(symbol="EURUSD.m", tag="sb:ins_b"))
    assert mt5.exit_of(tp.ticket, SINCE) is None  # still open
    broker.hit(tp.ticket, 1.095, DEAL_REASON_TP)
    broker.hit(sl.ticket, 1.08, DEAL_REASON_SL)
    took = mt5.exit_of(tp.ticket, SINCE)
    assert took is not None
    assert (took.reason, took.price, took.volume, took.profit) == (
        CloseReason.TP,
        D("1.095"),
        D("0.1"),
        D("98.8"),
    )
    stopped = mt5.exit_of(sl.ticket, SINCE)
    assert stopped is not None and stopped.reason is CloseReason.SL
    assert mt5.exit_of(99, SINCE) is None  # no trace in the history


@pytest.fixture
def agent(tmp_path: Path, mt5: Mt5Executor) -> Iterator[Agent]:
    journal = Journal(tmp_path / "j.sqlite3", DEVICE)
    yield Agent(
        Credentials("http://127.0.0.1:9", DEVICE, "s" * 43),
        mt5,
        journal,
        settings=AgentSettings(poll_wait=20),
        wall_clock=NOW.timestamp,
    )
    journal.close()


def open11(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "id": "ins_mt5open01",
        "signal_id": "sig_1",
        "action": "open",
        "symbol": "EURUSD.m",
        "side": "buy",
        "order_type": "market",
        "entry": None,
        "stop_loss": "1.08012",
        "take_profit": ["1.09", "1.095"],
        "volume": "0.01",
        "comment": "",
        "issued_at": "2026-01-01T00:00:00Z",
        "expires_at": "2026-01-01T00:05:00Z",
        "sizing": {"mode": "risk_percent", "percent": "1", "of": "balance"},
        "legs": [{"take_profit": "1.09", "share": "0.5"}, {"take_profit": "1.095", "share": "0.5"}],
        "management": {"breakeven": {"after_leg": 0, "offset_points": 10}},
    }
    raw.update(changes)
    return raw


async def test_legs_sized_from_the_terminal_then_breakeven_after_tp1(
    agent: Agent, broker: FakeMT5
) -> None:
    await agent.process(open11())
    deals = [r for r in broker.sent if r["action"] == 1]
    # 1% of 10000 = 100; 500 ticks × 1.0 = 500 a lot → 0.20 in two legs of 0.10
    assert [(r["volume"], r["tp"], r["comment"]) for r in deals] == [
        (0.1, 1.09, "sb:ins_mt5open01"),
        (0.1, 1.095, "sb:ins_mt5open01:1"),
    ]
    first, second = sorted(broker.positions)
    broker.hit(first, 1.0901, DEAL_REASON_TP)
    await agent.watch()
    [moved] = [r for r in broker.sent if r["action"] == 6]
    assert (moved["position"], moved["sl"], moved["tp"]) == (second, 1.08522, 1.095)
    events = [r.body for r in agent.journal.reports() if r.kind == "event"]
    assert [(e["event"], e.get("reason"), e["leg"]) for e in events] == [
        ("closed", "tp", 0),
        ("sl_moved", None, 1),
    ]
    state = await agent.state()
    assert state["ea"]["build"] == 4620 and state["ea"]["platform"] == "mt5"
    assert [(p["ticket"], p["leg"], p["stop_loss"]) for p in state["positions"]] == [
        (second, 1, "1.08522")
    ]
