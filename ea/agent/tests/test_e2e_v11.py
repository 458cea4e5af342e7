"""Protocol v1.1 through the whole loop: the agent (paper, a scripted price path) against
the real side server and database. Sizing from the agent's own symbol data, legs, TP1 →
breakeven shown on the signal's message, a trailing stop, the guards, close_all and the
events' idempotency."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Coroutine
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from agent_orders import euro
from aiohttp.test_utils import TestClient
from signalbridge_agent.client import ApiError
from signalbridge_agent.journal import encode
from signalbridge_agent.paper import PaperSymbol, PricePath
from signalbridge_agent.protocol import OrderType, Side
from signalbridge_agent.trading import OpenOrder, SymbolSpec

from bot.chat.callbacks import DeviceAction
from bot.container import Container
from db.models import ExecutionRecord
from tests.agent_support import V11_SETTINGS, Device, run_device
from tests.conftest import Chat, FakeClock
from tests.devices_support import add_device
from tests.fake_bot_api import FakeBotAPI
from tests.loop_support import approve, publish, settle, stored_instructions, stored_records
from tests.test_devices_chat import press_data
from tests.wire_support import set_device, stored_events, stored_state

OWNER = 4201
D = Decimal


def path(*bids: str) -> PricePath:
    """EURUSD playing ``bids`` (12 points of spread), the first one current."""
    return PricePath.with_spread("EURUSD", bids, "0.00012")


async def eventually(check: Callable[[], Coroutine[Any, Any, bool]], timeout: float = 8) -> None:
    async def wait() -> None:
        while not await check():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(wait(), timeout)


async def v11_device(container: Container, **settings: Any) -> tuple[Any, Any]:
    device, credentials = await add_device(container, OWNER)
    if settings:
        await set_device(container, device.pk, **settings)
    return device, credentials


async def started(container: Container, ea: Device, device_pk: int) -> None:
    """The agent's first state is stored: the server now treats the device as v1.1."""

    async def stored() -> bool:
        # The agent has the answer too (the server commits before it answers).
        answered = ea.journal.meta("server_protocol") == "1.1"
        return answered and await stored_state(container, device_pk) is not None

    await eventually(stored)


async def events_stored(container: Container, count: int) -> list[Any]:
    async def enough() -> bool:
        return len(await stored_events(container)) >= count

    await eventually(enough)
    return await stored_events(container)


def fills(records: list[ExecutionRecord]) -> list[ExecutionRecord]:
    return [r for r in records if r.kind == "fill"]


async def test_one_percent_risk_is_sized_from_the_agents_symbol_data(
    server: TestClient[Any, Any], container: Container, clock: FakeClock, tmp_path: Path
) -> None:
    device, credentials = await v11_device(
        container, sizing_mode="risk_percent", risk_percent=D("1.0"), risk_of="balance"
    )
    # This account's EURUSD tick is worth 0.50 a lot: only the agent knows it.
    half = PaperSymbol(SymbolSpec(D("0.01"), D("0.01"), D("100")), D("50000"))
    async with run_device(
        server,
        clock,
        credentials,
        tmp_path / "j.sqlite3",
        quotes=euro(),
        settings=V11_SETTINGS,
        symbols={"EURUSD": half},
    ) as ea:
        await started(container, ea, device.pk)
        await approve(container, await publish(container), OWNER)
        await ea.until(lambda: ea.unsent() == 0 and len(ea.reports()) == 2)
        [opened] = ea.received()
        assert opened["sizing"]["mode"] == "risk_percent"
        assert opened["sizing"]["of"] == "balance"
        _, fill, _ = ea.reports()[1]
        # 1% of 10000 = 100; |1.08512 − 1.08| / 0.00001 × 0.50 = 256 a lot → 0.39
        assert (fill["volume"], fill["leg"]) == ("0.39", 0)
        await ea.until(lambda: ea.unsent() == 0)
    await settle(container)
    [fill_record] = fills(await stored_records(container))
    assert fill_record.volume == D("0.39")
    state = await stored_state(container, device.pk)
    assert state is not None and state.platform == "paper"
    assert state.symbols == [
        {
            "name": "EURUSD",
            "tick_size": "0.00001",
            "tick_value": "0.5",
            "volume_min": "0.01",
            "volume_step": "0.01",
            "volume_max": "100",
        }
    ]


