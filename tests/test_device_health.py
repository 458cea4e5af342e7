"""Device health alerts (bot/execution/device_health.py) through the real side server, the
real migrated database and the outbox to the fake Bot API: each cause is told once, with
its fix, in the owner's language; never twice across sweeps or instances; never for a
revoked or unknown device."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select, update

from bot.config import Settings
from bot.container import Container
from bot.domain.devices import DeviceDTO, DeviceService, Platform
from bot.execution.device_health import MAX_TALLIES, Cause
from bot.factory import create_bot, create_container
from db.models import DeviceAlert, DeviceState, User
from tests.conftest import FakeClock
from tests.devices_support import OWNER_ID, EAClient, add_device, error_of
from tests.fake_bot_api import FakeBotAPI, close_bot_session
from tests.loop_support import approve, publish
from webhook_server import create_app

POLL = "/api/v1/ea/instructions?wait=0"
ALLOW_LIST = (
    "tick <i>Allow WebRequest for listed URL</i> and add <code>http://127.0.0.1:8080</code>"
)


@pytest.fixture
async def server(container: Container, aiohttp_client: Any) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(container))


async def new_ea(
    container: Container,
    server: TestClient[Any, Any],
    clock: FakeClock,
    name: str = "Office",
    platform: Platform = Platform.MT5,
) -> tuple[DeviceDTO, EAClient]:
    device, credentials = await add_device(container, name=name, platform=platform)
    return device, EAClient(server, clock, credentials.device_id, credentials.secret)


def alerts(api: FakeBotAPI, *markers: str) -> list[str]:
    """What the owner was sent that contains every marker (signal messages aside)."""
    return [text for text in api.texts(OWNER_ID) if all(m in text for m in markers)]


async def sweep(container: Container) -> int:
    """One sweep, then whatever it queued sent through the outbox."""
    told = await container.device_health.sweep()
    await container.outbox_worker.drain()
    return told


async def alert_rows(container: Container) -> dict[tuple[int, str], DeviceAlert]:
    async with container.sessionmaker() as session:
        rows = await session.scalars(select(DeviceAlert))
        return {(row.device_id, row.cause): row for row in rows}


async def store_state(
    container: Container, device: DeviceDTO, *, trade_allowed: bool, clock: FakeClock
) -> None:
    """The latest state of the device, as POST /api/v1/ea/state stores it."""
    async with container.sessionmaker.begin() as session:
        state = await session.get(DeviceState, device.pk)
        if state is None:
            session.add(
                DeviceState(
                    device_id=device.pk,
                    protocol="1.1",
                    ea_name="SignalBridge",
                    ea_version="1.1.0",
                    platform=device.platform.value,
                    build=4620,
                    currency="USD",
                    balance=Decimal("10000.00"),
                    equity=Decimal("10012.50"),
                    margin_free=Decimal("9800.00"),
                    leverage=100,
                    trade_allowed=trade_allowed,
                    positions=[],
                    symbols=[],
                    received_at=clock.now,
                )
            )
        else:
            state.trade_allowed = trade_allowed
            state.received_at = clock.now


# --- never seen ---


async def test_a_device_never_seen_is_told_once_with_the_allow_list_step(
    container: Container, server: TestClient[Any, Any], clock: FakeClock, fake_api: FakeBotAPI
) -> None:
    await add_device(container, name="Office", platform=Platform.MT5)
    _, polled = await new_ea(container, server, clock, "Laptop", Platform.MT4)
    assert (await polled.get(POLL)).status == 200
    clock.advance(minutes=9)
    assert await sweep(container) == 0

    clock.advance(minutes=2)
    assert await sweep(container) == 1
    [text] = alerts(fake_api, "has not connected yet")
    assert "<b>Office</b> has not connected yet, 11 min after you added it" in text
    assert ALLOW_LIST in text and "In MT5:" in text and "Algo Trading must be on" in text
    assert "Laptop" not in "".join(fake_api.texts(OWNER_ID))

    clock.advance(minutes=30)
    assert await sweep(container) == 0
    assert len(alerts(fake_api, "has not connected yet")) == 1


async def test_the_alert_is_in_the_owners_language(
    container: Container, clock: FakeClock, fake_api: FakeBotAPI
) -> None:
    await add_device(container, name="Офис", platform=Platform.MT4)
    async with container.sessionmaker.begin() as session:
        await session.execute(update(User).where(User.id == OWNER_ID).values(language_code="ru"))
    clock.advance(minutes=10)
    assert await sweep(container) == 1
    [text] = fake_api.texts(OWNER_ID)
    assert "Устройство <b>Офис</b> ещё не подключилось" in text
    assert "<i>Разрешить WebRequest для следующих URL</i>" in text
    assert "<code>http://127.0.0.1:8080</code>" in text and "кнопка AutoTrading" in text


async def test_a_device_seen_after_the_alert_clears_it(
    container: Container, server: TestClient[Any, Any], clock: FakeClock, fake_api: FakeBotAPI
) -> None:
    device, ea = await new_ea(container, server, clock)
    clock.advance(minutes=10)
    assert await sweep(container) == 1
    assert (await ea.get(POLL)).status == 200
    assert await sweep(container) == 0  # cleared, nothing said
    row = (await alert_rows(container))[(device.pk, Cause.NEVER_SEEN)]
    assert row.raised_at is not None and row.cleared_at == clock.now


# --- offline, back online ---


async def test_offline_with_signals_waiting_then_back_online(
    container: Container, server: TestClient[Any, Any], clock: FakeClock, fake_api: FakeBotAPI
) -> None:
    device, ea = await new_ea(container, server, clock)
    assert (await ea.get(POLL)).status == 200
    await container.device_activity.flush()
    for _ in range(2):
        await approve(container, await publish(container), OWNER_ID)
    clock.advance(seconds=100)
    assert await sweep(container) == 0  # 100 s of silence: not yet

    clock.advance(seconds=80)
    assert await sweep(container) == 1
    [text] = alerts(fake_api, "is offline")
    assert "<b>Office</b> is offline: its EA has sent nothing for 3 min" in text
    assert "2 signals are waiting for it" in text
    assert await sweep(container) == 0

    response = await ea.get(POLL)  # the EA is back; the activity is not even flushed yet
    assert len((await response.json())["instructions"]) == 2
    assert await sweep(container) == 1
    assert alerts(fake_api, "<b>Office</b> is back online") != []
    assert await sweep(container) == 0
    row = (await alert_rows(container))[(device.pk, Cause.OFFLINE)]
    assert row.cleared_at == clock.now and row.detail["waiting"] == 2

    # Gone again within the hour: counted as a new cause, not told (no flapping).
    await container.device_activity.flush()
    clock.advance(minutes=3)
    assert await sweep(container) == 0
    assert len(alerts(fake_api, "is offline")) == 1


async def test_an_idle_device_is_not_offline(
    container: Container, server: TestClient[Any, Any], clock: FakeClock, fake_api: FakeBotAPI
) -> None:
    _device, ea = await new_ea(container, server, clock)
    assert (await ea.get(POLL)).status == 200
    await container.device_activity.flush()
    clock.advance(hours=2)
    assert await sweep(container) == 0
    assert fake_api.texts(OWNER_ID) == []


async def test_back_online_only_when_offline_was_told(
    container: Container, server: TestClient[Any, Any], clock: FakeClock, fake_api: FakeBotAPI
) -> None:
    _device, ea = await new_ea(container, server, clock)
    assert (await ea.get(POLL)).status == 200
    await container.device_activity.flush()
    await approve(container, await publish(container), OWNER_ID)
    clock.advance(seconds=60)
    assert (await ea.get(POLL)).status == 200
    assert await sweep(container) == 0
    assert alerts(fake_api, "back online") == [] and alerts(fake_api, "offline") == []


# --- bad signatures ---


async def test_repeated_bad_signatures_tell_the_owner_to_rotate_the_key(
    container: Container,
    server: TestClient[Any, Any],
    clock: FakeClock,
    fake_api: FakeBotAPI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    device, ea = await new_ea(container, server, clock)
    wrong = secrets.token_urlsafe(32)
    for _ in range(2):
        assert await error_of(await ea.get(POLL, secret=wrong)) == (401, "invalid_signature")
    assert await sweep(container) == 0
    assert await error_of(await ea.get(POLL, secret=wrong)) == (401, "invalid_signature")
    assert await alert_rows(container) != {}  # the first two are counted already
    assert await sweep(container) == 1
    [text] = alerts(fake_api, "wrong signature")
    assert "<b>Office</b>: requests with its Device ID keep arriving" in text
    assert "(3 in 10 min)" in text and "Rotate the key in /devices" in text

    for _ in range(20):
        await ea.get(POLL, secret=wrong)
    assert await sweep(container) == 0
    assert len(alerts(fake_api, "wrong signature")) == 1
    # The secrets, right or wrong, are never shown or logged.
    shown = "".join(fake_api.texts(OWNER_ID)) + caplog.text
    assert ea.secret not in shown and wrong not in shown

    # Signed right again: the cause went away (silently).
    clock.advance(seconds=1)
    assert (await ea.get(POLL)).status == 200
    assert await sweep(container) == 0
    row = (await alert_rows(container))[(device.pk, Cause.BAD_SIGNATURE)]
    assert row.cleared_at == clock.now and row.count == 0


async def test_refused_requests_cost_no_write_until_the_sweep(
    container: Container, server: TestClient[Any, Any], clock: FakeClock
) -> None:
    _device, ea = await new_ea(container, server, clock)
    for _ in range(50):
        await ea.get(POLL, secret=secrets.token_urlsafe(32))
        await ea.get(POLL, timestamp=int(clock.now.timestamp()) - 1000)
    assert await alert_rows(container) == {}
    await sweep(container)
    rows = await alert_rows(container)
    assert [row.count for row in rows.values()] == [50, 50]


async def test_bad_signatures_spread_over_more_than_the_window_tell_nobody(
    container: Container, server: TestClient[Any, Any], clock: FakeClock, fake_api: FakeBotAPI
) -> None:
    _device, ea = await new_ea(container, server, clock)
    assert (await ea.get(POLL)).status == 200
    for _ in range(4):
        await ea.get(POLL, secret=secrets.token_urlsafe(32))
        assert await sweep(container) == 0
        clock.advance(minutes=6)
    assert alerts(fake_api, "wrong signature") == []


async def test_bad_signatures_for_unknown_or_revoked_devices_tell_nobody(
    container: Container, server: TestClient[Any, Any], clock: FakeClock, fake_api: FakeBotAPI
) -> None:
    device, ea = await new_ea(container, server, clock)
    assert (await ea.get(POLL)).status == 200
    stranger = EAClient(server, clock, "dev_" + "Z" * 24, secrets.token_urlsafe(32))
    for _ in range(10):
        assert await error_of(await stranger.get(POLL)) == (401, "invalid_signature")
        old = int(clock.now.timestamp()) - 1000
        assert await error_of(await stranger.get(POLL, timestamp=old)) == (401, "stale_timestamp")
    # Counted while active, revoked before the sweep: dropped.
    for _ in range(5):
        await ea.get(POLL, secret=secrets.token_urlsafe(32))
    async with container.sessionmaker.begin() as session:
        await DeviceService(session, container).revoke(OWNER_ID, device.pk)
    await asyncio.sleep(0)  # the key cache hears of the revocation
    for _ in range(5):
        assert await error_of(await ea.get(POLL)) == (401, "invalid_signature")
        await ea.get(POLL, timestamp=int(clock.now.timestamp()) - 1000)
    clock.advance(minutes=30)
    assert await sweep(container) == 0
    assert await alert_rows(container) == {}
    assert fake_api.texts(OWNER_ID) == []


# --- stale clock ---


async def test_a_stale_clock_is_told_with_the_skew(
    container: Container, server: TestClient[Any, Any], clock: FakeClock, fake_api: FakeBotAPI
) -> None:
    _device, ea = await new_ea(container, server, clock)
    now = int(clock.now.timestamp())
    for behind in (410, 415, 420):
        assert await error_of(await ea.get(POLL, timestamp=now - behind)) == (
            401,
            "stale_timestamp",
        )
    assert await sweep(container) == 1
    [text] = alerts(fake_api, "clock")
    assert "your terminal's clock is 420 s behind the server's" in text
    assert "more than 300 s off" in text and "TimeGMT()" in text
    assert await sweep(container) == 0


async def test_a_clock_ahead_and_its_clearing(
    container: Container, server: TestClient[Any, Any], clock: FakeClock, fake_api: FakeBotAPI
) -> None:
    device, ea = await new_ea(container, server, clock)
    assert (await ea.get(POLL)).status == 200  # seen (before its clock went wrong)
    clock.advance(seconds=1)
    for _ in range(3):
        await ea.get(POLL, timestamp=int(clock.now.timestamp()) + 3600)
    assert await sweep(container) == 1
    assert alerts(fake_api, "is 3600 s ahead of the server's") != []
    # Not seen since: the alert stays until a whole window without a stale request.
    clock.advance(minutes=9)
    assert await sweep(container) == 0
    assert (await alert_rows(container))[(device.pk, Cause.STALE_CLOCK)].cleared_at is None
    clock.advance(minutes=2)
    assert await sweep(container) == 0
    assert (await alert_rows(container))[(device.pk, Cause.STALE_CLOCK)].cleared_at == clock.now


async def test_a_stale_request_with_a_wrong_secret_counts_as_a_bad_signature(
    container: Container, server: TestClient[Any, Any], clock: FakeClock, fake_api: FakeBotAPI
) -> None:
    _device, ea = await new_ea(container, server, clock)
    wrong = secrets.token_urlsafe(32)
    for _ in range(3):
        stale = int(clock.now.timestamp()) - 1000
        assert await error_of(await ea.get(POLL, timestamp=stale, secret=wrong)) == (
            401,
            "stale_timestamp",
        )
    assert await sweep(container) == 1
    assert alerts(fake_api, "wrong signature") != [] and alerts(fake_api, "clock") == []


# --- trade disabled ---


async def test_trade_disabled_is_told_once_and_cleared_by_a_later_state(
    container: Container, server: TestClient[Any, Any], clock: FakeClock, fake_api: FakeBotAPI
) -> None:
    device, ea = await new_ea(container, server, clock, platform=Platform.MT4)
    assert (await ea.get(POLL)).status == 200
    await store_state(container, device, trade_allowed=True, clock=clock)
    assert await sweep(container) == 0

    await store_state(container, device, trade_allowed=False, clock=clock)
    assert await sweep(container) == 1
    [text] = alerts(fake_api, "algo trading is off")
    assert "Turn on the AutoTrading button in MT4" in text
    assert "tick <i>Allow live trading</i>" in text
    assert await sweep(container) == 0

    clock.advance(minutes=1)
    await store_state(container, device, trade_allowed=True, clock=clock)
    assert await sweep(container) == 0
    row = (await alert_rows(container))[(device.pk, Cause.TRADE_DISABLED)]
    assert row.cleared_at == clock.now

    # Off again: told again, once the hour since the last telling has passed.
    await store_state(container, device, trade_allowed=False, clock=clock)
    assert await sweep(container) == 0
    clock.advance(minutes=60)
    assert await sweep(container) == 1
    assert len(alerts(fake_api, "algo trading is off")) == 2


async def test_a_revoked_device_is_never_alerted(
    container: Container, clock: FakeClock, fake_api: FakeBotAPI
) -> None:
    device, _ = await add_device(container)
    await store_state(container, device, trade_allowed=False, clock=clock)
    async with container.sessionmaker.begin() as session:
        await DeviceService(session, container).revoke(OWNER_ID, device.pk)
    clock.advance(hours=1)
    assert await sweep(container) == 0
    assert await alert_rows(container) == {}
    assert fake_api.texts(OWNER_ID) == []


# --- several instances, the background sweep ---


@pytest.fixture
async def second(settings: Settings, clock: FakeClock) -> AsyncIterator[Container]:
    """Another instance on the same database, with its own bot and outbox worker."""
    bot = create_bot(settings)
    instance = create_container(settings, bot=bot, clock=clock)
    try:
        yield instance
    finally:
        await instance.stop_background(within=5.0)
        await instance.engine.dispose()
        await close_bot_session(bot)


async def test_two_instances_tell_each_cause_once(
    container: Container,
    second: Container,
    server: TestClient[Any, Any],
    aiohttp_client: Any,
    clock: FakeClock,
    fake_api: FakeBotAPI,
) -> None:
    device, ea = await new_ea(container, server, clock)
    other_server = await aiohttp_client(create_app(second))
    other_ea = EAClient(other_server, clock, ea.device_id, ea.secret)
    await store_state(container, device, trade_allowed=False, clock=clock)
    wrong = secrets.token_urlsafe(32)
    # Two refused requests on each instance: together over the threshold.
    for client in (ea, ea, other_ea, other_ea):
        await client.get(POLL, secret=wrong)
    clock.advance(minutes=10)  # and never seen

    outcomes = await asyncio.gather(
        container.device_health.sweep(), second.device_health.sweep(), return_exceptions=True
    )
    # SQLite has one writer: the loser of the race may fail and try again next time.
    assert any(isinstance(outcome, int) for outcome in outcomes), outcomes
    for _ in range(2):
        await sweep(container)
        await sweep(second)
    await second.outbox_worker.drain()
    assert len(alerts(fake_api, "wrong signature")) == 1
    assert len(alerts(fake_api, "algo trading is off")) == 1
    assert len(alerts(fake_api, "has not connected yet")) == 1
    assert len(fake_api.texts(OWNER_ID)) == 3
    assert (await alert_rows(container))[(device.pk, Cause.BAD_SIGNATURE)].count == 4


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # Only the test that starts the app sweeps by itself; the others call sweep().
    return {"device_health": {"sweep_seconds": 0.02}}


async def test_the_sweep_runs_with_the_app_and_waits_out_a_restart(
    container: Container, clock: FakeClock, fake_api: FakeBotAPI
) -> None:
    await add_device(container)
    clock.advance(minutes=30)  # the process was not running: not the device's silence
    await container.start()
    assert await container.device_health.sweep() == 0
    clock.advance(minutes=10)
    await fake_api.wait_for("sendMessage", lambda call: "has not connected yet" in str(call.text))
    await container.stop_background(within=1.0)
    assert len(alerts(fake_api, "has not connected yet")) == 1


async def test_counting_is_bounded(
    container: Container, clock: FakeClock, fake_api: FakeBotAPI
) -> None:
    """A flood of refused requests for ever more devices costs bounded memory; a device
    counted before the bound was reached keeps being counted."""
    device, _ = await add_device(container)
    health = container.device_health
    health.bad_signature(device.pk, clock.now)
    for pk in range(1_000_000, 1_000_000 + MAX_TALLIES + 500):
        health.bad_signature(pk, clock.now)  # ids of no device: the cache would not name them
    assert health.counted == MAX_TALLIES
    health.bad_signature(device.pk, clock.now)
    health.bad_signature(device.pk, clock.now)
    assert await sweep(container) == 1  # the others are of no device: nothing stored
    assert alerts(fake_api, "wrong signature") != []
    assert list(await alert_rows(container)) == [(device.pk, Cause.BAD_SIGNATURE)]
    assert health.counted == 0
