"""The side server's common ground: /healthz, X-Server-Time, JSON errors."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from bot.container import Container
from tests.conftest import FakeClock
from webhook_server import create_app

ClientFactory = Any


@pytest.fixture
async def client(container: Container, aiohttp_client: ClientFactory) -> TestClient[Any, Any]:
    app = create_app(container)
    app.router.add_post("/echo-size", _echo_size)
    app.router.add_get("/boom", _boom)
    return await aiohttp_client(app)


async def _echo_size(request: web.Request) -> web.Response:
    return web.json_response({"size": len(await request.read())})


async def _boom(_request: web.Request) -> web.Response:
    raise RuntimeError("secret internals")


def assert_server_time(headers: Any) -> None:
    # The server's own clock (the one X-Timestamp is checked against): the tests' FakeClock.
    assert int(headers["X-Server-Time"]) == int(FakeClock().now.timestamp())


async def test_healthz_ok(client: TestClient[Any, Any]) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}
    assert_server_time(response.headers)


async def test_healthz_503_when_database_fails(
    client: TestClient[Any, Any], container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(_engine: Any) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr("webhook_server.ping", broken)
    response = await client.get("/healthz")
    assert response.status == 503
    body = await response.json()
    assert body["error"] == "database_unavailable"
    assert "disk gone" not in await response.text()
    assert_server_time(response.headers)


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/no/such/path", 404, "not_found"),
        ("POST", "/healthz", 405, "method_not_allowed"),
        ("GET", "/boom", 500, "internal_error"),
    ],
)
async def test_errors_are_json(
    client: TestClient[Any, Any], method: str, path: str, status: int, code: str
) -> None:
    response = await client.request(method, path)
    assert response.status == status
    assert response.content_type == "application/json"
    body = await response.json()
    assert body["error"] == code
    assert body["message"]
    assert "secret internals" not in body["message"]
    assert_server_time(response.headers)


async def test_body_limit(client: TestClient[Any, Any]) -> None:
    ok = await client.post("/echo-size", data=b"x" * (64 * 1024))
    assert ok.status == 200
    assert await ok.json() == {"size": 64 * 1024}

    too_big = await client.post("/echo-size", data=b"x" * (64 * 1024 + 1))
    assert too_big.status == 413
    assert (await too_big.json())["error"] == "body_too_large"
    assert_server_time(too_big.headers)

    async def chunks() -> Any:
        for _ in range(70):
            yield b"y" * 1024

    chunked = await client.post("/echo-size", data=chunks())
    assert chunked.status == 413
    assert (await chunked.json())["error"] == "body_too_large"
