"""The arithmetic of protocol 5.2 against its text: risk sizing, the split over legs, the
market guards, breakeven and trailing levels (examples, then properties with hypothesis)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from signalbridge_agent.management import better, breakeven_level, trailing_level
from signalbridge_agent.protocol import (
    Breakeven,
    Guards,
    Leg,
    OrderType,
    RiskOf,
    Side,
    Sizing,
    SizingMode,
    Trailing,
    TrailingStart,
)
from signalbridge_agent.sizing import (
    check_guards,
    down_to_step,
    order_price,
    risk_lots,
    split_legs,
)
from signalbridge_agent.trading import Account, Quote, SymbolData, SymbolSpec, TradeError

D = Decimal
EURUSD = SymbolData(
    "EURUSD", SymbolSpec(D("0.01"), D("0.01"), D("100")), D("0.00001"), D("1"), D("0.00001")
)
# A yen cross for a dollar account: one tick of 0.001 is worth 0.67 USD a lot.
USDJPY = SymbolData(
    "USDJPY", SymbolSpec(D("0.01"), D("0.01"), D("50")), D("0.001"), D("0.67"), D("0.001")
)
ACCOUNT = Account("USD", D("10000.00"), D("9500.00"), D("9000.00"), 100, True)


def percent(value: str, of: RiskOf = RiskOf.BALANCE, max_lots: str | None = None) -> Sizing:
    return Sizing(
        SizingMode.RISK_PERCENT,
        percent=D(value),
        of=of,
        max_lots=None if max_lots is None else D(max_lots),
    )


# --- sizing ---


def test_one_percent_of_the_balance_at_a_50_pip_stop_is_two_tenths() -> None:
    # risk 100 USD; |1.08512 − 1.08012| / 0.00001 × 1 = 500 USD a lot → 0.2 lots
    assert risk_lots(percent("1"), ACCOUNT, EURUSD, D("1.08512"), D("1.08012")) == D("0.20")


def test_of_equity_and_risk_money() -> None:
    # 1% of 9500 = 95 → 0.19 lots
    assert risk_lots(percent("1", RiskOf.EQUITY), ACCOUNT, EURUSD, D("1.08512"), D("1.08012")) == D(
        "0.19"
    )
    money = Sizing(SizingMode.RISK_MONEY, amount=D("50.00"))
    assert risk_lots(money, ACCOUNT, EURUSD, D("1.08512"), D("1.08012")) == D("0.10")


def test_a_tick_value_other_than_one() -> None:
    # risk 100; 0.500 / 0.001 × 0.67 = 335 a lot → 0.2985… → 0.29 (rounded down)
    assert risk_lots(percent("1"), ACCOUNT, USDJPY, D("150.500"), D("150.000")) == D("0.29")


def test_capped_by_max_lots_then_volume_max() -> None:
    assert risk_lots(percent("10", max_lots="0.55"), ACCOUNT, EURUSD, D("1.1"), D("1.09")) == D(
        "0.55"
    )
    # 50% of 10000 at a 1-point stop would be 5000 lots: volume_max 100 caps it.
    assert risk_lots(percent("50"), ACCOUNT, EURUSD, D("1.10001"), D("1.1")) == D("100")


def test_below_the_minimum_is_90003() -> None:
    with pytest.raises(TradeError) as small:
        risk_lots(percent("0.01"), ACCOUNT, EURUSD, D("1.1"), D("1.0"))  # 1 USD at 10000 a lot
    assert small.value.code == 90003 and "below EURUSD's minimum 0.01" in small.value.message
    with pytest.raises(TradeError) as flat:
        risk_lots(percent("1"), ACCOUNT, EURUSD, D("1.1"), D("1.1"))
    assert flat.value.code == 90003


def test_the_price_is_the_entry_or_the_side_of_the_quote() -> None:
    quote = Quote(D("1.08500"), D("1.08512"))
    assert order_price(Side.BUY, OrderType.MARKET, None, quote) == D("1.08512")
    assert order_price(Side.SELL, OrderType.MARKET, None, quote) == D("1.08500")
    assert order_price(Side.BUY, OrderType.LIMIT, D("1.07"), None) == D("1.07")


@given(
    pct=st.decimals(min_value="0.01", max_value="10", places=2),
    balance=st.decimals(min_value="100", max_value="1000000", places=2),
    distance_ticks=st.integers(min_value=1, max_value=100_000),
    tick_value=st.decimals(min_value="0.01", max_value="20", places=2),
    step=st.sampled_from([D("0.01"), D("0.1"), D("1")]),
    max_lots=st.none() | st.decimals(min_value="0.01", max_value="500", places=2),
)
def test_risk_lots_is_the_largest_whole_step_within_the_risk(
    pct: Decimal,
    balance: Decimal,
    distance_ticks: int,
    tick_value: Decimal,
    step: Decimal,
    max_lots: Decimal | None,
) -> None:
    data = SymbolData("X", SymbolSpec(step, step, D("200")), D("0.00001"), tick_value, D("0.00001"))
    account = Account("USD", balance, balance, balance, 100, True)
    price = D("1.00000")
    stop = price - distance_ticks * data.tick_size
    risk = pct / 100 * balance
    per_lot = distance_ticks * tick_value
    sizing = percent(str(pct), max_lots=None if max_lots is None else str(max_lots))
    cap = min(max_lots if max_lots is not None else D("200"), D("200"))
    try:
        lots = risk_lots(sizing, account, data, price, stop)
    except TradeError as exc:
        assert exc.code == 90003
        assert min(risk / per_lot, cap) < step  # nothing of a whole step fits
        return
    assert lots % step == 0 and step <= lots <= cap
    assert lots * per_lot <= risk  # never more than the risk
    if lots + step <= cap:
        assert (lots + step) * per_lot > risk  # and not a step less than it could


# --- legs ---


def legs(*shares: str) -> list[Leg]:
    return [Leg(D("1.1") + i, D(share)) for i, share in enumerate(shares)]


@pytest.mark.parametrize(
    ("volume", "shares", "expected"),
    [
        ("0.10", ("0.5", "0.5"), ["0.05", "0.05"]),
        ("0.10", ("0.333", "0.333", "0.334"), ["0.04", "0.03", "0.03"]),  # the rest to leg 0
        ("0.30", ("0.5", "0.3", "0.2"), ["0.15", "0.09", "0.06"]),
        ("0.04", ("0.5", "0.3", "0.2"), ["0.03", "0.01"]),  # leg 2 would be 0: dropped
        ("0.03", ("0.5", "0.3", "0.2"), ["0.03"]),  # then leg 1 too (0.7 / 0.3 of 0.03)
        ("0.01", ("0.5", "0.5"), ["0.01"]),
        ("1", ("0.5", "0.5"), ["0.5", "0.5"]),
    ],
)
def test_split_over_legs(volume: str, shares: tuple[str, ...], expected: list[str]) -> None:
    spec = SymbolSpec(D("0.01"), D("0.01"), D("100"))
    assert split_legs(D(volume), legs(*shares), spec) == [D(x) for x in expected]


@given(
    steps=st.integers(min_value=1, max_value=5000),
    raw=st.lists(st.integers(min_value=1, max_value=100), min_size=1, max_size=5),
    minimum_steps=st.integers(min_value=1, max_value=10),
)
def test_legs_keep_the_volume_whole_and_each_leg_at_the_minimum(
    steps: int, raw: list[int], minimum_steps: int
) -> None:
    step = D("0.01")
    spec = SymbolSpec(minimum_steps * step, step, D("100"))
    volume = steps * step
    total = sum(raw)
    shares = [Leg(D("1.1"), (D(x) / total).quantize(D("0.0001"))) for x in raw]
    parts = split_legs(volume, shares, spec)
    assert sum(parts) == volume  # nothing lost, nothing made up
    assert 1 <= len(parts) <= len(shares)
    assert all(part % step == 0 for part in parts)
    if len(parts) > 1:
        assert all(part >= spec.volume_min for part in parts)
    for part, leg in zip(parts[1:], shares[1 : len(parts)], strict=True):
        assert part == down_to_step(volume * leg.share, step)  # only leg 0 takes the rest


# --- guards ---


def test_spread_guard_is_90004_above_its_points() -> None:
    guards = Guards(max_spread_points=12)
    check_guards(guards, Side.BUY, Quote(D("1.08500"), D("1.08512")), D("0.00001"), "EURUSD")
    with pytest.raises(TradeError) as wide:
        check_guards(guards, Side.BUY, Quote(D("1.08500"), D("1.08513")), D("0.00001"), "EURUSD")
    assert wide.value.code == 90004 and "13 points, above the 12" in wide.value.message


def test_distance_guard_is_90005_from_the_reference_price() -> None:
    guards = Guards(reference_price=D("1.08520"), max_distance_points=50)
    near = Quote(D("1.08550"), D("1.08570"))  # a buy's ask 50 points away: allowed
    check_guards(guards, Side.BUY, near, D("0.00001"), "EURUSD")
    with pytest.raises(TradeError) as far:
        check_guards(guards, Side.BUY, Quote(D("1.08560"), D("1.08571")), D("0.00001"), "EURUSD")
    assert far.value.code == 90005 and "51 points from the signal's 1.08520" in far.value.message
    check_guards(guards, Side.SELL, Quote(D("1.08560"), D("1.08571")), D("0.00001"), "EURUSD")
    check_guards(Guards(max_distance_points=1), Side.BUY, far_quote(), D("0.00001"), "EURUSD")


def far_quote() -> Quote:
    return Quote(D("2"), D("2.1"))  # no reference price: no distance to judge


# --- breakeven and trailing ---

POINT = D("0.00001")


def test_breakeven_is_the_open_price_plus_the_offset_never_backwards() -> None:
    rule = Breakeven(after_leg=0, offset_points=10)
    assert breakeven_level(rule, Side.BUY, D("1.08512"), POINT, D("1.08")) == D("1.08522")
    assert breakeven_level(rule, Side.SELL, D("1.08500"), POINT, D("1.09")) == D("1.08490")
    assert breakeven_level(rule, Side.BUY, D("1.08512"), POINT, D("1.08600")) is None
    assert breakeven_level(rule, Side.SELL, D("1.08500"), POINT, D("1.08400")) is None
    assert breakeven_level(rule, Side.BUY, D("1.08512"), POINT, None) == D("1.08522")


def test_trailing_moves_by_at_least_the_step() -> None:
    rule = Trailing(distance_points=200, step_points=50, start=TrailingStart.AT_OPEN)
    at = Quote(D("1.09000"), D("1.09012"))
    assert trailing_level(rule, Side.BUY, at, POINT, D("1.08700")) == D("1.08800")
    assert trailing_level(rule, Side.BUY, at, POINT, D("1.08760")) is None  # 40 points: too little
    assert trailing_level(rule, Side.BUY, at, POINT, D("1.08900")) is None  # would go back
    assert trailing_level(rule, Side.SELL, at, POINT, D("1.09300")) == D("1.09212")
    assert trailing_level(rule, Side.SELL, at, POINT, None) == D("1.09212")


@given(
    side=st.sampled_from([Side.BUY, Side.SELL]),
    moves=st.lists(st.integers(min_value=-300, max_value=300), min_size=1, max_size=60),
    distance=st.integers(min_value=1, max_value=500),
    step=st.integers(min_value=0, max_value=100),
)
def test_a_trailing_stop_never_moves_backwards(
    side: Side, moves: list[int], distance: int, step: int
) -> None:
    rule = Trailing(distance_points=distance, step_points=step, start=TrailingStart.AT_OPEN)
    bid = D("1.10000")
    stop: Decimal | None = None
    for move in moves:
        bid += move * POINT
        quote = Quote(bid, bid + 12 * POINT)
        level = trailing_level(rule, side, quote, POINT, stop)
        if level is None:
            continue
        assert better(side, level, stop)
        if stop is not None:
            assert abs(level - stop) >= step * POINT
        reference = quote.bid if side is Side.BUY else quote.ask
        assert abs(reference - level) == distance * POINT
        stop = level
