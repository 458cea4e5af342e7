"""The device endpoints (EA_PROTOCOL.md section 3): long polling and report validation."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.chat.callbacks import DeviceAction, DeviceCb
from bot.container import Container
from bot.domain.devices import DeviceDTO
from tests.conftest import Chat, FakeClock
from tests.devices_support import OWNER_ID, EAClient, add_device, error_of, until
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
