"""The provider's optional ``price`` (EA_PROTOCOL 5.6): validated like the other prices,
stored as the signal's reference price, sent to v1.1 devices as guards.reference_price."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.container import Container
from tests.conftest import FakeClock
from tests.loop_support import device_ea, instructions, settle
from tests.signals_support import add_users, post_signal, signal_row
from tests.wire_support import send_state, set_device
from webhook_server import create_app

OWNER = 3601


@pytest.fixture
async def server(container: Container, aiohttp_client: Any, clock: FakeClock) -> Any:
    await add_users(container.sessionmaker, [OWNER], clock.now)
    return await aiohttp_client(create_app(container))


@pytest.mark.parametrize(
    ("price", "problem"),
    [
        ("0", "must be a positive price"),
        ("abc", 'must be a decimal number, e.g. "1.0850"'),
        ("1.12345678901", "has more than 10 decimal places"),
        (True, 'must be a decimal number, e.g. "1.0850"'),
    ],
)
async def test_bad_price_is_422_and_stores_nothing(
    server: TestClient[Any, Any], price: Any, problem: str
) -> None:
    status, body = await post_signal(server, {"symbol": "EURUSD", "side": "buy", "price": price})
    assert (status, body["error"], body["fields"]) == (422, "invalid_request", {"price": problem})


async def test_price_reaches_the_v11_open_as_reference_price(
    container: Container, server: TestClient[Any, Any], clock: FakeClock
) -> None:
    device, ea = await device_ea(container, server, clock, OWNER, "Demo")
    await send_state(ea)
    await set_device(container, device.pk, max_spread_points=30, max_distance_points=50)
    status, body = await post_signal(
        server, {"symbol": "EURUSD", "side": "buy", "stop_loss": "1.08", "price": "1.08520"}
    )
    assert status == 201
    stored = await signal_row(container.sessionmaker, body["id"])
    assert stored.reference_price == Decimal("1.08520")
    await settle(container)
    async with container.sessionmaker.begin() as session:
        await container.signals.decide(session, signal_id=stored.id, user_id=OWNER, approve=True)
    [opened] = await instructions(ea)
    assert opened["guards"] == {
        "max_spread_points": 30,
        "reference_price": "1.0852",
        "max_distance_points": 50,
    }


async def test_without_a_price_no_distance_guard(
    container: Container, server: TestClient[Any, Any], clock: FakeClock
) -> None:
    device, ea = await device_ea(container, server, clock, OWNER, "Demo")
    await send_state(ea)
    await set_device(container, device.pk, max_spread_points=30, max_distance_points=50)
    status, body = await post_signal(server, {"symbol": "EURUSD", "side": "buy"})
    assert status == 201
    stored = await signal_row(container.sessionmaker, body["id"])
    assert stored.reference_price is None
    async with container.sessionmaker.begin() as session:
        await container.signals.decide(session, signal_id=stored.id, user_id=OWNER, approve=True)
    [opened] = await instructions(ea)
    assert opened["guards"] == {"max_spread_points": 30}
