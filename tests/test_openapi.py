"""The OpenAPI document (bot/web/openapi.json) is true: it lists exactly the app's routes,
it is served unsigned and cacheable, and every answer of a whole flow matches it."""

from __future__ import annotations

import json
from typing import Any

import pytest
import schemathesis
from aiogram import Dispatcher
from aiohttp import web
from aiohttp.test_utils import TestClient

from bot.container import Container
from bot.intake.webhook import WebhookIntake
from bot.web.openapi import document_bytes
from tests.conftest import FakeClock
from tests.devices_support import EAClient
from tests.fake_bot_api import FakeBotAPI
from tests.loop_support import approve, device_ea, fill_body, publish, report_id, settle
from tests.openapi_support import DOCUMENT, Exchange, documented_operations, problems, recording
from tests.signals_support import AUTH, add_users
from tests.webhook_support import WEBHOOK_OVERRIDES
from tests.wire_support import position, state_body
from webhook_server import create_app

OWNER = 3401


def app_operations(app: web.Application) -> set[tuple[str, str]]:
    return {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method != "*"
    }


def test_the_document_is_valid_openapi_3_1() -> None:
    assert DOCUMENT["openapi"] == "3.1.0"
    schemathesis.openapi.from_dict(DOCUMENT).validate()
    for operation in (op for item in DOCUMENT["paths"].values() for op in item.values()):
        assert all(
            "X-Server-Time" in _response(answer).get("headers", {})
            for answer in operation["responses"].values()
        ), operation["operationId"]


