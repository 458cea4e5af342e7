"""The device endpoints (EA_PROTOCOL.md section 3): long polling and report validation."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import insert, update

from bot.chat.callbacks import DeviceAction, DeviceCb
from bot.container import Container
from bot.domain.devices import DeviceDTO, DeviceService
from db.models import Instruction, UserSettings
from tests.conftest import Chat, FakeClock
from tests.devices_support import OWNER_ID, EAClient, add_device, error_of, until
from tests.loop_support import (
    approve,
    configure,
    device_ea,
    instructions,
    publish,
    report,
    report_id,
    settle,
)
from tests.signals_support import AUTH
from webhook_server import create_app


@pytest.fixture
async def server(container: Container, aiohttp_client: Any) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(container))


@pytest.fixture
async def device_and_ea(
    server: TestClient[Any, Any], container: Container, clock: FakeClock
) -> tuple[DeviceDTO, EAClient]:
    device, credentials = await add_device(container)
    return device, EAClient(server, clock, credentials.device_id, credentials.secret)


@pytest.fixture
def ea(device_and_ea: tuple[DeviceDTO, EAClient]) -> EAClient:
    return device_and_ea[1]


class PendingProbe:
    """Stands in for the signal loop's query: counts checks, returns what a test puts in."""

    def __init__(self) -> None:
        self.calls = 0
        self.items: list[dict[str, Any]] = []

    async def __call__(self, _session: Any, _device: Any, _now: Any) -> list[dict[str, Any]]:
        self.calls += 1
        return list(self.items)


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> PendingProbe:
    pending = PendingProbe()
    monkeypatch.setattr("bot.web.ea.pending_instructions", pending)
    return pending


# --- GET /api/v1/ea/instructions ---


@pytest.mark.parametrize(
    "query",
    ["?wait=26", "?wait=-1", "?wait=abc", "?wait=1.5", "?wait=", "?wait=1&wait=2", "?wait=100"],
)
async def test_wait_out_of_range_is_422(ea: EAClient, query: str) -> None:
    response = await ea.get("/api/v1/ea/instructions" + query)
    assert await error_of(response) == (422, "invalid_request")
    assert set((await response.json())["fields"]) == {"wait"}


async def test_no_wait_answers_at_once(ea: EAClient) -> None:
    response = await ea.get("/api/v1/ea/instructions")
    assert response.status == 200
    assert (await response.json())["instructions"] == []


async def test_long_poll_answers_empty_after_wait(ea: EAClient, container: Container) -> None:
    hub = container.device_hub
    poll = asyncio.create_task(ea.get("/api/v1/ea/instructions?wait=1"))
    await asyncio.wait_for(until(lambda: hub.waiting == 1), timeout=5)
    response = await asyncio.wait_for(poll, timeout=10)
    assert response.status == 200
    body = await response.json()
    assert body["instructions"] == []
    assert body["server_time"] == int(ea.clock.now.timestamp())
    assert hub.waiting == 0


async def test_notify_wakes_a_waiting_poll_at_once(
    device_and_ea: tuple[DeviceDTO, EAClient], container: Container, probe: PendingProbe
) -> None:
    device, ea = device_and_ea
    hub = container.device_hub
    poll = asyncio.create_task(ea.get("/api/v1/ea/instructions?wait=25"))
    await asyncio.wait_for(until(lambda: hub.waiting == 1), timeout=5)
    assert probe.calls == 1
    probe.items = [{"id": "ins_1", "signal_id": "sig_1", "action": "cancel", "symbol": "EURUSD"}]
    hub.notify(device.pk)
    # Far sooner than the 25 s wait: the notification woke it.
    response = await asyncio.wait_for(poll, timeout=5)
    assert (await response.json())["instructions"] == probe.items
    assert probe.calls == 2


