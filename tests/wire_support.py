"""Helpers for protocol v1.1 tests: a device's state body, sending it, setting v1.1 columns."""

from __future__ import annotations

import copy
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import select, update

from bot.container import Container
from db.models import Device, DeviceState, PositionEvent
from tests.conftest import FakeClock
from tests.devices_support import EAClient
from tests.loop_support import device_ea
from tests.signals_support import add_users
from webhook_server import create_app

EURUSD = {
    "name": "EURUSD",
    "tick_size": "0.00001",
    "tick_value": "1.00",
    "volume_min": "0.01",
    "volume_step": "0.01",
    "volume_max": "100",
}


def state_body(**changes: Any) -> dict[str, Any]:
    """A valid 5.1 state; keyword arguments replace top-level parts."""
    body: dict[str, Any] = {
        "protocol": "1.1",
        "ea": {"name": "SignalBridge", "version": "1.1.0", "platform": "mt5", "build": 4620},
        "account": {
            "currency": "USD",
            "balance": "10000.00",
            "equity": "10012.50",
            "margin_free": "9800.00",
            "leverage": 100,
            "trade_allowed": True,
            "company": "Broker Ltd",
            "server": "Broker-Demo",
        },
        "positions": [],
        "symbols": [copy.deepcopy(EURUSD)],
    }
    body.update(changes)
    return body


def position(instruction_id: str, **changes: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "ticket": 5012345,
        "instruction_id": instruction_id,
        "leg": 0,
        "symbol": "EURUSD",
        "side": "buy",
        "volume": "0.10",
        "open_price": "1.08512",
        "stop_loss": "1.08000",
        "take_profit": "1.09500",
        "profit": "12.50",
    }
    item.update(changes)
    return item


async def owner_device(
    container: Container,
    aiohttp_client: Any,
    clock: FakeClock,
    owner_id: int,
    *,
    name: str = "Demo",
    v11: bool = True,
) -> tuple[EAClient, int]:
    """The side server, a stored owner and their device's signing client (and pk); with
    ``v11`` the device has sent a v1.1 state (``state_body()``)."""
    server: TestClient[Any, Any] = await aiohttp_client(create_app(container))
    await add_users(container.sessionmaker, [owner_id], clock.now)
    device, ea = await device_ea(container, server, clock, owner_id, name)
    if v11:
        await send_state(ea)
    return ea, device.pk


async def send_state(ea: EAClient, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = await ea.post_json("/api/v1/ea/state", state_body() if body is None else body)
    assert response.status == 200, await response.text()
    return dict(await response.json())


async def set_device(container: Container, device_pk: int, **values: Any) -> None:
    """Set v1.1 columns directly (the /devices settings UI is another helper's)."""
    async with container.sessionmaker.begin() as session:
        await session.execute(update(Device).where(Device.id == device_pk).values(**values))


async def stored_state(container: Container, device_pk: int) -> DeviceState | None:
    async with container.sessionmaker() as session:
        return await session.get(DeviceState, device_pk)


async def stored_events(container: Container) -> list[PositionEvent]:
    async with container.sessionmaker() as session:
        query = select(PositionEvent).order_by(PositionEvent.id)
        return list((await session.scalars(query)).all())