def _response(answer: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in answer:
        return dict(DOCUMENT["components"]["responses"][answer["$ref"].rsplit("/", 1)[1]])
    return answer


def test_every_route_is_documented_and_every_documented_route_exists(
    container: Container,
) -> None:
    assert app_operations(create_app(container)) == documented_operations()


async def test_webhook_mode_adds_only_telegram_s_route(
    container: Container, dp: Dispatcher
) -> None:
    intake = WebhookIntake(container, dp)
    try:
        app = create_app(container, intake=intake)
        extra = app_operations(app) - documented_operations()
        assert extra == {("POST", container.settings.webhook.path)}
    finally:
        await intake.close()


async def test_served_unsigned_and_cacheable(aiohttp_client: Any, container: Container) -> None:
    client: TestClient[Any, Any] = await aiohttp_client(create_app(container))
    response = await client.get("/api/v1/openapi.json")
    assert response.status == 200
    assert response.content_type == "application/json"
    assert await response.read() == document_bytes()
    assert "max-age" in response.headers["Cache-Control"]
    etag = response.headers["ETag"]
    again = await client.get("/api/v1/openapi.json", headers={"If-None-Match": etag})
    assert again.status == 304
    assert "X-Server-Time" in again.headers


async def test_every_answer_of_a_whole_flow_matches_the_document(
    aiohttp_client: Any, container: Container, clock: FakeClock, fake_api: FakeBotAPI
) -> None:
    await add_users(container.sessionmaker, [OWNER], clock.now)
    app = create_app(container)
    seen = recording(app)
    client: TestClient[Any, Any] = await aiohttp_client(app)
    _device, ea = await device_ea(container, client, clock, OWNER)
    await _provider_calls(client)
    await _device_calls(container, client, ea)
    for target in ("/healthz", "/metrics", "/api/v1/openapi.json", "/no/such/path"):
        await client.get(target)
    await client.post("/healthz")
    etag = (await client.get("/api/v1/openapi.json")).headers["ETag"]
    await client.get("/api/v1/openapi.json", headers={"If-None-Match": etag})

    found = [problem for exchange in seen for problem in problems(exchange)]
    assert found == []
    answered = {(e.method, e.route, e.status) for e in seen}
    # Every documented operation was answered, with its main statuses.
    assert {(m, r) for m, r, _s in answered} >= documented_operations()
    for status in (200, 201, 304, 400, 401, 404, 405, 409, 413, 422):
        assert any(s == status for _m, _r, s in answered), status


async def _provider_calls(client: TestClient[Any, Any]) -> None:
    body = {"symbol": "EURUSD", "side": "buy", "stop_loss": "1.08", "client_id": "flow-0001"}
    created = await client.post("/api/v1/signals", json=body, headers=AUTH)
    assert created.status == 201
    assert (await client.post("/api/v1/signals", json=body, headers=AUTH)).status == 200
    signal_id = (await created.json())["id"]
    await client.post("/api/v1/signals", json={"symbol": "EURUSD"}, headers=AUTH)  # 422
    await client.post("/api/v1/signals", data=b"{oops", headers=AUTH)  # 400
    await client.post("/api/v1/signals", json=body)  # 401
    await client.post("/api/v1/signals", data=b" " * (65 * 1024), headers=AUTH)  # 413
    await client.get(f"/api/v1/signals/{signal_id}", headers=AUTH)
    await client.get("/api/v1/signals/sig_nope", headers=AUTH)  # 404
    await client.post(
        f"/api/v1/signals/{signal_id}/modify", json={"stop_loss": "1.07"}, headers=AUTH
    )
    await client.post(f"/api/v1/signals/{signal_id}/close", json={"fraction": "0.5"}, headers=AUTH)
    await client.post(f"/api/v1/signals/{signal_id}/cancel", headers=AUTH)
    await client.post(f"/api/v1/signals/{signal_id}/cancel", headers=AUTH)  # 409


async def _device_calls(container: Container, client: TestClient[Any, Any], ea: EAClient) -> None:
    outcome = await publish(container, take_profit=["1.095", "1.1"])
    await approve(container, outcome, OWNER)
    [opened] = (await (await ea.get("/api/v1/ea/instructions")).json())["instructions"]
    ack = {"report_id": report_id(), "instruction_id": opened["id"], "ticket": 7}
    assert (await ea.post_json("/api/v1/exec/ack", ack)).status == 201
    assert (await ea.post_json("/api/v1/exec/ack", ack)).status == 200
    await ea.post_json("/api/v1/exec/ack", ack | {"message": "other"})  # 409
    fill = fill_body(opened["id"], executed_at="2026-01-01T12:00:00+02:00", profit="-1.5")
    assert (await ea.post_json("/api/v1/exec/fill", fill)).status == 201
    await _v11_calls(ea, opened["id"])
    public_id = outcome.signal.public_id
    for path, change in (("modify", {"stop_loss": "1.07"}), ("close", {"fraction": "0.5"})):
        await client.post(f"/api/v1/signals/{public_id}/{path}", json=change, headers=AUTH)
    await client.post(f"/api/v1/signals/{public_id}/cancel", headers=AUTH)
    await settle(container)
    followups = (await (await ea.get("/api/v1/ea/instructions?wait=0")).json())["instructions"]
    assert {item["action"] for item in followups} == {"modify", "close", "cancel"}
    error = {"report_id": report_id(), "instruction_id": followups[0]["id"], "code": 10004}
    assert (await ea.post_json("/api/v1/exec/error", error | {"message": "requote"})).status == 201
    await ea.post_json("/api/v1/exec/ack", {"report_id": report_id(), "instruction_id": "ins_x"})
    await ea.post_json("/api/v1/exec/fill", {"report_id": "short"})  # 422
    await ea.request("POST", "/api/v1/exec/ack", b"[1,")  # 400
    await ea.get("/api/v1/ea/instructions?wait=99")  # 422
    await client.get("/api/v1/ea/instructions")  # 401
    await ea.request("POST", "/api/v1/exec/ack", b" " * (65 * 1024))  # 413
    await ea.get(f"/api/v1/exec/status/{opened['signal_id']}")
    await ea.get("/api/v1/exec/status/sig_never")  # 404


async def _v11_calls(ea: EAClient, open_id: str) -> None:
    """Protocol v1.1: the device's state and a position event, with their answers."""
    state = state_body(positions=[position(open_id)])
    assert (await ea.post_json("/api/v1/ea/state", state)).status == 200
    await ea.post_json("/api/v1/ea/state", state | {"protocol": "1.0"})  # 422
    event = {
        "report_id": report_id(),
        "instruction_id": open_id,
        "ticket": 7,
        "event": "sl_moved",
        "stop_loss": None,
    }
    assert (await ea.post_json("/api/v1/exec/event", event)).status == 201
    assert (await ea.post_json("/api/v1/exec/event", event)).status == 200
    await ea.post_json("/api/v1/exec/event", event | {"stop_loss": "1.07"})  # 409
    await ea.post_json("/api/v1/exec/event", event | {"report_id": report_id(), "leg": -1})
    await ea.post_json("/api/v1/exec/event", event | {"instruction_id": "ins_nowhere"})  # 404


def test_problems_finds_what_departs() -> None:
    headers = {"X-Server-Time": "1", "Content-Type": "application/json"}
    good = Exchange("GET", "/healthz", 200, headers, json.dumps({"status": "ok"}).encode())
    assert problems(good) == []
    wrong_body = Exchange("GET", "/healthz", 200, headers, b'{"status": "fine"}')
    assert problems(wrong_body)
    undocumented = Exchange("GET", "/healthz", 418, headers, b"{}")
    assert problems(undocumented) == ["GET /healthz → 418: status not documented"]
    no_time = Exchange("GET", "/healthz", 200, {"Content-Type": "application/json"}, good.body)
    assert problems(no_time) == ["GET /healthz → 200: header X-Server-Time missing"]
    error = {"error": "invalid_request", "message": "x"}  # 422 needs fields
    lacking = Exchange("POST", "/api/v1/signals", 422, headers, json.dumps(error).encode())
    assert problems(lacking)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # Webhook settings, for the webhook-mode route test; the other tests ignore them.
    return WEBHOOK_OVERRIDES
