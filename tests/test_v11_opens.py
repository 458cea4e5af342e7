"""v1.1 opens (EA_PROTOCOL 5.2): sizing, legs, management and guards frozen from the
device's settings when the open is issued, with the server's volume estimate from the
last state's symbol data; follow-ups unchanged on the wire."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from bot.container import Container
from tests.conftest import FakeClock
from tests.devices_support import EAClient
from tests.fake_bot_api import FakeBotAPI
from tests.loop_support import (
    approve,
    fill_body,
    instructions,
    publish,
    report,
    report_id,
    settle,
)
from tests.wire_support import owner_device, send_state, set_device, state_body

OWNER = 3701


@pytest.fixture
async def device(
    container: Container, aiohttp_client: Any, clock: FakeClock
) -> tuple[EAClient, int]:
    return await owner_device(container, aiohttp_client, clock, OWNER)


async def open_of(container: Container, ea: EAClient, **signal: Any) -> dict[str, Any]:
    """The open of a new approved signal (earlier ones stay pending: the newest is last)."""
    await approve(container, await publish(container, **signal), OWNER)
    instruction = (await instructions(ea))[-1]
    assert instruction["action"] == "open"
    return instruction


async def test_one_percent_risk_carries_sizing_and_the_estimate(
    container: Container, device: tuple[EAClient, int]
) -> None:
    ea, pk = device
    await set_device(
        container, pk, sizing_mode="risk_percent", risk_percent=Decimal(1), max_lots=Decimal(2)
    )
    # 1 % of 10,000.00 = 100.00; 1.08500 → 1.08000 is 500 ticks of 1.00: 500.00 a lot.
    opened = await open_of(
        container, ea, order_type="limit", entry="1.085", stop_loss="1.08", take_profit=["1.1"]
    )
    assert opened["sizing"] == {
        "mode": "risk_percent",
        "percent": "1",
        "of": "balance",
        "max_lots": "2",
    }
    assert opened["volume"] == "0.2"
    assert not {"legs", "management", "guards"} & set(opened)  # none set, none sent
    # Equity instead, and a stop three times closer: 1 % of 10,012.50 / 166.67 → 0.6.
    await set_device(container, pk, risk_of="equity")
    closer = await open_of(
        container, ea, order_type="limit", entry="1.085", stop_loss="1.08333", take_profit=[]
    )
    assert closer["sizing"]["of"] == "equity"
    assert closer["volume"] == "0.59"


async def test_market_risk_uses_the_reference_price_else_the_lot_size(
    container: Container, device: tuple[EAClient, int]
) -> None:
    ea, pk = device
    await set_device(container, pk, sizing_mode="risk_money", risk_money_minor=5000)
    priced = await open_of(container, ea, stop_loss="1.08", price="1.0825")
    # 50.00 over 250 ticks of 1.00 = 0.2 lots.
    assert priced["sizing"] == {"mode": "risk_money", "amount": "50.00"}
    assert priced["volume"] == "0.2"
    unpriced = await open_of(container, ea, stop_loss="1.08")
    assert unpriced["sizing"]["mode"] == "risk_money"
    assert unpriced["volume"] == "0.01"  # no price to measure from: the device's lot size


async def test_the_estimate_honours_max_lots_volume_max_and_step(
    container: Container, device: tuple[EAClient, int]
) -> None:
    ea, pk = device
    await set_device(
        container, pk, sizing_mode="risk_percent", risk_percent=Decimal(50), max_lots=Decimal(3)
    )
    capped = await open_of(container, ea, order_type="limit", entry="1.085", stop_loss="1.08")
    assert capped["volume"] == "3"
    symbols = [dict(state_body()["symbols"][0], volume_step="0.1", volume_max="2.5")]
    await send_state(ea, state_body(symbols=symbols))
    await set_device(container, pk, max_lots=None)
    at_max = await open_of(container, ea, order_type="limit", entry="1.085", stop_loss="1.08")
    assert "max_lots" not in at_max["sizing"]
    assert at_max["volume"] == "2.5"  # 10 lots of risk, the symbol's maximum
    # 1.3 % of 10,000.00 / 500.00 = 0.26 lots, down to the step of 0.1.
    await set_device(container, pk, risk_percent=Decimal("1.3"))
    stepped = await open_of(container, ea, order_type="limit", entry="1.085", stop_loss="1.08")
    assert stepped["volume"] == "0.2"
    # 0.3 % gives 0.06 lots, 0 at the step of 0.1, below the minimum: the lot size is sent.
    await set_device(container, pk, risk_percent=Decimal("0.3"))
    below = await open_of(container, ea, order_type="limit", entry="1.085", stop_loss="1.08")
    assert below["volume"] == "0.01"


async def test_a_risk_mode_without_a_stop_loss_sends_fixed_lots(
    container: Container, device: tuple[EAClient, int]
) -> None:
    ea, pk = device
    await set_device(
        container, pk, sizing_mode="risk_percent", risk_percent=Decimal(1), lot_size=Decimal("0.3")
    )
    opened = await open_of(container, ea, stop_loss=None)
    assert opened["sizing"] == {"mode": "fixed", "lots": "0.3"}
    assert opened["volume"] == "0.3"


async def test_three_take_profits_split_into_three_legs(
    container: Container, device: tuple[EAClient, int]
) -> None:
    ea, pk = device
    await set_device(
        container,
        pk,
        tp_mode="split",
        breakeven_after_leg=0,
        breakeven_offset_points=10,
        trailing_distance_points=200,
        trailing_step_points=50,
        trailing_start="after_breakeven",
    )
    levels = ["1.095", "1.1", "1.105"]
    equal = await open_of(container, ea, take_profit=levels)
    assert equal["legs"] == [
        {"take_profit": "1.095", "share": "0.3334"},
        {"take_profit": "1.1", "share": "0.3333"},
        {"take_profit": "1.105", "share": "0.3333"},
    ]
    assert equal["take_profit"] == levels  # the list stays, for EAs of either version
    assert equal["management"] == {
        "breakeven": {"after_leg": 0, "offset_points": 10},
        "trailing": {"distance_points": 200, "step_points": 50, "start": "after_breakeven"},
    }
    await set_device(container, pk, tp_shares=["50", "30", "20"])
    typed = await open_of(container, ea, take_profit=levels)
    assert [leg["share"] for leg in typed["legs"]] == ["0.5", "0.3", "0.2"]
    single = await open_of(container, ea, take_profit=["1.095"])
    assert "legs" not in single and "breakeven" not in single.get("management", {})


async def test_followups_of_a_v11_device_are_the_v1_shapes(
    container: Container, device: tuple[EAClient, int]
) -> None:
    ea, pk = device
    await set_device(container, pk, tp_mode="split")
    outcome = await publish(container)
    await approve(container, outcome, OWNER)
    [opened] = await instructions(ea)
    ack = {"report_id": report_id(), "instruction_id": opened["id"]}
    assert (await report(ea, "ack", ack)).status == 201
    async with container.sessionmaker.begin() as session:
        await container.signals.modify(session, {"stop_loss": "1.081"}, signal_id=outcome.signal.id)
    async with container.sessionmaker.begin() as session:
        await container.signals.close(session, {"fraction": "0.5"}, signal_id=outcome.signal.id)
    modify, close = await instructions(ea)
    assert set(modify) == {
        "id",
        "signal_id",
        "action",
        "symbol",
        "stop_loss",
        "take_profit",
        "issued_at",
    }
    assert set(close) == {"id", "signal_id", "action", "symbol", "fraction", "issued_at"}


async def test_the_worked_example_of_docs_ea_protocol(
    container: Container, device: tuple[EAClient, int], fake_api: FakeBotAPI
) -> None:
    """docs/ea-protocol.md section 7's worked example, figure for figure."""
    ea, pk = device
    await set_device(
        container,
        pk,
        sizing_mode="risk_percent",
        risk_percent=Decimal(1),
        tp_mode="split",
        breakeven_after_leg=0,
        max_spread_points=30,
    )
    outcome = await publish(
        container,
        order_type="limit",
        entry="1.085",
        stop_loss="1.08",
        take_profit=["1.09", "1.095"],
    )
    await settle(container)
    assert (
        "• Demo: 1 % of 10,000.00 USD → about 0.2 lots, 2 take profits split"
        in (fake_api.sent("sendMessage", OWNER)[-1].params["text"])
    )
    await approve(container, outcome, OWNER)
    [opened] = await instructions(ea)
    shown = {
        k: v for k, v in opened.items() if k not in {"id", "signal_id", "issued_at", "expires_at"}
    }
    assert shown == {
        "action": "open",
        "symbol": "EURUSD",
        "side": "buy",
        "order_type": "limit",
        "entry": "1.085",
        "stop_loss": "1.08",
        "take_profit": ["1.09", "1.095"],
        "volume": "0.2",
        "comment": None,
        "sizing": {"mode": "risk_percent", "percent": "1", "of": "balance"},
        "legs": [{"take_profit": "1.09", "share": "0.5"}, {"take_profit": "1.095", "share": "0.5"}],
        "management": {"breakeven": {"after_leg": 0, "offset_points": 0}},
    }
    for leg, ticket in ((0, 5012345), (1, 5012346)):
        fill = fill_body(opened["id"], ticket=ticket, price="1.085", volume="0.1", leg=leg)
        assert (await report(ea, "fill", fill)).status == 201
    closed = {
        "report_id": report_id(),
        "instruction_id": opened["id"],
        "leg": 0,
        "ticket": 5012345,
        "event": "closed",
        "reason": "tp",
        "price": "1.09",
        "volume": "0.1",
        "profit": "50.00",
    }
    moved = {
        "report_id": report_id(),
        "instruction_id": opened["id"],
        "leg": 1,
        "ticket": 5012346,
        "event": "sl_moved",
        "stop_loss": "1.085",
    }
    for body in (closed, moved):
        assert (await ea.post_json("/api/v1/exec/event", body)).status == 201
    await settle(container)
    told = [c.params["text"] for c in fake_api.sent("sendMessage", OWNER)]
    assert (
        "📕 <b>Demo</b>: EURUSD buy closed (take profit), 0.1 @ <code>1.09</code>, "
        "result +50.00 USD"
    ) in told
    assert (
        fake_api.last("editMessageText", OWNER)
        .params["text"]
        .endswith("• Demo: filled 0.2 @ <code>1.085</code> · TP1 hit +50.00 USD, SL → breakeven")
    )
