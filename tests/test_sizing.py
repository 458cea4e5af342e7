"""The sizing math of protocol v1.1 (bot/domain/sizing.py), by properties (Hypothesis)
and by the worked figures of EA_PROTOCOL 5.2."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from bot.domain.sizing import (
    SymbolSpec,
    leg_shares,
    loss_per_lot,
    lots_for_risk,
    risk_amount,
    round_down,
)

EURUSD = SymbolSpec(
    tick_size=Decimal("0.00001"),
    tick_value=Decimal("1.00"),
    volume_min=Decimal("0.01"),
    volume_step=Decimal("0.01"),
    volume_max=Decimal("100"),
)

prices = st.decimals(min_value=Decimal("0.5"), max_value=Decimal("2"), places=5)
risks = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100000"), places=2)
steps = st.sampled_from([Decimal("0.01"), Decimal("0.1"), Decimal("1"), Decimal("0.05")])


def test_the_worked_example() -> None:
    risk = risk_amount("risk_percent", percent=Decimal(1), base=Decimal("10000.00"))
    assert risk == Decimal("100")
    assert loss_per_lot(Decimal("1.085"), Decimal("1.08"), EURUSD) == Decimal(500)
    assert lots_for_risk(Decimal(100), Decimal("1.085"), Decimal("1.08"), EURUSD) == Decimal("0.2")
    assert risk_amount("risk_money", amount=Decimal("50.00")) == Decimal("50.00")
    assert risk_amount("fixed") is None
    assert risk_amount("risk_percent", percent=None, base=Decimal(1)) is None


@given(risk=risks, price=prices, stop=prices, step=steps, cap=st.none() | risks)
def test_lots_never_risk_more_than_asked_and_stay_within_bounds(
    risk: Decimal, price: Decimal, stop: Decimal, step: Decimal, cap: Decimal | None
) -> None:
    spec = SymbolSpec(EURUSD.tick_size, EURUSD.tick_value, step, step, Decimal(50))
    lots = lots_for_risk(risk, price, stop, spec, cap)
    if price == stop:
        assert lots is None
        return
    if lots is None:
        # Nothing tradable: below the minimum once rounded and capped.
        best = min(risk / loss_per_lot(price, stop, spec), spec.volume_max, cap or spec.volume_max)
        assert round_down(best, step) < spec.volume_min
        return
    assert spec.volume_min <= lots <= spec.volume_max
    assert cap is None or lots <= cap
    assert lots % step == 0
    assert lots * loss_per_lot(price, stop, spec) <= risk
    # Rounded down by less than one step (unless a cap decided).
    if cap is None or cap >= spec.volume_max:
        uncapped = risk / loss_per_lot(price, stop, spec)
        if uncapped < spec.volume_max:
            assert uncapped - lots < step


@given(volume=st.decimals(min_value=0, max_value=1000, places=6), step=steps)
def test_round_down_is_a_whole_number_of_steps_not_above(volume: Decimal, step: Decimal) -> None:
    rounded = round_down(volume, step)
    assert rounded <= volume < rounded + step
    assert rounded % step == 0


@given(
    count=st.integers(min_value=1, max_value=10),
    shares=st.none()
    | st.lists(st.decimals(min_value=Decimal("0.1"), max_value=100, places=2), max_size=12),
)
def test_leg_shares_sum_to_one_one_per_take_profit(
    count: int, shares: list[Decimal] | None
) -> None:
    result = leg_shares(count, shares)
    assert len(result) == count
    assert sum(result) == 1
    assert all(share > 0 for share in result)
    assert all(-share.as_tuple().exponent <= 4 for share in result)  # type: ignore[operator]


def test_leg_shares_equal_and_typed() -> None:
    assert leg_shares(3) == [Decimal("0.3334"), Decimal("0.3333"), Decimal("0.3333")]
    assert leg_shares(2) == [Decimal("0.5"), Decimal("0.5")]
    typed = [Decimal(50), Decimal(30), Decimal(20)]
    assert leg_shares(3, typed) == [Decimal("0.5"), Decimal("0.3"), Decimal("0.2")]
    # More shares than take profits: the first ones, scaled; fewer: equal shares.
    assert leg_shares(2, typed) == [Decimal("0.625"), Decimal("0.375")]
    assert leg_shares(3, typed[:2]) == leg_shares(3)
    assert leg_shares(2, [Decimal(1), Decimal(0)]) == leg_shares(2)
    assert leg_shares(0) == []
