"""POST /api/v1/ea/state (EA_PROTOCOL 5.1): signed, validated, stored (each replaces the
last), answered with the server time and a suggested poll wait."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from bot.container import Container
from tests.conftest import FakeClock
from tests.devices_support import EAClient, error_of
from tests.loop_support import approve, publish
from tests.wire_support import owner_device, position, send_state, state_body, stored_state

OWNER = 3401
STATE = "/api/v1/ea/state"


@pytest.fixture
async def device(
    container: Container, aiohttp_client: Any, clock: FakeClock
) -> tuple[EAClient, int]:
    return await owner_device(container, aiohttp_client, clock, OWNER, v11=False)


async def test_state_is_stored_and_replaced(
    container: Container, device: tuple[EAClient, int], clock: FakeClock
) -> None:
    ea, pk = device
    assert await stored_state(container, pk) is None
    answer = await send_state(ea, state_body(positions=[position("ins_abc")]))
    assert answer == {"server_time": int(clock.now.timestamp()), "poll_wait": 25}
    first = await stored_state(container, pk)
    assert first is not None
    assert (first.protocol, first.platform, first.currency, first.leverage) == (
        "1.1",
        "mt5",
        "USD",
        100,
    )
    assert first.balance == Decimal("10000.00") and first.equity == Decimal("10012.50")
    assert first.positions[0]["instruction_id"] == "ins_abc"
    assert first.positions[0]["volume"] == "0.1"
    assert first.symbols[0]["tick_size"] == "0.00001"

    clock.advance(seconds=60)
    account = dict(state_body()["account"], balance="9990.5", trade_allowed=False)
    await send_state(ea, state_body(account=account, positions=[], symbols=None))
    second = await stored_state(container, pk)
    assert second is not None
    assert second.balance == Decimal("9990.5") and second.trade_allowed is False
    assert (second.positions, second.symbols) == ([], [])
    assert second.received_at == clock.now


async def test_poll_wait_is_0_while_work_is_pending(
    container: Container, device: tuple[EAClient, int]
) -> None:
    ea, _ = device
    await approve(container, await publish(container), OWNER)
    assert (await send_state(ea))["poll_wait"] == 0


def _with(path: str, value: Any) -> dict[str, Any]:
    body = state_body(positions=[position("ins_abc")])
    target: Any = body
    *parents, last = path.split(".")
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    if value is _DROP:
        del target[last]
    else:
        target[last] = value
    return body


_DROP = object()


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("protocol", "1.0", "protocol"),
        ("protocol", _DROP, "protocol"),
        ("ea", "mt5", "ea"),
        ("ea.platform", "MT 5", "ea.platform"),
        ("ea.name", "x" * 65, "ea.name"),
        ("ea.build", -1, "ea.build"),
        ("account.balance", 10000.5, "account.balance"),
        ("account.balance", "1" * 13, "account.balance"),
        ("account.equity", "1.123456789", "account.equity"),
        ("account.leverage", "100", "account.leverage"),
        ("account.leverage", True, "account.leverage"),
        ("account.trade_allowed", 1, "account.trade_allowed"),
        ("account.currency", "US D", "account.currency"),
        ("account.company", "x" * 129, "account.company"),
        ("positions", {"a": 1}, "positions"),
        ("positions", [position("ins_a")] * 201, "positions"),
        ("positions.0.side", "long", "positions[0].side"),
        ("positions.0.volume", "0", "positions[0].volume"),
        ("positions.0.ticket", -5, "positions[0].ticket"),
        ("positions.0.leg", 10, "positions[0].leg"),
        ("positions.0.instruction_id", "ins bad", "positions[0].instruction_id"),
        ("positions.0.open_price", "12345678901.5", "positions[0].open_price"),
        ("positions.0.profit", _DROP, "positions[0].profit"),
        ("symbols", "EURUSD", "symbols"),
        ("symbols.0.tick_size", "0", "symbols[0].tick_size"),
        ("symbols.0.volume_max", "0.001", "symbols[0].volume_max"),
        ("symbols.0.name", "EUR USD", "symbols[0].name"),
    ],
)
async def test_bad_state_is_422_naming_the_field_and_stores_nothing(
    container: Container, device: tuple[EAClient, int], path: str, value: Any, field: str
) -> None:
    ea, pk = device
    response = await ea.post_json(STATE, _with(path, value))
    assert await error_of(response) == (422, "invalid_request")
    assert field in (await response.json())["fields"]
    assert await stored_state(container, pk) is None


async def test_state_problems_are_bounded_and_bad_bodies_answered(
    container: Container, device: tuple[EAClient, int]
) -> None:
    ea, pk = device
    many = state_body(positions=[{"ticket": "x"}] * 150)
    response = await ea.post_json(STATE, many)
    assert await error_of(response) == (422, "invalid_request")
    assert len((await response.json())["fields"]) <= 20
    assert await error_of(await ea.request("POST", STATE, b"{nope")) == (400, "invalid_json")
    assert await error_of(await ea.post_json(STATE, [1])) == (422, "invalid_request")
    duplicate = state_body(symbols=[state_body()["symbols"][0]] * 2)
    assert await error_of(await ea.post_json(STATE, duplicate)) == (422, "invalid_request")
    unsigned = await ea.client.post(STATE, json=state_body())
    assert await error_of(unsigned) == (401, "missing_credentials")
    assert await stored_state(container, pk) is None