async def test_notify_for_another_device_does_not_answer(
    device_and_ea: tuple[DeviceDTO, EAClient], container: Container, probe: PendingProbe
) -> None:
    _device, ea = device_and_ea
    other, _ = await add_device(container, name="Other")
    hub = container.device_hub
    poll = asyncio.create_task(ea.get("/api/v1/ea/instructions?wait=1"))
    await asyncio.wait_for(until(lambda: hub.waiting == 1), timeout=5)
    probe.items = [{"id": "ins_2"}]  # pending for the other device, say
    hub.notify(other.pk)
    response = await asyncio.wait_for(poll, timeout=10)
    # Not woken, and never re-checked: nothing was announced for this device.
    assert (await response.json())["instructions"] == []
    assert probe.calls == 1


async def test_idle_device_polls_without_checking_until_notified(
    device_and_ea: tuple[DeviceDTO, EAClient], container: Container, probe: PendingProbe
) -> None:
    device, ea = device_and_ea
    for _ in range(3):
        assert (await ea.get("/api/v1/ea/instructions?wait=0")).status == 200
    assert probe.calls == 1
    probe.items = [{"id": "ins_3"}]
    container.device_hub.notify(device.pk)
    for _ in range(2):  # pending stays pending until reported: checked every time
        body = await (await ea.get("/api/v1/ea/instructions?wait=0")).json()
        assert body["instructions"] == [{"id": "ins_3"}]
    assert probe.calls == 3


async def test_shutdown_answers_waiting_polls(
    ea: EAClient, server: TestClient[Any, Any], container: Container
) -> None:
    hub = container.device_hub
    poll = asyncio.create_task(ea.get("/api/v1/ea/instructions?wait=25"))
    await asyncio.wait_for(until(lambda: hub.waiting == 1), timeout=5)
    await server.app.shutdown()  # what the runner does first when the process stops
    response = await asyncio.wait_for(poll, timeout=5)
    assert (await response.json())["instructions"] == []


# --- reports ---

VALID = {
    "ack": {"report_id": "r-00000001", "instruction_id": "ins_01", "ticket": 5, "message": "ok"},
    "fill": {
        "report_id": "r-00000002",
        "instruction_id": "ins_01",
        "ticket": 5012345,
        "price": "1.08512",
        "volume": "0.10",
        "profit": "-12.50",
        "executed_at": "2026-01-01T12:00:00Z",
    },
    "error": {"report_id": "r-00000003", "instruction_id": "ins_01", "code": 10019, "message": ""},
}


@pytest.mark.parametrize("kind", ["ack", "fill", "error"])
async def test_valid_report_names_an_unknown_instruction(ea: EAClient, kind: str) -> None:
    response = await ea.post_json(f"/api/v1/exec/{kind}", VALID[kind])
    assert await error_of(response) == (404, "unknown_instruction")


async def test_minimal_ack(ea: EAClient) -> None:
    body = {"report_id": "r-00000009", "instruction_id": "ins_01"}
    assert await error_of(await ea.post_json("/api/v1/exec/ack", body)) == (
        404,
        "unknown_instruction",
    )


@pytest.mark.parametrize("body", [b"", b"{not json", b"\xff\xfe", b"[1, 2"])
async def test_body_not_json_is_400(ea: EAClient, body: bytes) -> None:
    response = await ea.request("POST", "/api/v1/exec/fill", body)
    assert await error_of(response) == (400, "invalid_json")


async def test_body_not_an_object_is_422(ea: EAClient) -> None:
    response = await ea.post_json("/api/v1/exec/ack", ["report_id"])
    assert await error_of(response) == (422, "invalid_request")
    assert (await response.json())["fields"] == {"body": "must be a JSON object"}


