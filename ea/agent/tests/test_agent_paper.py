"""The paper broker's price path: ticks played in order against its book, broker-side
stop loss and take profit, the balance and equity, a close by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from agent_orders import market_buy
from signalbridge_agent.paper import PaperAccount, PaperExecutor, PricePath
from signalbridge_agent.protocol import CloseReason, Side

AT = datetime(2026, 1, 1, tzinfo=UTC)
D = Decimal


def paper(tmp_path: Path, prices: PricePath) -> PaperExecutor:
    executor = PaperExecutor(
        tmp_path / "j.sqlite3", prices, clock=lambda: AT, account=PaperAccount(D("5000"))
    )
    executor.start()
    return executor


def test_paths_of_ticks_of_bids_and_of_a_function() -> None:
    path = PricePath({"EURUSD": [("1.1", "1.1001"), ("1.2", "1.2001")]})
    assert path.quote("EURUSD") is not None and path.left("EURUSD") == 1
    assert path.advance() and path.quote("EURUSD").bid == D("1.2")  # type: ignore[union-attr]
    assert not path.advance()  # nothing left: the last tick stays
    spread = PricePath.with_spread("XAUUSD", ["2400.00", "2401.50"], "0.30")
    assert spread.quote("XAUUSD").ask == D("2400.30")  # type: ignore[union-attr]
    made = PricePath.generated("EURUSD", 5, lambda n: (D("1.1") + n * D("0.001"), D("1.2")))
    made.advance(steps=4)
    assert made.quote("EURUSD").bid == D("1.104") and made.left("EURUSD") == 0  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="no ticks"):
        PricePath({"EURUSD": []})


def test_a_tick_through_the_take_profit_closes_at_that_tick(tmp_path: Path) -> None:
    prices = PricePath.with_spread("EURUSD", ["1.08500", "1.09600", "1.07000"], "0.00012")
    broker = paper(tmp_path, prices)
    position = broker.open(market_buy(stop_loss=D("1.08"), take_profit=D("1.095")))
    prices.advance(steps=2)  # up through the take profit, then down through the stop loss
    assert broker.holding(position.ticket) is None
    exit_ = broker.exit_of(position.ticket, AT)
    assert exit_ is not None
    # Closed by the first tick that reached a level: the take profit, at its bid.
    assert (exit_.reason, exit_.price, exit_.volume, exit_.profit) == (
        CloseReason.TP,
        D("1.09600"),
        D("0.10"),
        D("108.80"),
    )
    account = broker.account()
    assert (account.balance, account.equity) == (D("5108.80"), D("5108.80"))


def test_a_sell_stops_out_at_the_ask_and_equity_follows_open_profit(tmp_path: Path) -> None:
    prices = PricePath.with_spread("EURUSD", ["1.08500", "1.08400", "1.09000"], "0.00010")
    broker = paper(tmp_path, prices)
    sell = broker.open(market_buy(side=Side.SELL, stop_loss=D("1.08900"), take_profit=D("1.07")))
    prices.advance()
    assert broker.account().equity == D("5009.00")  # sold at 1.08500, ask 1.08410 now
    held = broker.holding(sell.ticket)
    assert held is not None and held.profit == D("9.00")
    prices.advance()
    exit_ = broker.exit_of(sell.ticket, AT)
    assert exit_ is not None and (exit_.reason, exit_.price) == (CloseReason.SL, D("1.09010"))
    assert broker.account().balance == D("4949.00")  # (1.08500 − 1.09010) × 0.10 lots


def test_a_close_by_hand_is_manual(tmp_path: Path) -> None:
    prices = PricePath.with_spread("EURUSD", ["1.08500"], "0.00012")
    broker = paper(tmp_path, prices)
    position = broker.open(market_buy())
    closed = broker.close_by_hand(position.ticket)
    exit_ = broker.exit_of(position.ticket, AT)
    assert exit_ is not None and exit_.reason is CloseReason.MANUAL
    assert (
        (exit_.price, exit_.profit) == (closed.price, closed.profit) == (D("1.08500"), D("-1.20"))
    )
