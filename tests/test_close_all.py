"""close_all (EA_PROTOCOL 5.3; bot/domain/devices.py ``issue_close_all``) for a v1.1
device only, served as {"id", "action", "issued_at"}, waking an idle long poll; its
reports work without a signal, and the closed events it causes (reason close_all) land
on the opens' signal messages."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.container import Container
from bot.domain.devices import DeviceService, issue_close_all
from bot.domain.errors import ConflictError, ErrorCode, NotFoundError
from bot.execution.wire import idle_devices
from tests.conftest import FakeClock
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
    stored_records,
)
from tests.signals_support import add_users
from tests.wire_support import send_state
from webhook_server import create_app

OWNER, OTHER = 3901, 3902


@pytest.fixture
async def server(container: Container, aiohttp_client: Any, clock: FakeClock) -> Any:
    await add_users(container.sessionmaker, [OWNER, OTHER], clock.now)
    return await aiohttp_client(create_app(container))


async def close_all(container: Container, owner: int, device_pk: int) -> str:
    async with container.sessionmaker.begin() as session:
        issued = await issue_close_all(
            session,
            owner_id=owner,
            device_pk=device_pk,
            now=container.clock(),
            wake=container.device_hub.notify,
        )
        return issued.public_id


async def test_only_the_owners_v11_device_gets_close_all(
    container: Container, server: TestClient[Any, Any], clock: FakeClock
) -> None:
    device, ea = await device_ea(container, server, clock, OWNER, "Demo")
    with pytest.raises(ConflictError) as not_v11:
        await close_all(container, OWNER, device.pk)
    assert not_v11.value.code is ErrorCode.CLOSE_ALL_NEEDS_UPDATE
    await send_state(ea)
    with pytest.raises(NotFoundError):
        await close_all(container, OTHER, device.pk)
    async with container.sessionmaker.begin() as session:
        await DeviceService(session, container).revoke(OWNER, device.pk)
    with pytest.raises(NotFoundError):
        await close_all(container, OWNER, device.pk)
    assert await stored_instructions(container) == []


async def test_close_all_is_served_wakes_the_poll_and_takes_reports(
    container: Container, server: TestClient[Any, Any], clock: FakeClock, fake_api: FakeBotAPI
) -> None:
    device, ea = await device_ea(container, server, clock, OWNER, "Demo")
    await send_state(ea)
    assert await instructions(ea) == []  # idle: the hub knows it
    waiting = asyncio.create_task(instructions(ea, wait=10))
    await asyncio.sleep(0.05)
    public_id = await close_all(container, OWNER, device.pk)
    served = await asyncio.wait_for(waiting, 5)
    assert served == [{"id": public_id, "action": "close_all", "issued_at": "2026-01-01T12:00:00Z"}]
    # The hub's start-up read sees it pending too (close_all has no signal to join).
    async with container.sessionmaker() as session:
        assert device.pk not in await idle_devices(session, clock.now)
    ack = {"report_id": report_id(), "instruction_id": public_id}
    assert (await report(ea, "ack", ack)).status == 201
    assert (await report(ea, "ack", ack)).status == 200
    assert await instructions(ea) == []
    error = {"report_id": report_id(), "instruction_id": public_id, "code": 90007}
    assert (await report(ea, "error", error | {"message": "nothing to close"})).status == 201
    await settle(container)
    assert (
        "(close_all) failed, code 90007: nothing to close"
        in (fake_api.sent("sendMessage", OWNER)[-1].params["text"])
    )
    records = await stored_records(container)
    assert [(r.kind, r.signal_id) for r in records] == [("ack", None), ("error", None)]
    [stored] = await stored_instructions(container)
    assert (stored.action, stored.signal_id, stored.symbol, stored.state) == (
        "close_all",
        None,
        None,
        "errored",
    )


async def test_closed_by_close_all_shows_on_the_signal(
    container: Container, server: TestClient[Any, Any], clock: FakeClock, fake_api: FakeBotAPI
) -> None:
    device, ea = await device_ea(container, server, clock, OWNER, "Demo")
    await send_state(ea)
    outcome = await publish(container)
    await approve(container, outcome, OWNER)
    [opened] = await instructions(ea)
    assert (await report(ea, "fill", fill_body(opened["id"]))).status == 201
    public_id = await close_all(container, OWNER, device.pk)
    [served] = await instructions(ea)
    assert served["id"] == public_id
    assert (
        await report(ea, "ack", {"report_id": report_id(), "instruction_id": public_id})
    ).status == 201
    event = {
        "report_id": report_id(),
        "instruction_id": opened["id"],
        "ticket": 5012345,
        "event": "closed",
        "reason": "close_all",
        "price": "1.0843",
        "volume": "0.01",
        "profit": "-8.20",
    }
    assert (await ea.post_json("/api/v1/exec/event", event)).status == 201
    await settle(container)
    assert (
        "• Demo: filled 0.01 @ <code>1.08512</code> · closed by Close all −8.20 USD"
        in (fake_api.last("editMessageText", OWNER).params["text"])
    )
    status = await ea.get(f"/api/v1/exec/status/{outcome.signal.public_id}")
    assert status.status == 200
    assert [r["kind"] for r in (await status.json())["records"]] == ["fill"]