async def test_three_take_profits_open_three_legs(
    server: TestClient[Any, Any], container: Container, clock: FakeClock, tmp_path: Path
) -> None:
    device, credentials = await v11_device(
        container, tp_mode="split", tp_shares=["0.5", "0.3", "0.2"], lot_size=D("0.30")
    )
    async with run_device(
        server, clock, credentials, tmp_path / "j.sqlite3", quotes=euro(), settings=V11_SETTINGS
    ) as ea:
        await started(container, ea, device.pk)
        outcome = await publish(container, take_profit=["1.09", "1.095", "1.1"])
        await approve(container, outcome, OWNER)
        await ea.until(lambda: ea.unsent() == 0 and len(ea.reports()) == 4)
        [opened] = ea.received()
        assert [leg["take_profit"] for leg in opened["legs"]] == ["1.09", "1.095", "1.1"]
        legs = [(b["leg"], b["volume"]) for kind, b, _ in ea.reports() if kind == "fill"]
        assert legs == [(0, "0.15"), (1, "0.09"), (2, "0.06")]
        book = [ea.paper.holding(ticket) for ticket in (5000001, 5000002, 5000003)]
        assert [h.take_profit for h in book if h is not None] == [D("1.09"), D("1.095"), D("1.1")]
    await settle(container)
    records = fills(await stored_records(container))
    assert [(r.ticket, r.volume) for r in records] == [
        (5000001, D("0.15")),
        (5000002, D("0.09")),
        (5000003, D("0.06")),
    ]


async def test_tp1_hit_moves_the_other_leg_to_breakeven_and_the_message_shows_both(
    server: TestClient[Any, Any],
    container: Container,
    clock: FakeClock,
    fake_api: FakeBotAPI,
    tmp_path: Path,
) -> None:
    device, credentials = await v11_device(
        container,
        tp_mode="split",
        tp_shares=["0.5", "0.5"],
        lot_size=D("0.20"),
        breakeven_after_leg=0,
        breakeven_offset_points=10,
    )
    prices = path("1.08500", "1.09510")
    async with run_device(
        server, clock, credentials, tmp_path / "j.sqlite3", quotes=prices, settings=V11_SETTINGS
    ) as ea:
        await started(container, ea, device.pk)
        await approve(container, await publish(container), OWNER)  # TP 1.095 and 1.1
        await ea.until(lambda: ea.unsent() == 0 and len(ea.reports()) == 3)
        prices.advance()  # through TP1
        closed, moved = await events_stored(container, 2)
        assert (closed.event, closed.reason, closed.leg, closed.ticket) == (
            "closed",
            "tp",
            0,
            5000001,
        )
        # (1.09510 − 1.08512) / 0.00001 × 1 × 0.10
        assert (closed.price, closed.volume, closed.profit) == (D("1.0951"), D("0.1"), D("99.8"))
        assert (moved.event, moved.leg, moved.ticket, moved.stop_loss) == (
            "sl_moved",
            1,
            5000002,
            D("1.08522"),  # its open 1.08512 + 10 points
        )
        leg_1 = ea.paper.holding(5000002)
        assert leg_1 is not None and leg_1.stop_loss == D("1.08522")
        await ea.until(lambda: ea.unsent() == 0)
    await settle(container)
    shown = fake_api.last("editMessageText", OWNER)
    assert shown is not None
    assert "TP1 hit +99.80 USD" in shown.params["text"]
    assert "SL → breakeven" in shown.params["text"]
    notice = fake_api.sent("sendMessage", OWNER)[-1].params["text"]
    assert "closed (take profit)" in notice