@pytest.mark.parametrize(
    ("kind", "missing"),
    [
        ("ack", {"report_id", "instruction_id"}),
        ("fill", {"report_id", "instruction_id", "ticket", "price", "volume"}),
        ("error", {"report_id", "instruction_id", "code", "message"}),
    ],
)
async def test_every_missing_field_is_named(ea: EAClient, kind: str, missing: set[str]) -> None:
    response = await ea.post_json(f"/api/v1/exec/{kind}", {})
    assert await error_of(response) == (422, "invalid_request")
    fields = (await response.json())["fields"]
    assert set(fields) == missing
    assert all(problem == "is required" for problem in fields.values())


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [
        ("ack", "report_id", "short"),
        ("ack", "report_id", "has space in it"),
        ("ack", "report_id", "r" * 65),
        ("ack", "report_id", 12345678),
        ("ack", "instruction_id", ""),
        ("ack", "ticket", -1),
        ("ack", "ticket", 1.5),
        ("ack", "ticket", "5"),
        ("ack", "ticket", True),
        ("ack", "message", "m" * 501),
        ("ack", "message", 7),
        ("fill", "price", 1.08512),
        ("fill", "price", "0"),
        ("fill", "price", "-1.0"),
        ("fill", "price", "1e3"),
        ("fill", "price", "NaN"),
        ("fill", "volume", "0.00"),
        ("fill", "volume", " 0.10"),
        ("fill", "profit", 12.5),
        ("fill", "profit", "12,50"),
        ("fill", "executed_at", "2026-01-01T12:00:00"),
        ("fill", "executed_at", "yesterday"),
        ("fill", "ticket", None),
        ("error", "code", "10019"),
        ("error", "code", 1.0),
        ("error", "message", None),
    ],
)
async def test_wrong_field_is_422(ea: EAClient, kind: str, field: str, value: Any) -> None:
    body = {**VALID[kind], field: value}
    response = await ea.post_json(f"/api/v1/exec/{kind}", body)
    assert await error_of(response) == (422, "invalid_request")
    assert set((await response.json())["fields"]) == {field}


async def test_reports_are_signed_before_anything_else(ea: EAClient) -> None:
    response = await ea.client.post("/api/v1/exec/fill", data=b"{not json")
    assert await error_of(response) == (401, "missing_credentials")
    response = await ea.request("POST", "/api/v1/exec/fill", b"{}", secret="w" * 43)
    assert await error_of(response) == (401, "invalid_signature")


async def test_negative_profit_and_zone_offsets_accepted(ea: EAClient) -> None:
    body = {**VALID["fill"], "profit": "-0.01", "executed_at": "2026-01-01T14:00:00+02:00"}
    response = await ea.post_json("/api/v1/exec/fill", body)
    assert await error_of(response) == (404, "unknown_instruction")


async def test_status_of_a_signal_never_sent_is_404(ea: EAClient) -> None:
    response = await ea.get("/api/v1/exec/status/sig_0123456789")
    assert await error_of(response) == (404, "unknown_signal")
    unsigned = await ea.client.get("/api/v1/exec/status/sig_0123456789")
    assert await error_of(unsigned) == (401, "missing_credentials")


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/api/v1/exec/ack", 405, "method_not_allowed"),
        ("POST", "/api/v1/ea/instructions", 405, "method_not_allowed"),
        ("GET", "/api/v1/ea/nothing", 404, "not_found"),
    ],
)
async def test_wrong_method_or_path(
    ea: EAClient, method: str, path: str, status: int, code: str
) -> None:
    response = await ea.request(method, path)
    assert await error_of(response) == (status, code)


async def test_error_bodies_are_json_with_a_message(ea: EAClient) -> None:
    response = await ea.request("POST", "/api/v1/exec/ack", b"{")
    assert response.content_type == "application/json"
    body = json.loads(await response.text())
    assert set(body) == {"error", "message"} and body["message"]


async def test_resume_in_the_chat_wakes_the_devices_poll(
    device_and_ea: tuple[DeviceDTO, EAClient],
    container: Container,
    probe: PendingProbe,
    chat: Chat,
) -> None:
    device, ea = device_and_ea
    pause = DeviceCb(action=DeviceAction.PAUSE, device=device.pk).pack()
    resume = DeviceCb(action=DeviceAction.RESUME, device=device.pk).pack()
    await chat.press(OWNER_ID, pause)
    hub = container.device_hub
    poll = asyncio.create_task(ea.get("/api/v1/ea/instructions?wait=25"))
    await asyncio.wait_for(until(lambda: hub.waiting == 1), timeout=5)
    probe.items = [{"id": "ins_4", "action": "open"}]  # what resuming makes pending
    await chat.press(OWNER_ID, resume)
    response = await asyncio.wait_for(poll, timeout=5)
    assert (await response.json())["instructions"] == probe.items


