"""The whole loop: provider → approvals in the chat → a long-polling device (the device
agent, on paper) → reports → live status in the chat → the provider's changes → the
device's follow-ups."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from signalbridge_agent.paper import QuoteTable
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.chat.callbacks import SignalVote, Vote
from bot.container import Container
from bot.domain.signal_rules import wire_time
from tests.agent_support import run_device
from tests.conftest import Chat, FakeClock
from tests.devices_support import add_device, until
from tests.fake_bot_api import FakeBotAPI
from tests.loop_support import configure, settle, stored_instructions
from tests.signals_support import AUTH, add_users, approvals_of
from webhook_server import create_app

ALICE, BOB, CAROL = 3101, 3102, 3103


@pytest.fixture
async def server(container: Container, aiohttp_client: Any) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(container))


def press(signal_pk: int, approve: bool) -> str:
    return SignalVote(action=Vote.APPROVE if approve else Vote.REJECT, signal=signal_pk).pack()


async def test_whole_loop(
    server: TestClient[Any, Any],
    container: Container,
    chat: Chat,
    fake_api: FakeBotAPI,
    clock: FakeClock,
    sessionmaker: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    await add_users(sessionmaker, [ALICE, BOB, CAROL], clock.now)
    device, credentials = await add_device(container, ALICE, "Office")
    await configure(container, device, symbol_suffix=".m", lot_size="0.10")
    bob_device, bob_credentials = await add_device(container, BOB, "Laptop")
    # The paper broker's market: Office buys at the ask.
    quotes = QuoteTable()
    quotes.set("EURUSD.m", "1.08500", "1.08512")

    async with (
        run_device(server, clock, credentials, tmp_path / "office.sqlite3", quotes=quotes) as ea,
        run_device(server, clock, bob_credentials, tmp_path / "laptop.sqlite3") as bob_ea,
    ):
        # Both devices are already long-polling when the signal arrives.
        await asyncio.wait_for(until(lambda: container.device_hub.waiting == 2), 5)

        response = await server.post(
            "/api/v1/signals",
            json={
                "symbol": "EURUSD",
                "side": "buy",
                "stop_loss": "1.08000",
                "take_profit": ["1.09500", "1.10000"],
                "comment": "London open",
                "expires_in": 900,
            },
            headers=AUTH,
        )
        assert response.status == 201
        created = await response.json()
        assert created["recipients"] == 3
        await settle(container)
        messages = {user: fake_api.last("sendMessage", user) for user in (ALICE, BOB, CAROL)}
        assert all(
            call is not None and "EURUSD" in call.params["text"] for call in messages.values()
        )
        assert ea.received() == []  # nothing is pending before an approval

        approvals = await approvals_of(sessionmaker, created["id"])
        signal_pk = approvals[ALICE].signal_id
        mid = {user: int(call.result["message_id"]) for user, call in messages.items()}

        clock.advance(seconds=30)
        await chat.press(ALICE, press(signal_pk, True), message_id=mid[ALICE])
        await chat.press(BOB, press(signal_pk, False), message_id=mid[BOB])

        # The waiting poll answers as soon as the approval commits, well before its 5 s.
        await ea.until(lambda: len(ea.received()) == 1, timeout=2)
        [opened] = ea.received()
        approved_at = clock.now
        assert opened == {
            "id": opened["id"],
            "signal_id": created["id"],
            "action": "open",
            "symbol": "EURUSD.m",
            "side": "buy",
            "order_type": "market",
            "entry": None,
            "stop_loss": "1.08",
            "take_profit": ["1.095", "1.1"],
            "volume": "0.1",
            "comment": "London open",
            "issued_at": wire_time(approved_at),
            "expires_at": wire_time(approved_at - timedelta(seconds=30) + timedelta(seconds=300)),
        }
        assert opened["id"].startswith("ins_")

        # The agent acks on receipt, then fills on paper at the ask; both are accepted.
        await ea.until(lambda: ea.unsent() == 0 and len(ea.reports()) == 2)
        (ack_kind, ack, ack_state), (fill_kind, fill, fill_state) = ea.reports()
        assert (ack_kind, ack, ack_state) == (
            "ack",
            {"report_id": f"{opened['id']}-ack", "instruction_id": opened["id"]},
            "accepted",
        )
        assert (fill_kind, fill_state) == ("fill", "accepted")
        assert ea.answers() == ["201", "201"]  # stored, neither a duplicate
        assert {k: fill[k] for k in ("report_id", "price", "volume")} == {
            "report_id": f"{opened['id']}-fill",
            "price": "1.08512",
            "volume": "0.10",
        }
        # Bob rejected: his device gets nothing.
        assert await bob_ea.agent.client.poll(0) == []
        assert bob_ea.received() == []
        await settle(container)

        notices = [c.params["text"] for c in fake_api.sent("sendMessage", ALICE)][1:]
        assert notices == ["✅ <b>Office</b>: EURUSD.m buy filled 0.1 @ <code>1.08512</code>"]
        last_edit = fake_api.last("editMessageText", ALICE)
        assert last_edit is not None and last_edit.params["message_id"] == mid[ALICE]
        assert "• Office: filled 0.1 @ <code>1.08512</code>" in last_edit.params["text"]
        assert await ea.agent.client.poll(0) == []  # reported on: no longer pending
        assert len(ea.received()) == 1
        assert [i.state for i in await stored_instructions(container)] == ["filled"]

        # Carol lets it expire.
        clock.advance(minutes=16)
        await container.signals.expire_due(sessionmaker)
        await settle(container)
        assert (await approvals_of(sessionmaker, created["id"]))[CAROL].decision == "expired"
        carol_edit = fake_api.last("editMessageText", CAROL)
        assert carol_edit is not None and "xpired" in carol_edit.params["text"]

        # The market moves up; the provider moves the stop loss and closes half.
        quotes.set("EURUSD.m", "1.09010", "1.09022")
        signal_url = f"/api/v1/signals/{created['id']}"
        moved = await server.post(
            f"{signal_url}/modify", json={"stop_loss": "1.08500"}, headers=AUTH
        )
        assert moved.status == 200
        halved = await server.post(f"{signal_url}/close", json={"fraction": "0.5"}, headers=AUTH)
        assert halved.status == 200
        await ea.until(lambda: len(ea.received()) == 3 and ea.unsent() == 0)
        await ea.until(lambda: len(ea.reports()) == 6 and ea.unsent() == 0)
        modify, close = ea.received()[1:]
        assert modify == {
            "id": modify["id"],
            "signal_id": created["id"],
            "action": "modify",
            "symbol": "EURUSD.m",
            "stop_loss": "1.085",
            "take_profit": ["1.095", "1.1"],
            "issued_at": wire_time(clock.now),
        }
        assert close == {
            "id": close["id"],
            "signal_id": created["id"],
            "action": "close",
            "symbol": "EURUSD.m",
            "fraction": "0.5",
            "issued_at": wire_time(clock.now),
        }
        # Half of 0.10 closed at the bid: (1.09010 - 1.08512) × 0.05 lots × 100 000.
        _, closed, closed_state = ea.reports()[5]
        assert closed_state == "accepted"
        assert ea.answers()[5] == "201"
        assert {k: closed[k] for k in ("price", "volume", "profit")} == {
            "price": "1.09010",
            "volume": "0.05",
            "profit": "24.90",
        }
        assert await bob_ea.agent.client.poll(0) == []
        assert bob_ea.received() == []
        assert bob_device.pk != device.pk
        await settle(container)
        last_edit = fake_api.last("editMessageText", ALICE)
        assert last_edit is not None
        assert "• Office: closed, profit 24.9" in last_edit.params["text"]

        status = await ea.agent.client.request("GET", f"/api/v1/exec/status/{created['id']}")
        assert status.status == 200
        records = status.body["records"]
        # Acks on receipt, the modify's "done" ack, and the two fills.
        assert [(r["kind"], r["action"]) for r in records] == [
            ("ack", "open"),
            ("fill", "open"),
            ("ack", "modify"),
            ("ack", "modify"),
            ("ack", "close"),
            ("fill", "close"),
        ]
        assert records[1]["price"] == "1.08512" and records[1]["volume"] == "0.1"
        assert records[3]["message"] == "stop loss 1.085, take profit 1.095 set on ticket 5000001"
    counts = await (await server.get(signal_url, headers=AUTH)).json()
    assert (counts["counts"]["fills"], counts["counts"]["errors"]) == (2, 0)