async def test_a_trailing_stop_follows_a_rising_price_and_never_moves_back(
    server: TestClient[Any, Any], container: Container, clock: FakeClock, tmp_path: Path
) -> None:
    device, credentials = await v11_device(
        container,
        lot_size=D("0.10"),
        trailing_distance_points=200,
        trailing_step_points=50,
        trailing_start="at_open",
    )
    prices = path("1.08500", "1.08700", "1.08900", "1.08800", "1.08750", "1.09000")
    expected = ["1.08300", "1.08500", "1.08700", "1.08700", "1.08700", "1.08800"]
    async with run_device(
        server, clock, credentials, tmp_path / "j.sqlite3", quotes=prices, settings=V11_SETTINGS
    ) as ea:
        await started(container, ea, device.pk)
        await approve(container, await publish(container), OWNER)
        seen: list[Decimal | None] = []
        for level in expected:

            def at(level: str = level) -> bool:
                held = ea.paper.holding(5000001)
                return held is not None and held.stop_loss == D(level)

            await ea.until(at)
            await ea.cycles()  # a whole look more: nothing moves it further
            held = ea.paper.holding(5000001)
            assert held is not None
            seen.append(held.stop_loss)
            prices.advance()
        assert seen == [D(level) for level in expected]
        # Moves within 10 s of the last report wait: then the latest level goes out.
        [first] = await events_stored(container, 1)
        assert first.stop_loss == D("1.083")
        clock.advance(seconds=10)
        first, latest = await events_stored(container, 2)
        assert latest.stop_loss == D("1.088")
        await ea.until(lambda: ea.unsent() == 0)
    assert [e.event for e in await stored_events(container)] == ["sl_moved", "sl_moved"]


async def test_a_wide_spread_is_refused_with_90004(
    server: TestClient[Any, Any], container: Container, clock: FakeClock, tmp_path: Path
) -> None:
    device, credentials = await v11_device(container, max_spread_points=30)
    async with run_device(
        server,
        clock,
        credentials,
        tmp_path / "j.sqlite3",
        quotes=euro("1.08500", "1.08540"),
        settings=V11_SETTINGS,
    ) as ea:
        await started(container, ea, device.pk)
        await approve(container, await publish(container), OWNER)
        await ea.until(lambda: ea.unsent() == 0 and len(ea.reports()) == 2)
        [opened] = ea.received()
        assert opened["guards"] == {"max_spread_points": 30}
    await settle(container)
    records = await stored_records(container)
    assert [(r.kind, r.code) for r in records] == [("ack", None), ("error", 90004)]
    assert "spread is 40 points" in (records[1].message or "")
    with sqlite3.connect(tmp_path / "j.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM paper_book").fetchone() == (0,)


async def test_a_price_moved_from_the_signals_is_refused_with_90005(
    server: TestClient[Any, Any], container: Container, clock: FakeClock, tmp_path: Path
) -> None:
    device, credentials = await v11_device(container, max_distance_points=50)
    async with run_device(
        server, clock, credentials, tmp_path / "j.sqlite3", quotes=euro(), settings=V11_SETTINGS
    ) as ea:
        await started(container, ea, device.pk)
        # The provider's price when it made the signal (section 5.6).
        outcome = await publish(container, price="1.08400")
        await approve(container, outcome, OWNER)
        await ea.until(lambda: ea.unsent() == 0 and len(ea.reports()) == 2)
        [opened] = ea.received()
        assert opened["guards"] == {"reference_price": "1.084", "max_distance_points": 50}
    await settle(container)
    records = await stored_records(container)
    assert [(r.kind, r.code) for r in records] == [("ack", None), ("error", 90005)]
    assert "112 points from the signal's 1.084" in (records[1].message or "")


