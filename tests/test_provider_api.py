"""The provider API (EA_PROTOCOL.md section 4): auth, create, idempotency, changes, errors."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.container import Container
from db.models import Approval, Signal
from tests.conftest import ADMIN_ID, FakeClock
from tests.fake_bot_api import FakeBotAPI
from tests.signals_support import (
    AUTH,
    PROVIDER_TOKEN,
    add_users,
    approvals_of,
    post_signal,
    signal_row,
)
from webhook_server import create_app

USERS = [1001, 1002, 1003]
BUY = {
    "symbol": "EURUSD",
    "side": "buy",
    "stop_loss": "1.0800",
    "take_profit": ["1.0950", "1.1000"],
    "comment": "Breakout",
}


@pytest.fixture
async def client(
    aiohttp_client: Any,
    container: Container,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FakeClock,
) -> TestClient[Any, Any]:
    await add_users(sessionmaker, [ADMIN_ID, *USERS], clock.now, admins=(ADMIN_ID,))
    return await aiohttp_client(create_app(container))


async def _drain(container: Container) -> None:
    await container.outbox_worker.drain()


def _assert_error(body: Any, code: str) -> None:
    assert body["error"] == code
    assert isinstance(body["message"], str) and body["message"]


# ---------------------------------------------------------------- auth


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Basic {PROVIDER_TOKEN}"},
        {"Authorization": f"Bearer {PROVIDER_TOKEN}x"},
        {"Authorization": ""},
    ],
)
async def test_missing_or_wrong_token_is_401(
    client: TestClient[Any, Any], headers: dict[str, str], fake_api: FakeBotAPI
) -> None:
    response = await client.post("/api/v1/signals", json=BUY, headers=headers)
    assert response.status == 401
    _assert_error(await response.json(), "unauthorized")
    assert "X-Server-Time" in response.headers
    assert fake_api.sent("sendMessage") == []


async def test_wrong_passphrase_and_unparsable_unauthenticated_body_are_401(
    client: TestClient[Any, Any],
) -> None:
    wrong = await client.post("/api/v1/signals", json={**BUY, "passphrase": "nope"})
    assert wrong.status == 401
    # Without credentials the body is not judged: junk is 401, not 400.
    junk = await client.post("/api/v1/signals", data=b"{not json")
    assert junk.status == 401
    _assert_error(await junk.json(), "unauthorized")
    numeric = await client.post("/api/v1/signals", json={**BUY, "passphrase": 12345})
    assert numeric.status == 401


async def test_get_needs_the_token(client: TestClient[Any, Any]) -> None:
    status, body = await post_signal(client, BUY)
    assert status == 201
    response = await client.get(f"/api/v1/signals/{body['id']}")
    assert response.status == 401


async def test_tradingview_alert_posts_as_is(
    client: TestClient[Any, Any],
    container: Container,
    fake_api: FakeBotAPI,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    # TradingView sends the alert message as text/plain and cannot set headers; numbers
    # from placeholders like {{close}} arrive unquoted.
    alert = (
        '{"passphrase": "' + PROVIDER_TOKEN + '", "symbol": "EURUSD", "side": "BUY",'
        ' "order_type": "limit", "entry": 1.08500, "stop_loss": 1.08, "take_profit": 1.0950,'
        ' "expires_in": 900, "comment": "TV alert"}'
    )
    response = await client.post(
        "/api/v1/signals", data=alert.encode(), headers={"Content-Type": "text/plain"}
    )
    assert response.status == 201, await response.text()
    body = await response.json()
    assert body["id"].startswith("sig_")
    assert body["recipients"] == 4
    row = await signal_row(sessionmaker, body["id"])
    assert (row.side, row.order_type) == ("buy", "limit")
    assert row.entry is not None and str(row.entry.normalize()) == "1.085"
    assert row.take_profit == ["1.095"]
    await _drain(container)
    assert len(fake_api.sent("sendMessage")) == 4


# ---------------------------------------------------------------- create


async def test_create_sends_to_every_reachable_user_and_get_reports(
    client: TestClient[Any, Any],
    container: Container,
    fake_api: FakeBotAPI,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FakeClock,
) -> None:
    await add_users(sessionmaker, [2001], clock.now, blocked=(2001,))
    status, body = await post_signal(client, BUY)
    assert status == 201
    assert set(body) == {"id", "recipients"}
    assert body["recipients"] == 4  # the admin and three users; the blocked one never
    await _drain(container)
    chats = {call.chat_id for call in fake_api.sent("sendMessage")}
    assert chats == {ADMIN_ID, *USERS}
    message = fake_api.last("sendMessage", USERS[0])
    assert (
        "EURUSD" in message.params["text"]
        and "1.08" in message.params["text"]
        and "Breakout" in message.params["text"]
    )
    buttons = message.params["reply_markup"]["inline_keyboard"][0]
    assert [b["text"] for b in buttons] == ["✅ Approve", "❌ Reject"]
    approvals = await approvals_of(sessionmaker, body["id"])
    assert all(a.message_id is not None for a in approvals.values())

    response = await client.get(f"/api/v1/signals/{body['id']}", headers=AUTH)
    assert response.status == 200
    got = await response.json()
    assert got["id"] == body["id"]
    assert got["state"] == "open"
    assert got["stop_loss"] == "1.08"
    assert got["take_profit"] == ["1.095", "1.1"]
    assert got["entry"] is None and got["order_type"] == "market"
    assert got["issued_at"] == "2026-01-01T12:00:00Z"
    assert got["expires_at"] == "2026-01-01T12:15:00Z"  # the configured default, 15 min
    assert got["recipients"] == 4
    assert got["counts"] == {
        "approvals": 0,
        "rejections": 0,
        "pending": 4,
        "expired": 0,
        "fills": 0,
        "errors": 0,
    }


async def test_decimals_are_exact(
    client: TestClient[Any, Any], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    body = json.dumps(
        {
            "symbol": "XAUUSD",
            "side": "sell",
            "order_type": "stop",
            "entry": 2345.6789012345,
            "stop_loss": "2400.1",
            "take_profit": [2300.123456789, "2200"],
        }
    )
    response = await client.post("/api/v1/signals", data=body, headers=AUTH)
    assert response.status == 201, await response.text()
    public_id = (await response.json())["id"]
    got = await (await client.get(f"/api/v1/signals/{public_id}", headers=AUTH)).json()
    assert got["entry"] == "2345.6789012345"
    assert got["take_profit"] == ["2300.123456789", "2200"]
    assert got["stop_loss"] == "2400.1"


async def test_client_id_makes_create_idempotent(
    client: TestClient[Any, Any],
    container: Container,
    fake_api: FakeBotAPI,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    first_status, first = await post_signal(client, {**BUY, "client_id": "tv-alert-0001"})
    await _drain(container)
    again_status, again = await post_signal(
        client, {**BUY, "stop_loss": "1.07", "client_id": "tv-alert-0001"}
    )
    await _drain(container)
    assert (first_status, again_status) == (201, 200)
    assert again == first
    assert len(fake_api.sent("sendMessage")) == 4
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Signal)) == 1


async def test_concurrent_identical_creates_make_one_signal(
    client: TestClient[Any, Any],
    container: Container,
    fake_api: FakeBotAPI,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    body = {**BUY, "client_id": "race-condition-1"}
    results = await asyncio.gather(*(post_signal(client, body) for _ in range(6)))
    await _drain(container)
    statuses = sorted(status for status, _ in results)
    assert statuses == [200, 200, 200, 200, 200, 201]
    assert len({answer["id"] for _, answer in results}) == 1
    assert all(answer["recipients"] == 4 for _, answer in results)
    sent_to = [call.chat_id for call in fake_api.sent("sendMessage")]
    assert sorted(sent_to) == sorted([ADMIN_ID, *USERS])
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Signal)) == 1
        assert await session.scalar(select(func.count()).select_from(Approval)) == 4


# ---------------------------------------------------------------- validation


async def test_invalid_json_is_400(client: TestClient[Any, Any]) -> None:
    for raw in (b"{not json", b"[1, 2]", b'"text"', b'{"entry": NaN}', b"\xff\xfe"):
        response = await client.post("/api/v1/signals", data=raw, headers=AUTH)
        assert response.status == 400, raw
        _assert_error(await response.json(), "invalid_json")


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"symbol", "side"}),
        ({"symbol": "EUR/USD", "side": "buy"}, {"symbol"}),
        ({"symbol": "X" * 33, "side": "buy"}, {"symbol"}),
        ({"symbol": "EURUSD", "side": "long"}, {"side"}),
        ({"symbol": "EURUSD", "side": "buy", "order_type": "iceberg"}, {"order_type"}),
        ({"symbol": "EURUSD", "side": "buy", "order_type": "limit"}, {"entry"}),
        ({"symbol": "EURUSD", "side": "buy", "order_type": "stop", "entry": "abc"}, {"entry"}),
        ({"symbol": "EURUSD", "side": "buy", "entry": "1.08"}, {"entry"}),
        (
            {
                "symbol": "EURUSD",
                "side": "buy",
                "order_type": "limit",
                "entry": "1.085",
                "stop_loss": "1.09",
            },
            {"stop_loss"},
        ),
        (
            {
                "symbol": "EURUSD",
                "side": "buy",
                "order_type": "limit",
                "entry": "1.085",
                "take_profit": ["1.09", "1.08"],
            },
            {"take_profit"},
        ),
        (
            {
                "symbol": "EURUSD",
                "side": "sell",
                "order_type": "limit",
                "entry": "1.085",
                "stop_loss": "1.08",
                "take_profit": "1.09",
            },
            {"stop_loss", "take_profit"},
        ),
        (
            {"symbol": "EURUSD", "side": "buy", "stop_loss": "1.1", "take_profit": "1.0"},
            {"take_profit"},
        ),
        ({"symbol": "EURUSD", "side": "buy", "stop_loss": "-1"}, {"stop_loss"}),
        ({"symbol": "EURUSD", "side": "buy", "stop_loss": 0}, {"stop_loss"}),
        ({"symbol": "EURUSD", "side": "buy", "stop_loss": True}, {"stop_loss"}),
        ({"symbol": "EURUSD", "side": "buy", "stop_loss": "1.12345678901"}, {"stop_loss"}),
        ({"symbol": "EURUSD", "side": "buy", "take_profit": ["1.1"] * 11}, {"take_profit"}),
        ({"symbol": "EURUSD", "side": "buy", "expires_in": 5}, {"expires_in"}),
        ({"symbol": "EURUSD", "side": "buy", "expires_in": 10**9}, {"expires_in"}),
        ({"symbol": "EURUSD", "side": "buy", "expires_in": "soon"}, {"expires_in"}),
        ({"symbol": "EURUSD", "side": "buy", "comment": "x" * 501}, {"comment"}),
        ({"symbol": "EURUSD", "side": "buy", "client_id": "short"}, {"client_id"}),
        ({"symbol": "EURUSD", "side": "buy", "client_id": "has spaces in it"}, {"client_id"}),
        ({"symbol": "EURUSD", "side": "buy", "stoploss": "1.08"}, {"stoploss"}),
    ],
)
async def test_invalid_fields_are_422(
    client: TestClient[Any, Any],
    fake_api: FakeBotAPI,
    body: dict[str, Any],
    fields: set[str],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    status, answer = await post_signal(client, body)
    assert status == 422, answer
    _assert_error(answer, "invalid_request")
    assert set(answer["fields"]) == fields
    assert all(isinstance(problem, str) and problem for problem in answer["fields"].values())
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Signal)) == 0
    assert fake_api.sent("sendMessage") == []


async def test_unknown_path_and_wrong_method(client: TestClient[Any, Any]) -> None:
    response = await client.delete("/api/v1/signals", headers=AUTH)
    assert response.status == 405
    _assert_error(await response.json(), "method_not_allowed")
    response = await client.post("/api/v1/signals/sig_x/explode", headers=AUTH)
    assert response.status == 404
    _assert_error(await response.json(), "not_found")


async def test_body_over_64_kib_is_413(client: TestClient[Any, Any]) -> None:
    response = await client.post(
        "/api/v1/signals", data=b"{" + b" " * (64 * 1024) + b"}", headers=AUTH
    )
    assert response.status == 413
    _assert_error(await response.json(), "body_too_large")


# ---------------------------------------------------------------- changes


async def _create(client: TestClient[Any, Any], **extra: Any) -> str:
    status, body = await post_signal(client, {**BUY, **extra})
    assert status == 201, body
    return str(body["id"])


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", ""),
        ("POST", "/modify"),
        ("POST", "/close"),
        ("POST", "/cancel"),
    ],
)
async def test_unknown_signal_is_404(client: TestClient[Any, Any], method: str, path: str) -> None:
    body = {"stop_loss": "1.07"} if path == "/modify" else None
    response = await client.request(
        method, f"/api/v1/signals/sig_doesnotexist{path}", json=body, headers=AUTH
    )
    assert response.status == 404
    _assert_error(await response.json(), "unknown_signal")


async def test_modify_close_cancel(
    client: TestClient[Any, Any], sessionmaker: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    public_id = await _create(client)
    clock.advance(minutes=1)
    response = await client.post(
        f"/api/v1/signals/{public_id}/modify",
        json={"stop_loss": "1.0850", "take_profit": "1.12"},
        headers=AUTH,
    )
    assert response.status == 200, await response.text()
    got = await response.json()
    assert (got["stop_loss"], got["take_profit"]) == ("1.085", ["1.12"])
    assert got["modified_at"] == "2026-01-01T12:01:00Z"

    # Only the SL: the TPs stay; a TP below the SL of a buy is refused.
    response = await client.post(
        f"/api/v1/signals/{public_id}/modify", json={"stop_loss": "1.13"}, headers=AUTH
    )
    assert response.status == 422
    assert set((await response.json())["fields"]) == {"take_profit"}
    response = await client.post(f"/api/v1/signals/{public_id}/modify", json={}, headers=AUTH)
    assert response.status == 422
    response = await client.post(
        f"/api/v1/signals/{public_id}/modify", json={"stop_loss": None}, headers=AUTH
    )
    assert (await response.json())["stop_loss"] is None

    response = await client.post(
        f"/api/v1/signals/{public_id}/close", json={"fraction": "0.5"}, headers=AUTH
    )
    assert response.status == 200
    assert (await response.json())["closed_fraction"] == "0.5"
    response = await client.post(
        f"/api/v1/signals/{public_id}/close", json={"fraction": 0.5}, headers=AUTH
    )
    got = await response.json()
    assert (got["closed_fraction"], got["state"]) == ("0.75", "open")
    for bad in ("0", "1.5", "-0.1", "half", True):
        response = await client.post(
            f"/api/v1/signals/{public_id}/close", json={"fraction": bad}, headers=AUTH
        )
        assert response.status == 422, bad
        assert set((await response.json())["fields"]) == {"fraction"}
    # No fraction closes everything.
    response = await client.post(f"/api/v1/signals/{public_id}/close", headers=AUTH)
    assert response.status == 200
    row = await signal_row(sessionmaker, public_id)
    assert row.state == "closed" and row.closed_fraction == 1


async def test_changes_to_an_ended_signal_are_409(
    client: TestClient[Any, Any], container: Container, clock: FakeClock
) -> None:
    cancelled = await _create(client)
    response = await client.post(f"/api/v1/signals/{cancelled}/cancel", headers=AUTH)
    assert response.status == 200
    assert (await response.json())["state"] == "cancelled"
    closed = await _create(client)
    response = await client.post(f"/api/v1/signals/{closed}/close", json={}, headers=AUTH)
    assert (await response.json())["state"] == "closed"
    expired = await _create(client, expires_in=60)
    clock.advance(seconds=61)
    await container.signals.expire_due(container.sessionmaker)

    for public_id, state in ((cancelled, "cancelled"), (closed, "closed"), (expired, "expired")):
        got = await (await client.get(f"/api/v1/signals/{public_id}", headers=AUTH)).json()
        assert got["state"] == state
        for path, body in (
            ("/modify", {"stop_loss": "1.07"}),
            ("/close", {"fraction": "0.5"}),
            ("/cancel", None),
        ):
            response = await client.post(
                f"/api/v1/signals/{public_id}{path}", json=body, headers=AUTH
            )
            assert response.status == 409, (state, path)
            _assert_error(await response.json(), "signal_closed")


async def test_cancel_takes_no_fields_and_passphrase_works_for_changes(
    client: TestClient[Any, Any],
) -> None:
    public_id = await _create(client)
    response = await client.post(
        f"/api/v1/signals/{public_id}/cancel", json={"passphrase": PROVIDER_TOKEN, "why": "x"}
    )
    assert response.status == 422
    assert set((await response.json())["fields"]) == {"why"}
    response = await client.post(
        f"/api/v1/signals/{public_id}/cancel", json={"passphrase": PROVIDER_TOKEN}
    )
    assert response.status == 200
