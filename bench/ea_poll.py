"""Signed ``GET /api/v1/ea/instructions?wait=0`` at concurrency 32 on SQLite.

`python -m bench.ea_poll [--seconds 10] [--devices 100] [--rounds 3]`: migrates a fresh
SQLite file, creates the devices (their secrets derived with the benchmark's MASTER_KEY),
starts the real side server (``webhook_server.create_app``) in its own process pinned to
one core, warms it with one request per device (as a running server is: keys cached,
devices idle), and replays pre-signed requests (each with its own nonce, round-robin over
the devices) with wrk. The bare aiohttp hello-world is measured in the same run, before
each round, and the figure that matters is the ratio (floor 0.3, aim 0.5); with several
rounds the median ratio is printed too, since other load on the machine moves both.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
from aiohttp import web
from pydantic import SecretStr

from bench.common import Request, measure_baseline, print_header, run_wrk, server_process
from bot.config import DatabaseSettings, DevicesSettings, Settings, load_settings
from bot.domain.devices import DeviceService, Platform
from bot.factory import create_services
from bot.web.keys import ENGINE
from bot.web.signing import sign_request
from db.engine import create_engine
from db.migrate import upgrade
from db.models import User
from webhook_server import create_app

TARGET = "/api/v1/ea/instructions?wait=0"
OWNER_ID = 1
# A generous upper bound of requests per second, so wrk never runs out of prepared ones.
PREPARED_PER_SECOND = 40_000

Credentials = list[tuple[str, str]]


async def ea_app() -> web.Application:
    """The real side server, configured from the environment the benchmark passes."""
    container = create_services(load_settings())
    app = create_app(container)

    async def dispose(app: web.Application) -> None:
        await app[ENGINE].dispose()

    app.on_cleanup.append(dispose)
    return app


async def prepare_database(database_url: str, master_key: str, devices: int) -> Credentials:
    """Migrate, then create ``devices`` devices; return their (device_id, secret) pairs."""
    engine = create_engine(database_url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
    settings = Settings(
        _env_file=None,
        master_key=SecretStr(master_key),
        database=DatabaseSettings(url=database_url),
        devices=DevicesSettings(max_per_user=devices),
    )
    container = create_services(settings)
    credentials = []
    try:
        async with container.sessionmaker.begin() as session:
            now = container.clock()
            owner = User(id=OWNER_ID, first_name="Bench", role="user", is_blocked=False)
            owner.created_at = owner.last_seen_at = now
            session.add(owner)
        async with container.sessionmaker.begin() as session:
            service = DeviceService(session, container)
            for number in range(devices):
                _device, creds = await service.create(OWNER_ID, f"bench-{number}", Platform.MT5)
                credentials.append((creds.device_id, creds.secret))
    finally:
        await container.engine.dispose()
    return credentials


def signed_requests(credentials: Credentials, count: int) -> Iterator[Request]:
    timestamp = int(time.time())
    for index in range(count):
        device_id, secret = credentials[index % len(credentials)]
        headers = sign_request(device_id, secret, "GET", TARGET, timestamp, secrets.token_hex(12))
        yield Request("GET", TARGET, headers)


async def warm_up(url: str, credentials: Credentials) -> None:
    async with aiohttp.ClientSession() as http:
        for request in signed_requests(credentials, len(credentials)):
            async with http.get(url + request.path, headers=dict(request.headers)) as response:
                if response.status != 200:
                    raise RuntimeError(f"warm-up failed: {response.status} {await response.text()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    print_header(f"EA poll (signed, wait=0), {args.devices} devices, SQLite")
    ratios = []
    with tempfile.TemporaryDirectory() as directory:
        database_url = f"sqlite+aiosqlite:///{Path(directory) / 'bench.sqlite3'}"
        master_key = secrets.token_urlsafe(32)
        credentials = asyncio.run(prepare_database(database_url, master_key, args.devices))
        env = {"DATABASE__URL": database_url, "MASTER_KEY": master_key}
        for _round in range(args.rounds):
            baseline = measure_baseline(connections=args.connections, seconds=args.seconds)
            print(baseline.line())
            with server_process("bench.ea_poll:ea_app", env=env) as url:
                asyncio.run(warm_up(url, credentials))
                result = run_wrk(
                    "signed GET /api/v1/ea/instructions",
                    url,
                    signed_requests(credentials, PREPARED_PER_SECOND * args.seconds),
                    connections=args.connections,
                    seconds=args.seconds,
                )
            print(result.line(baseline))
            ratios.append(result.rps / baseline.rps)
    if len(ratios) > 1:
        print(f"median ratio over {len(ratios)} rounds: {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