async def test_close_all_confirmed_in_the_chat_closes_only_the_agents_own_positions(
    server: TestClient[Any, Any],
    container: Container,
    clock: FakeClock,
    chat: Chat,
    tmp_path: Path,
) -> None:
    device, credentials = await v11_device(
        container, tp_mode="split", tp_shares=["0.5", "0.5"], lot_size=D("0.20")
    )
    async with run_device(
        server, clock, credentials, tmp_path / "j.sqlite3", quotes=euro(), settings=V11_SETTINGS
    ) as ea:
        await started(container, ea, device.pk)
        await approve(container, await publish(container), OWNER)
        await ea.until(lambda: ea.unsent() == 0 and len(ea.reports()) == 3)
        # A trade of the account's owner, by hand: not the agent's.
        foreign = ea.paper.open(
            OpenOrder("by hand", "EURUSD", Side.SELL, OrderType.MARKET, None, None, None, D("1"))
        )
        ea.quotes.set("EURUSD", "1.08600", "1.08612")

        async def both_legs_reported() -> bool:
            state = await stored_state(container, device.pk)
            return state is not None and len(state.positions) == 2

        await eventually(both_legs_reported)  # the agent's state: its own two, not the third
        calls = await chat.press(OWNER, press_data(DeviceAction.CLOSE_ALL, device.pk))
        assert any(
            "Close all 2 positions opened by signalbridge" in str(call.params.get("text"))
            for call in calls
        )
        await chat.press(OWNER, press_data(DeviceAction.CLOSE_ALL_CONFIRM, device.pk))
        closed = await events_stored(container, 2)
        assert [(e.event, e.reason, e.leg, e.ticket, e.volume) for e in closed] == [
            ("closed", "close_all", 0, 5000001, D("0.1")),
            ("closed", "close_all", 1, 5000002, D("0.1")),
        ]
        assert [e.profit for e in closed] == [D("8.8"), D("8.8")]  # 88 points × 0.10
        still = ea.paper.holding(foreign.ticket)
        assert still is not None and still.is_open
        assert ea.journal.holdings() == []
        received = ea.received()[-1]
        assert received == {
            "id": received["id"],
            "action": "close_all",
            "issued_at": received["issued_at"],
        }
        await ea.until(lambda: ea.unsent() == 0)
    await settle(container)
    states = {i.public_id: i.state for i in await stored_instructions(container)}
    assert states[received["id"]] == "acked"


async def test_events_are_idempotent_201_then_200_duplicate_and_409_on_other_content(
    server: TestClient[Any, Any], container: Container, clock: FakeClock, tmp_path: Path
) -> None:
    device, credentials = await v11_device(container, lot_size=D("0.10"))
    journal = tmp_path / "j.sqlite3"
    prices = path("1.08500", "1.09600")
    async with run_device(
        server, clock, credentials, journal, quotes=prices, settings=V11_SETTINGS
    ) as ea:
        await started(container, ea, device.pk)
        await approve(container, await publish(container), OWNER)
        await ea.until(lambda: ea.unsent() == 0 and len(ea.reports()) == 2)
        prices.advance()  # through the take profit 1.095
        [event] = await events_stored(container, 1)
        await ea.until(lambda: ea.unsent() == 0)
        assert ea.answers()[-1] == "201"
        body = ea.reports()[-1][1]
        assert (body["event"], body["reason"]) == ("closed", "tp")
    # The server stored the event but the agent never learnt it: sent again at the start.
    with sqlite3.connect(journal) as db:
        db.execute(
            "UPDATE outbox SET state = 'queued', record_id = NULL, answer = NULL "
            "WHERE kind = 'event'"
        )
    async with run_device(
        server, clock, credentials, journal, quotes=euro(), settings=V11_SETTINGS
    ) as again:
        await again.until(lambda: again.unsent() == 0)
        assert again.answers()[-1] == "200 duplicate"
        assert again.journal.reports()[-1].record_id == event.public_id
        other = dict(body, profit="1.00")
        with pytest.raises(ApiError) as conflict:
            await again.agent.client.report("event", encode(other))
        assert (conflict.value.status, conflict.value.code) == (409, "report_conflict")
    assert len(await stored_events(container)) == 1
