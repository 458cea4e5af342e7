"""Shared parts of the device benchmarks: a prepared SQLite database, the server process
factory (the real side server on it) and signed requests built like an EA builds them.

The parent process prepares the database and the requests; ``bench.serve`` runs
:func:`side_server` in a child pinned to the server CPU, configured through the
environment (``BENCH_DATABASE_URL``; ``BENCH_BOT_API`` to give it a bot too).
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from aiohttp import web
from sqlalchemy import insert

from bench.common import Request, user_rows
from bot.config import Settings
from bot.domain.devices import DeviceService, Platform
from bot.domain.signal_rules import SignalDraft
from bot.factory import create_bot, create_container, create_dispatcher, create_services
from bot.infra.heap import freeze_startup_heap
from bot.web.signing import sign_request
from db.migrate import upgrade
from db.models import Instruction, User
from webhook_server import create_app

MASTER_KEY = "bench-master-key-" + "m" * 32
BOT_TOKEN = "123456789:" + "B" * 35
FIRST_USER = 20_000_000


@dataclass(frozen=True, slots=True)
class BenchDevice:
    pk: int
    owner_id: int
    device_id: str
    secret: str


def settings_for(database_url: str, bot_api: str | None = None) -> Settings:
    return Settings(
        _env_file=None,
        master_key=MASTER_KEY,
        bot_token=BOT_TOKEN,
        provider_token="bench-provider-token",
        database={"url": database_url},
        telegram={"api_base": bot_api or "http://127.0.0.1:9", "admin_ids": []},
        sending={"global_per_second": 1e9, "per_chat_interval_seconds": 0},
    )


# The open signal every device's owner is asked to approve.
BENCH_SIGNAL = SignalDraft(
    symbol="EURUSD",
    side="buy",
    order_type="market",
    entry=None,
    stop_loss=Decimal("1.08"),
    take_profit=(Decimal("1.095"),),
    expires_in=3600,
    comment=None,
)


async def prepare_devices(settings: Settings, owners: int) -> tuple[list[BenchDevice], int]:
    """A migrated database with ``owners`` users, one device each, and one open signal
    (valid for an hour) waiting for each owner's approval; the devices and the signal's pk.
    Devices and signal are made by the bot's own services, as a user and a provider would."""
    container = create_services(settings)
    try:
        await upgrade(container.engine)
        async with container.sessionmaker.begin() as session:
            await session.execute(insert(User), user_rows(FIRST_USER, owners, container.clock()))
            service = DeviceService(session, container)
            made = [
                await service.create(FIRST_USER + index, f"EA {index}", Platform.MT5)
                for index in range(owners)
            ]
            outcome = await container.signals.create(session, BENCH_SIGNAL, source="provider")
        devices = [
            BenchDevice(device.pk, device.owner_id, credentials.device_id, credentials.secret)
            for device, credentials in made
        ]
        return devices, outcome.signal.id
    finally:
        await container.engine.dispose()


async def prepare_fills(
    database_url: str, owners: int, count: int
) -> list[tuple[BenchDevice, str]]:
    """A migrated database with ``owners`` devices and ``count`` acked opens spread over
    them: (device, instruction id) of each, every one the target of a new fill."""
    devices, signal_pk = await prepare_devices(settings_for(database_url), owners)
    rows, targets = instruction_rows(devices, signal_pk, count)
    container = create_services(settings_for(database_url))
    try:
        async with container.sessionmaker.begin() as session:
            for start in range(0, len(rows), 5_000):
                await session.execute(insert(Instruction), rows[start : start + 5_000])
    finally:
        await container.engine.dispose()
    return targets


def signed(
    device: BenchDevice, method: str, target: str, payload: Any = None, *, at: int | None = None
) -> Request:
    body = b"" if payload is None else json.dumps(payload, separators=(",", ":")).encode()
    timestamp = int(time.time()) if at is None else at
    nonce = secrets.token_urlsafe(18)
    headers = sign_request(device.device_id, device.secret, method, target, timestamp, nonce, body)
    if body:
        headers["Content-Type"] = "application/json"
    return Request(method, target, headers, body)


def fill_request(device: BenchDevice, instruction_id: str, report_id: str) -> Request:
    return signed(
        device,
        "POST",
        "/api/v1/exec/fill",
        {
            "report_id": report_id,
            "instruction_id": instruction_id,
            "ticket": 5012345,
            "price": "1.08512",
            "volume": "0.10",
        },
    )


def instruction_rows(
    devices: Sequence[BenchDevice], signal_pk: int, count: int
) -> tuple[list[dict[str, Any]], list[tuple[BenchDevice, str]]]:
    """``count`` pending opens spread over the devices, and (device, instruction id) each."""
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    targets: list[tuple[BenchDevice, str]] = []
    for index in range(count):
        device = devices[index % len(devices)]
        public_id = f"ins_bench{index:09d}"
        rows.append(
            {
                "public_id": public_id,
                "signal_id": signal_pk,
                "device_id": device.pk,
                "action": "open",
                "symbol": "EURUSD",
                "side": "buy",
                "order_type": "market",
                "entry": None,
                "stop_loss": Decimal("1.08"),
                "take_profit": ["1.095"],
                "volume": Decimal("0.10"),
                "fraction": None,
                "comment": None,
                "issued_at": now,
                "expires_at": now + timedelta(hours=1),
                # Already acked: the fills below are their only report each.
                "state": "acked",
            }
        )
        targets.append((device, public_id))
    return rows, targets


async def side_server() -> web.Application:
    """The real side server on ``BENCH_DATABASE_URL``; with ``BENCH_BOT_API``, also a bot
    and its dispatcher (``POST /bench/update`` feeds it one Telegram update)."""
    bot_api = os.environ.get("BENCH_BOT_API")
    settings = settings_for(os.environ["BENCH_DATABASE_URL"], bot_api)
    if not bot_api:
        services = create_services(settings)
        app = create_app(services)

        async def side_only(_app: web.Application) -> Any:
            await services.start()
            # As the bot does before serving (bot/app.py).
            freeze_startup_heap()
            yield
            await services.stop_background(1)
            await services.aclose()
            await services.engine.dispose()

        app.cleanup_ctx.append(side_only)
        return app
    bot = create_bot(settings)
    container = create_container(settings, bot=bot)
    app = create_app(container)

    async def lifecycle(_app: web.Application) -> Any:
        await container.start()
        freeze_startup_heap()
        yield
        await container.stop_background(1)
        await container.aclose()
        await bot.session.close()
        await container.engine.dispose()

    app.cleanup_ctx.append(lifecycle)
    dispatcher = create_dispatcher(container)

    async def feed(request: web.Request) -> web.Response:
        await dispatcher.feed_raw_update(bot, await request.json())
        return web.json_response({"ok": True})

    app.router.add_post("/bench/update", feed)
    return app
