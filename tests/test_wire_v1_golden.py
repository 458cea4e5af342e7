"""The exact bytes a v1 device reads (EA_PROTOCOL.md section 3): pinned before protocol
v1.1 changed bot/execution/wire.py, so a device that never sent a state keeps getting
them unchanged, whatever its v1.1 settings say."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import update

from bot.container import Container
from db.models import Device
from tests.conftest import FakeClock
from tests.devices_support import EAClient
from tests.loop_support import approve, device_ea, publish, report, report_id
from tests.signals_support import add_users
from webhook_server import create_app

OWNER = 3301
POLL = "/api/v1/ea/instructions?wait=0"


@pytest.fixture
async def ea(container: Container, aiohttp_client: Any, clock: FakeClock) -> tuple[EAClient, int]:
    server: TestClient[Any, Any] = await aiohttp_client(create_app(container))
    await add_users(container.sessionmaker, [OWNER], clock.now)
    device, client = await device_ea(container, server, clock, OWNER)
    return client, device.pk


async def _raw(ea: EAClient) -> bytes:
    response = await ea.get(POLL)
    assert response.status == 200
    return await response.read()


def _expected(template: str, **ids: str) -> bytes:
    return template.replace("'", '"').format(**ids).encode()


@pytest.mark.parametrize("v11_settings", [False, True])
async def test_v1_instructions_byte_for_byte(
    container: Container, ea: tuple[EAClient, int], clock: FakeClock, v11_settings: bool
) -> None:
    client, device_pk = ea
    if v11_settings:
        # Settings of v1.1 change nothing for a device that never sent a state.
        async with container.sessionmaker.begin() as session:
            await session.execute(
                update(Device)
                .where(Device.id == device_pk)
                .values(
                    sizing_mode="risk_percent",
                    risk_percent=1,
                    tp_mode="split",
                    breakeven_after_leg=0,
                    trailing_distance_points=200,
                    max_spread_points=30,
                    max_distance_points=50,
                )
            )
    outcome = await publish(container, comment="golden", expires_in=900)
    await approve(container, outcome, OWNER)
    body = await _raw(client)
    sig = outcome.signal.public_id
    open_id = body.decode().split('"id": "')[1].split('"')[0]
    server_time = int(clock.now.timestamp())
    assert body == _expected(
        "{{'instructions': [{{'id': '{open}', 'signal_id': '{sig}', 'action': 'open', "
        "'symbol': 'EURUSD', 'side': 'buy', 'order_type': 'market', 'entry': null, "
        "'stop_loss': '1.08', 'take_profit': ['1.095', '1.1'], 'volume': '0.01', "
        "'comment': 'golden', 'issued_at': '2026-01-01T12:00:00Z', "
        "'expires_at': '2026-01-01T12:05:00Z'}}], 'server_time': {now}}}",
        open=open_id,
        sig=sig,
        now=str(server_time),
    )
    ack = await report(client, "ack", {"report_id": report_id(), "instruction_id": open_id})
    assert ack.status == 201

    async with container.sessionmaker.begin() as session:
        await container.signals.modify(
            session, {"stop_loss": "1.081", "take_profit": ["1.096"]}, signal_id=outcome.signal.id
        )
    async with container.sessionmaker.begin() as session:
        await container.signals.close(session, {"fraction": "0.5"}, signal_id=outcome.signal.id)
    async with container.sessionmaker.begin() as session:
        await container.signals.cancel(session, signal_id=outcome.signal.id)
    body = await _raw(client)
    ids = [part.split('"')[0] for part in body.decode().split('"id": "')[1:]]
    assert body == _expected(
        "{{'instructions': [{{'id': '{m}', 'signal_id': '{sig}', 'action': 'modify', "
        "'symbol': 'EURUSD', 'stop_loss': '1.081', 'take_profit': ['1.096'], "
        "'issued_at': '2026-01-01T12:00:00Z'}}, "
        "{{'id': '{c}', 'signal_id': '{sig}', 'action': 'close', 'symbol': 'EURUSD', "
        "'fraction': '0.5', 'issued_at': '2026-01-01T12:00:00Z'}}, "
        "{{'id': '{x}', 'signal_id': '{sig}', 'action': 'cancel', 'symbol': 'EURUSD', "
        "'issued_at': '2026-01-01T12:00:00Z'}}], 'server_time': {now}}}",
        m=ids[0],
        c=ids[1],
        x=ids[2],
        sig=sig,
        now=str(server_time),
    )