# --- what is pending, known without a read ---


async def test_devices_idle_at_start_up_poll_without_a_read(
    container: Container, aiohttp_client: Any, clock: FakeClock, probe: PendingProbe
) -> None:
    """A restarted server learns in one query which devices have nothing pending."""
    idle, idle_credentials = await add_device(container, name="Idle")
    busy, busy_credentials = await add_device(container, name="Busy")
    outcome = await publish(container)
    await approve(container, outcome, OWNER_ID)  # an open for each, before the start
    async with container.sessionmaker.begin() as session:
        await session.execute(
            update(Instruction).where(Instruction.device_id == idle.pk).values(state="acked")
        )
    server = await aiohttp_client(create_app(container))
    idle_ea = EAClient(server, clock, idle_credentials.device_id, idle_credentials.secret)
    busy_ea = EAClient(server, clock, busy_credentials.device_id, busy_credentials.secret)
    assert container.device_hub.is_idle(idle.pk) and not container.device_hub.is_idle(busy.pk)
    for _ in range(3):
        assert await instructions(idle_ea) == []
    assert probe.calls == 0
    await instructions(busy_ea)
    assert probe.calls == 1


async def test_every_change_that_makes_work_pending_reaches_an_idle_device(
    server: TestClient[Any, Any], container: Container, clock: FakeClock, chat: Chat
) -> None:
    """Issuing and device changes notify the hub after their commit: a device known to
    have nothing pending is told at its next poll, never left idle with work waiting."""
    device, ea = await device_ea(container, server, clock, OWNER_ID)
    hub = container.device_hub

    async def idle_then(change: Any) -> list[dict[str, Any]]:
        assert await instructions(ea) == []
        assert hub.is_idle(device.pk)
        await change()
        await settle(container)
        served = await instructions(ea)
        for instruction in served:
            ack = {"report_id": report_id(), "instruction_id": instruction["id"]}
            assert (await report(ea, "ack", ack)).status == 201
        return served

    # An approval.
    outcome = await publish(container)
    [opened] = await idle_then(lambda: approve(container, outcome, OWNER_ID))
    assert opened["action"] == "open"
    # The provider's changes to a signal the device opened.
    signal_id = outcome.signal.public_id
    for action, body in (("modify", {"stop_loss": "1.081"}), ("close", {"fraction": "0.5"})):

        async def change(action: str = action, body: dict[str, Any] = body) -> None:
            path = f"/api/v1/signals/{signal_id}/{action}"
            assert (await server.post(path, json=body, headers=AUTH)).status == 200

        [followup] = await idle_then(change)
        assert followup["action"] == action
    # A paused device is served nothing; resuming it serves what waited.
    second = await publish(container)
    await approve(container, second, OWNER_ID)
    await configure_paused(container, device, True)
    [resumed] = await idle_then(lambda: configure_paused(container, device, False))
    assert resumed["signal_id"] == second.signal.public_id
    # An open past the device's max age waits for a longer max age.
    await configure(container, device, max_signal_age="5")
    third = await publish(container)
    await approve(container, third, OWNER_ID)
    clock.advance(seconds=10)
    [aged] = await idle_then(lambda: configure(container, device, max_signal_age="600"))
    assert aged["signal_id"] == third.signal.public_id
    # Auto-approve issues at the signal's arrival.
    async with container.sessionmaker.begin() as session:
        await session.execute(
            insert(UserSettings).values(
                user_id=OWNER_ID,
                auto_approve=True,
                notify_fills=True,
                notify_errors=True,
                updated_at=clock.now,
            )
        )
    [auto] = await idle_then(lambda: publish(container))
    assert auto["action"] == "open"


async def configure_paused(container: Container, device: DeviceDTO, paused: bool) -> None:
    async with container.sessionmaker.begin() as session:
        await DeviceService(session, container).set_paused(device.owner_id, device.pk, paused)
