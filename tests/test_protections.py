"""Protections (issue 14): symbols allowed and denied, trading hours, max open positions and
the daily loss limit each skip an open (stored, never served, named on the signal's
message); the loss limit tells the owner once a UTC day, and Resume lifts it for the day."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.chat.callbacks import ProtectionAction, ProtectionCb
from bot.container import Container
from db.models import Device
from tests.conftest import Chat, FakeClock
from tests.devices_support import OTHER_ID, EAClient, add_user, buttons
from tests.fake_bot_api import FakeBotAPI
from tests.loop_support import (
    approve,
    device_ea,
    fill_body,
    instructions,
    publish,
    report,
    report_id,
    settle,
    stored_instructions,
)
from tests.signals_support import add_users
from tests.wire_support import owner_device, position, send_state, set_device, state_body
from webhook_server import create_app

OWNER = 3801
LOSS_NOTICE = (
    "🛑 <b>Demo</b>: today's loss 110.00 USD reached the daily limit of 100.00 USD. New "
    "signals are skipped on this device until 00:00 UTC.\nPress Resume to trade again today "
    "anyway."
)


@pytest.fixture
async def device(
    container: Container, aiohttp_client: Any, clock: FakeClock
) -> tuple[EAClient, int]:
    return await owner_device(container, aiohttp_client, clock, OWNER)


async def approved(container: Container, **fields: Any) -> None:
    await approve(container, await publish(container, **fields), OWNER)
    await settle(container)


async def states(container: Container) -> list[tuple[str, str | None]]:
    return [(i.state, i.skip_reason) for i in await stored_instructions(container)]


def last_message(fake_api: FakeBotAPI) -> str:
    return str(fake_api.last("editMessageText", OWNER).params["text"])


async def test_symbols_allowed_and_denied(
    container: Container, device: tuple[EAClient, int], fake_api: FakeBotAPI
) -> None:
    ea, pk = device
    await set_device(container, pk, symbols_denied=["xauusd"], symbol_suffix=".m")
    await approved(container, symbol="XAUUSD", stop_loss=None, take_profit=[])
    assert await instructions(ea) == []
    assert await states(container) == [("skipped", "symbol_not_allowed")]
    assert "• Demo: skipped: symbol not allowed" in last_message(fake_api)
    # The provider's symbol decides, not the mapped one (EURUSD.m here).
    await set_device(container, pk, symbols_denied=[], symbols_allowed=["EURUSD"])
    await approved(container, symbol="EURUSD")
    await approved(container, symbol="GBPUSD", stop_loss=None, take_profit=[])
    assert [i["symbol"] for i in await instructions(ea)] == ["EURUSD.m"]
    assert (await states(container))[1:] == [("pending", None), ("skipped", "symbol_not_allowed")]


async def test_trading_hours(
    container: Container, device: tuple[EAClient, int], fake_api: FakeBotAPI, clock: FakeClock
) -> None:
    ea, pk = device
    # 2026-01-01 12:00 UTC is a Thursday (3).
    await set_device(
        container, pk, trading_hours={"days": [0, 1, 2, 3, 4], "start": "13:00", "end": "17:00"}
    )
    await approved(container)
    assert await instructions(ea) == []
    assert "• Demo: skipped: outside trading hours" in last_message(fake_api)
    # Over midnight: 22:00 Wednesday to 13:00 Thursday holds Thursday noon...
    await set_device(container, pk, trading_hours={"days": [2], "start": "22:00", "end": "13:00"})
    await approved(container)
    assert len(await instructions(ea)) == 1
    # ...but not when only Thursday's own evening is allowed.
    await set_device(container, pk, trading_hours={"days": [3], "start": "22:00", "end": "13:00"})
    await approved(container)
    assert [s for s, _ in await states(container)] == ["skipped", "pending", "skipped"]


async def test_max_open_positions_counts_the_state_opens_in_flight_and_legs(
    container: Container, device: tuple[EAClient, int], fake_api: FakeBotAPI, clock: FakeClock
) -> None:
    ea, pk = device
    await set_device(container, pk, max_open_positions=3)
    # An earlier open of two legs: two positions on the account.
    legs = [position("ins_earlier1", leg=0), position("ins_earlier1", leg=1, ticket=7)]
    await send_state(ea, state_body(positions=legs))
    await approved(container)  # a third position: issued
    await approved(container)  # a fourth (the pending one counts): skipped
    assert await states(container) == [("pending", None), ("skipped", "max_open_positions")]
    assert "• Demo: skipped: too many open positions" in last_message(fake_api)
    # The earlier open closed (a new state without it), and the issued one filled since
    # that state: one held, room for two more.
    [issued] = await instructions(ea)
    clock.advance(seconds=5)
    await send_state(ea)
    clock.advance(seconds=5)
    assert (await report(ea, "fill", fill_body(issued["id"]))).status == 201
    for _ in range(3):
        await approved(container)
    assert [s for s, _ in await states(container)] == [
        "filled",
        "skipped",
        "pending",
        "pending",
        "skipped",
    ]
    # An open split into legs adds one position per leg: with 3 held and a limit of 4,
    # two legs do not fit, one does.
    await set_device(container, pk, max_open_positions=4, tp_mode="split")
    await approved(container, take_profit=["1.095", "1.1"])
    assert (await states(container))[-1] == ("skipped", "max_open_positions")
    await approved(container, take_profit=["1.095"])
    assert (await states(container))[-1] == ("pending", None)


async def test_daily_loss_limit_skips_tells_once_and_resume_lifts_it(
    container: Container,
    device: tuple[EAClient, int],
    fake_api: FakeBotAPI,
    clock: FakeClock,
    chat: Chat,
) -> None:
    ea, pk = device
    await set_device(container, pk, daily_loss_limit_minor=10_000)  # 100.00 USD
    await approved(container)
    [opened] = await instructions(ea)
    assert (await report(ea, "fill", fill_body(opened["id"]))).status == 201
    # Closed today: −50.00 (a stop loss); floating: −60.00. Yesterday's close does not count.
    for profit, when in (("-50", "2026-01-01T09:00:00Z"), ("-500", "2025-12-31T23:00:00Z")):
        event = {
            "report_id": report_id(),
            "instruction_id": opened["id"],
            "ticket": 1,
            "event": "closed",
            "reason": "sl",
            "price": "1.08",
            "volume": "0.01",
            "profit": profit,
            "executed_at": when,
        }
        assert (await ea.post_json("/api/v1/exec/event", event)).status == 201
    await send_state(ea, state_body(positions=[position("ins_other01", profit="-60.00")]))
    await settle(container)
    told_before = len(fake_api.sent("sendMessage", OWNER))

    await approved(container)
    await approved(container)
    assert [s for s, _ in await states(container)][1:] == ["skipped", "skipped"]
    assert "• Demo: skipped: daily loss limit" in last_message(fake_api)
    notices = [
        c for c in fake_api.sent("sendMessage", OWNER)[told_before:] if "🛑" in c.params["text"]
    ]
    assert [c.params["text"] for c in notices] == [LOSS_NOTICE]  # once, not per signal
    resume_data = buttons(notices[0])["▶️ Resume today"]
    assert resume_data == ProtectionCb(action=ProtectionAction.RESUME, device_pk=pk).pack()

    # Someone else's press changes nothing.
    await add_user(container, OTHER_ID)
    answered = await chat.press(OTHER_ID, resume_data)
    assert any(c.method == "answerCallbackQuery" for c in answered)
    async with container.sessionmaker() as session:
        stored = await session.get(Device, pk)
        assert stored is not None and stored.loss_limit_resumed_at is None

    await chat.press(OWNER, resume_data, message_id=notices[0].result["message_id"])
    async with container.sessionmaker() as session:
        stored = await session.get(Device, pk)
        assert stored is not None and stored.loss_limit_resumed_at == clock.now
    await approved(container)
    assert [s for s, _ in await states(container)][-1] == "pending"
    # A second Resume the same day has nothing to lift.
    again = await chat.press(OWNER, resume_data)
    answer = [c for c in again if c.method == "answerCallbackQuery"][-1]
    assert "not holding anything" in answer.params["text"]

    # The next UTC day the limit holds again, and is told again.
    clock.advance(days=1)
    await send_state(ea, state_body(positions=[position("ins_other01", profit="-150.00")]))
    await approved(container)
    assert [s for s, _ in await states(container)][-1] == "skipped"
    await settle(container)
    later = [c for c in fake_api.sent("sendMessage", OWNER) if "🛑" in c.params["text"]]
    assert len(later) == 2
    assert "today's loss 150.00 USD" in later[-1].params["text"]


async def test_a_device_without_a_state_has_only_symbol_and_hour_protections(
    container: Container, aiohttp_client: Any, clock: FakeClock
) -> None:
    server: TestClient[Any, Any] = await aiohttp_client(create_app(container))
    await add_users(container.sessionmaker, [OWNER], clock.now)
    dto, ea = await device_ea(container, server, clock, OWNER, "Old")
    await set_device(container, dto.pk, max_open_positions=0, daily_loss_limit_minor=0)
    await approved(container)
    [opened] = await instructions(ea)
    assert "sizing" not in opened
    await set_device(container, dto.pk, symbols_denied=["EURUSD"])
    await approved(container)
    assert await states(container) == [("pending", None), ("skipped", "symbol_not_allowed")]
