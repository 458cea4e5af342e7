"""The first steps of a shutdown, in process: the side server's gate answers 503
shutting_down on every path, and the report writer's deadline (a report is either
committed and acknowledged, or answered 503 and not stored)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import update

from bot.container import Container
from bot.web.keys import SHUTDOWN_GATE
from db.models import Instruction
from tests.conftest import FakeClock
from tests.devices_support import EAClient
from tests.loop_support import (
    approve,
    device_ea,
    fill_body,
    instructions,
    publish,
    report,
    stored_records,
)
from tests.openapi_support import Exchange, problems, recording
from tests.signals_support import add_users
from webhook_server import create_app

OWNER = 3301


@pytest.fixture
def app(container: Container) -> web.Application:
    return create_app(container)


@pytest.fixture
def exchanges(app: web.Application) -> list[Exchange]:
    """What the app answers, to hold against the OpenAPI document."""
    return recording(app)


@pytest.fixture
async def server(
    app: web.Application, exchanges: list[Exchange], aiohttp_client: Any
) -> TestClient[Any, Any]:
    return await aiohttp_client(app)


@pytest.fixture
async def ea(container: Container, server: TestClient[Any, Any], clock: FakeClock) -> EAClient:
    await add_users(container.sessionmaker, [OWNER], clock.now)
    return (await device_ea(container, server, clock, OWNER))[1]


async def an_open(container: Container, ea: EAClient) -> str:
    outcome = await publish(container)
    await approve(container, outcome, OWNER)
    [instruction] = await instructions(ea)
    return str(instruction["id"])


async def assert_shutting_down(response: Any) -> None:
    assert response.status == 503
    assert response.headers["Retry-After"] == "5"
    assert response.headers["X-Server-Time"].isdigit()
    body = await response.json()
    assert body["error"] == "shutting_down" and body["message"]


async def test_a_closed_gate_answers_every_path_503_shutting_down(
    container: Container, server: TestClient[Any, Any], ea: EAClient, exchanges: list[Exchange]
) -> None:
    instruction_id = await an_open(container, ea)
    assert (await server.get("/healthz")).status == 200
    assert server.app is not None
    server.app[SHUTDOWN_GATE].close()
    await assert_shutting_down(await server.get("/healthz"))
    await assert_shutting_down(await server.get("/no/such/path"))
    await assert_shutting_down(await report(ea, "fill", fill_body(instruction_id)))
    await assert_shutting_down(await server.get("/api/v1/openapi.json"))
    assert await stored_records(container) == []
    # Every one of those answers is as the OpenAPI document says.
    gated = [e for e in exchanges if e.status == 503]
    assert len(gated) == 4
    assert [p for e in gated if e.route is not None for p in problems(e)] == []


async def test_reports_not_committed_by_the_deadline_are_answered_503_and_not_stored(
    container: Container, ea: EAClient
) -> None:
    instruction_id = await an_open(container, ea)
    acknowledged = await report(
        ea, "ack", {"report_id": "ack-000001", "instruction_id": instruction_id}
    )
    assert acknowledged.status == 201
    # Another transaction holds what the writer needs (SQLite's one connection, or the
    # instruction's row on PostgreSQL) until after the writer's deadline.
    async with container.sessionmaker.begin() as session:
        await session.execute(
            update(Instruction)
            .where(Instruction.public_id == instruction_id)
            .values(state=Instruction.state)
        )
        sent = asyncio.create_task(report(ea, "fill", fill_body(instruction_id)))
        for _ in range(500):
            if container.reports.waiting:
                break
            await asyncio.sleep(0.005)
        assert await container.reports.close(0.1) == 1
    await assert_shutting_down(await sent)
    [record] = await stored_records(container)  # the acknowledged one, and only it
    assert record.report_id == "ack-000001"
    # Closed: a report now is refused at once.
    await assert_shutting_down(await report(ea, "fill", fill_body(instruction_id)))
