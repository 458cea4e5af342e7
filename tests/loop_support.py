"""Helpers for the signal-loop tests: signals, decisions, devices and their reports."""

from __future__ import annotations

import itertools
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.container import Container
from bot.domain.devices import DeviceDTO, DeviceService
from bot.domain.signal_rules import validate_new_signal
from bot.domain.signals import CreateOutcome
from db.models import ExecutionRecord, Instruction
from tests.conftest import FakeClock
from tests.devices_support import EAClient, add_device

_report_ids = itertools.count(1)


def report_id() -> str:
    return f"rep-{next(_report_ids):06d}"


async def publish(container: Container, **fields: Any) -> CreateOutcome:
    data: dict[str, Any] = {
        "symbol": "EURUSD",
        "side": "buy",
        "stop_loss": "1.08",
        "take_profit": ["1.095", "1.1"],
    }
    data.update(fields)
    draft = validate_new_signal(data, container.settings.signals)
    outcome = await container.signals.submit(container.sessionmaker, draft, source="provider")
    await settle(container)
    return outcome


async def settle(container: Container) -> None:
    """Let broadcasts, edits and notifications under way finish."""
    await container.reports.drain()
    await container.outbox_worker.drain()


async def approve(container: Container, outcome: CreateOutcome, user_id: int) -> None:
    async with container.sessionmaker.begin() as session:
        result = await container.signals.decide(
            session, signal_id=outcome.signal.id, user_id=user_id, approve=True
        )
    assert result.recorded, result


async def device_ea(
    container: Container,
    server: TestClient[Any, Any],
    clock: FakeClock,
    owner_id: int,
    name: str = "Office",
) -> tuple[DeviceDTO, EAClient]:
    device, credentials = await add_device(container, owner_id, name)
    return device, EAClient(server, clock, credentials.device_id, credentials.secret)


async def configure(container: Container, device: DeviceDTO, **changes: str) -> None:
    """Apply device settings the way the chat does (``set_<name>`` with the typed text)."""
    async with container.sessionmaker.begin() as session:
        service = DeviceService(session, container)
        for name, text in changes.items():
            await getattr(service, f"set_{name}")(device.owner_id, device.pk, text)


async def instructions(ea: EAClient, wait: int = 0) -> list[dict[str, Any]]:
    response = await ea.get(f"/api/v1/ea/instructions?wait={wait}")
    assert response.status == 200, await response.text()
    return list((await response.json())["instructions"])


async def report(ea: EAClient, kind: str, body: dict[str, Any]) -> ClientResponse:
    return await ea.post_json(f"/api/v1/exec/{kind}", body)


def fill_body(instruction_id: str, **fields: Any) -> dict[str, Any]:
    body = {
        "report_id": report_id(),
        "instruction_id": instruction_id,
        "ticket": 5012345,
        "price": "1.08512",
        "volume": "0.01",
    }
    body.update(fields)
    return body


async def stored_instructions(container: Container) -> list[Instruction]:
    async with container.sessionmaker() as session:
        return list((await session.scalars(select(Instruction).order_by(Instruction.id))).all())


async def stored_records(container: Container) -> list[ExecutionRecord]:
    async with container.sessionmaker() as session:
        query = select(ExecutionRecord).order_by(ExecutionRecord.id)
        return list((await session.scalars(query)).all())
