"""The MT5 executor against a fake MetaTrader5 module: requests, ownership, recovery."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from agent_orders import market_buy
from fake_mt5 import RETCODE_INVALID_STOPS, FakeMT5, Position
from signalbridge_agent.mt5 import Mt5Executor
from signalbridge_agent.protocol import OrderType, Side
from signalbridge_agent.trading import HoldingKind, OpenOrder, SymbolSpec, TradeError

MAGIC = 424242
SINCE = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> FakeMT5:
    fake = FakeMT5()
    fake.add_symbol("EURUSD.m")
    return fake.install(monkeypatch)


@pytest.fixture
def mt5(broker: FakeMT5) -> Mt5Executor:
    executor = Mt5Executor(magic=MAGIC, deviation=15)
    executor.start()
    assert broker.initialized
    return executor


def order(**changes: object) -> OpenOrder:
    return market_buy(**{"symbol": "EURUSD.m", "tag": "sb:ins_a", **changes})


def test_market_buy_carries_magic_comment_slippage_and_levels(
    mt5: Mt5Executor, broker: FakeMT5
) -> None:
    holding = mt5.open(order())
    [request] = broker.sent
    assert request == {
        "action": 1,
        "symbol": "EURUSD.m",
        "volume": 0.1,
        "type": 0,
        "price": 1.0852,
        "sl": 1.08,
        "tp": 1.095,
        "deviation": 15,
        "magic": MAGIC,
        "comment": "sb:ins_a",
        "type_time": 0,
        "type_filling": 0,
    }
    assert holding.kind is HoldingKind.POSITION
    assert (holding.price, holding.volume, holding.tag) == (
        Decimal("1.0852"),
        Decimal("0.1"),
        "sb:ins_a",
    )


def test_sell_stop_is_a_pending_order_at_its_entry(mt5: Mt5Executor, broker: FakeMT5) -> None:
    holding = mt5.open(
        order(side=Side.SELL, order_type=OrderType.STOP, entry=Decimal("1.07"), stop_loss=None)
    )
    [request] = broker.sent
    assert (request["action"], request["type"], request["price"], request["sl"]) == (
        5,
        5,
        1.07,
        0.0,
    )
    assert holding.kind is HoldingKind.ORDER and holding.side is Side.SELL
    broker.trigger(holding.ticket)
    became = mt5.holding(holding.ticket)
    assert became is not None and became.kind is HoldingKind.POSITION


def test_symbols_missing_unselectable_or_disabled(mt5: Mt5Executor, broker: FakeMT5) -> None:
    with pytest.raises(TradeError) as missing:
        mt5.symbol_spec("GBPUSD")
    assert missing.value.code == 90002
    broker.add_symbol("XAUUSD", visible=False)
    assert mt5.symbol_spec("XAUUSD") == SymbolSpec(
        Decimal("0.01"), Decimal("0.01"), Decimal("50.0")
    )
    assert broker.selected == ["XAUUSD"]
    broker.add_symbol("GOLD.locked", visible=False)
    with pytest.raises(TradeError) as locked:
        mt5.symbol_spec("GOLD.locked")
    assert locked.value.code == 90002
    broker.symbols["EURUSD.m"] = broker.symbols["EURUSD.m"]._replace(trade_mode=0)
    with pytest.raises(TradeError) as disabled:
        mt5.open(order())
    assert disabled.value.code == 90006
    assert broker.sent == []


def test_algo_trading_off_is_90006_and_refusals_carry_the_retcode(
    mt5: Mt5Executor, broker: FakeMT5
) -> None:
    broker.trade_allowed = False
    with pytest.raises(TradeError) as off:
        mt5.open(order())
    assert off.value.code == 90006 and broker.sent == []
    broker.trade_allowed = True
    broker.refuse_with = RETCODE_INVALID_STOPS
    with pytest.raises(TradeError) as refused:
        mt5.open(order())
    assert refused.value.code == RETCODE_INVALID_STOPS
    assert broker.positions == {}


def test_modify_position_and_pending_order(mt5: Mt5Executor, broker: FakeMT5) -> None:
    position = mt5.open(order())
    mt5.modify(position, Decimal("1.085"), None)
    assert broker.sent[-1] == {
        "action": 6,
        "position": position.ticket,
        "symbol": "EURUSD.m",
        "sl": 1.085,
        "tp": 0.0,
        "magic": MAGIC,
    }
    moved = mt5.holding(position.ticket)
    assert moved is not None and (moved.stop_loss, moved.take_profit) == (Decimal("1.085"), None)
    mt5.modify(moved, Decimal("1.085"), None)  # no changes: not an error
    pending = mt5.open(order(order_type=OrderType.LIMIT, entry=Decimal("1.07"), tag="sb:ins_b"))
    mt5.modify(pending, Decimal("1.06"), Decimal("1.09"))
    assert broker.sent[-1]["action"] == 7 and broker.sent[-1]["price"] == 1.07
    assert broker.orders[pending.ticket].sl == 1.06


def test_partial_close_reports_the_deal_and_recovery_finds_it(
    mt5: Mt5Executor, broker: FakeMT5
) -> None:
    position = mt5.open(order())
    broker.ticks["EURUSD.m"] = broker.ticks["EURUSD.m"]._replace(bid=1.0901, ask=1.0903)
    closed = mt5.close(position, Decimal("0.05"), "sb:ins_c")
    request = broker.sent[-1]
    assert (request["position"], request["type"], request["price"], request["comment"]) == (
        position.ticket,
        1,
        1.0901,
        "sb:ins_c",
    )
    assert (closed.price, closed.volume, closed.profit) == (
        Decimal("1.0901"),
        Decimal("0.05"),
        Decimal("24.5"),
    )
    left = mt5.holding(position.ticket)
    assert left is not None and left.volume == Decimal("0.05")
    assert mt5.closed_part(position.ticket, "sb:ins_c", SINCE) == closed
    assert mt5.closed_part(position.ticket, "sb:other", SINCE) is None


def test_cancel_deletes_the_pending_order(mt5: Mt5Executor, broker: FakeMT5) -> None:
    pending = mt5.open(order(order_type=OrderType.LIMIT, entry=Decimal("1.07")))
    mt5.cancel(pending)
    assert broker.sent[-1] == {"action": 8, "order": pending.ticket, "magic": MAGIC}
    assert mt5.holding(pending.ticket) is None


def test_acts_only_on_its_own_magic_number(mt5: Mt5Executor, broker: FakeMT5) -> None:
    broker.positions[1] = Position(1, 0, 999, 1.0, 1.08, 0.0, 0.0, "EURUSD.m", "sb:ins_a")
    assert mt5.holding(1) is None
    assert mt5.find_by_tag("sb:ins_a", SINCE) is None


def test_find_by_tag_open_pending_and_closed_since(mt5: Mt5Executor, broker: FakeMT5) -> None:
    position = mt5.open(order(tag="sb:ins_open"))
    pending = mt5.open(
        order(tag="sb:ins_pending", order_type=OrderType.LIMIT, entry=Decimal("1.07"))
    )
    assert mt5.find_by_tag("sb:ins_open", SINCE) == mt5.holding(position.ticket)
    assert mt5.find_by_tag("sb:ins_pending", SINCE) == mt5.holding(pending.ticket)
    gone = mt5.open(order(tag="sb:ins_gone"))
    del broker.positions[gone.ticket]  # hit its stop loss while the agent was down
    found = mt5.find_by_tag("sb:ins_gone", SINCE)
    assert found is not None and not found.is_open
    assert (found.ticket, found.volume, found.side) == (gone.ticket, Decimal("0.1"), Side.BUY)
    assert mt5.find_by_tag("sb:ins_never", SINCE) is None


def test_start_fails_when_the_terminal_does_not(broker: FakeMT5) -> None:
    broker.terminal_answers = False
    with pytest.raises(TradeError) as failed:
        Mt5Executor(magic=MAGIC, password="hunter2-password").start()
    assert failed.value.code == 90006
    assert "did not start (-1: generic fail)" in failed.value.message
    assert "hunter2" not in repr(Mt5Executor(magic=MAGIC, password="hunter2-password"))


def test_start_without_the_package_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "MetaTrader5", None)  # import fails as on Linux
    with pytest.raises(TradeError) as missing:
        Mt5Executor(magic=MAGIC).start()
    assert missing.value.code == 90006
    assert "signalbridge-agent[mt5]" in missing.value.message
