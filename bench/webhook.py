"""Telegram webhook updates per second through the whole stack, against hello-world.

`python -m bench.webhook [--seconds 10] [--connections 32] [--users 1000] [--database URL]
[--command /devices]`:
migrates a fresh SQLite file (or the given PostgreSQL database, emptied first) and
creates the users with two devices each, starts the fake Bot API in its own process (on
wrk's core, answering without any rate limit) and the real side server in webhook mode
(``create_app`` with a ``WebhookIntake``: secret check, claim, per-chat queues, the real
dispatcher with every middleware, the /devices handler reading the user's devices from
the database, the reply with its keyboard POSTed to the fake Bot API) pinned to one
core. wrk replays signed deliveries (unique update ids, round-robin over the users);
afterwards the benchmark waits until every accepted update has been answered. The
figure that counts is updates processed per second, as a ratio to the bare aiohttp
hello-world measured in the same run (floor 0.05, aim 0.15), and as a ratio to the stack
alone below (floor 0.6). The intake processes as many updates at once as wrk has
connections, as the references serve them.

Two references run the same load: our dispatcher fed inline per request (no webhook
layer), and the stack alone (``skeleton_app``: aiogram and SQLAlchemy with one handler,
one SELECT and a plain reply, nothing of ours), which bounds what any code built on
that stack can reach here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import aiohttp
from aiogram import Dispatcher
from aiohttp import web
from sqlalchemy import bindparam, insert, select, text

from bench.common import (
    CLIENT_CPU,
    REPO_ROOT,
    Request,
    Result,
    measure_baseline,
    print_header,
    run_wrk,
    server_process,
    stop_process,
    user_rows,
)
from bot.container import Container
from bot.infra.heap import freeze_startup_heap

BOT_TOKEN = "123456789:" + "B" * 35
SECRET = "bench-webhook-secret-" + "s" * 22
PATH = "/tg/webhook"
FIRST_USER = 10_000_000
# A generous upper bound of deliveries per second, so wrk never runs out of prepared ones.
PREPARED_PER_SECOND = 6_000
STATS_METHOD = "getBenchStats"
SERVER = "bench.webhook:webhook_app"
NORMAL_LOAD_COUNT = 200
COMMAND = "/devices"


# --------------------------------------------------------------------- the server process


async def webhook_app() -> web.Application:
    """The real side server in webhook mode, configured from the environment."""
    from bot.chat.webhook import WebhookIntake
    from webhook_server import create_app

    container, dp = _build()
    intake = WebhookIntake(container, dp)
    await intake.start()
    app = create_app(container, intake=intake)
    freeze_startup_heap()

    async def close(_app: web.Application) -> None:
        await intake.drain(5)
        await intake.close()
        await _close(container, dp)

    app.on_cleanup.append(close)
    return app


async def dispatcher_app() -> web.Application:
    """The reference: the same dispatcher fed inline per request, as polling would feed it.

    No secret check, claim, queue or mark: what the foundation's stack costs per update.
    """
    from aiogram.types import Update

    container, dp = _build()
    bot = container.bot
    assert bot is not None

    async def feed(request: web.Request) -> web.Response:
        update = Update.model_validate_json(await request.read(), context={"bot": bot})
        await dp.feed_update(bot, update)
        return web.json_response({"ok": True})

    async def close(_app: web.Application) -> None:
        await _close(container, dp)

    app = web.Application()
    app.router.add_post(PATH, feed)
    freeze_startup_heap()
    app.on_cleanup.append(close)
    return app


async def skeleton_app() -> web.Application:
    """The fixed stack's own floor: what aiogram and SQLAlchemy cost with nothing of ours.

    Per request: the Update parsed by aiogram, a Dispatcher with one router and one
    ``Command`` handler (the benchmark's command), one SELECT of the user's devices in a
    session of its own (SQLAlchemy's stock ``sqlite+aiosqlite`` or asyncpg engine, one
    connection for SQLite as ours), the names sent back as plain text with
    ``message.answer`` (aiogram's stock ``AiohttpSession``). No secret check, claim,
    queue, middleware, user row, keyboard, rate limit, log or metrics.
    """
    from aiogram import Bot, Router
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer
    from aiogram.filters import Command
    from aiogram.types import Message, Update
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    from db.models import Device

    url = os.environ["DATABASE__URL"]
    single = {"pool_size": 1, "max_overflow": 0} if url.startswith("sqlite") else {}
    engine = create_async_engine(url, **single)
    sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    api = TelegramAPIServer.from_base(os.environ["TELEGRAM__API_BASE"])
    bot = Bot(BOT_TOKEN, session=AiohttpSession(api=api))
    names = select(Device.name).where(Device.owner_id == bindparam("owner"))
    router = Router()

    @router.message(Command(os.environ.get("BENCH_COMMAND", COMMAND).lstrip("/")))
    async def devices(message: Message) -> None:
        assert message.from_user is not None
        async with sessionmaker() as session:
            rows = (await session.execute(names, {"owner": message.from_user.id})).all()
        await message.answer("\n".join(name for (name,) in rows) or "none")

    dp = Dispatcher()
    dp.include_router(router)

    async def feed(request: web.Request) -> web.Response:
        update = Update.model_validate_json(await request.read(), context={"bot": bot})
        await dp.feed_update(bot, update)
        return web.json_response({"ok": True})

    async def close(_app: web.Application) -> None:
        await bot.session.close()
        await engine.dispose()

    app = web.Application()
    app.router.add_post(PATH, feed)
    freeze_startup_heap()
    app.on_cleanup.append(close)
    return app


def _build() -> tuple[Container, Dispatcher]:
    import logging

    from bot.config import load_settings
    from bot.factory import create_bot, create_container, create_dispatcher
    from bot.logging_setup import setup_logging

    settings = load_settings()
    setup_logging(settings.logging.level)
    # The update log is formatted as in production, but written nowhere: a terminal or a
    # pipe would measure the console.
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(logging.FileHandler(os.devnull))
    container = create_container(settings, bot=create_bot(settings))
    return container, create_dispatcher(container)


async def _close(container: Container, dp: Dispatcher) -> None:
    assert container.bot is not None
    await container.bot.session.close()
    await dp.storage.close()
    await container.stop_background(5)
    await container.aclose()
    await container.engine.dispose()


# --------------------------------------------------------------------- the fake Bot API


async def _serve_fake_api() -> None:
    from tests.fake_bot_api import FakeBotAPI

    api = FakeBotAPI()

    def stats(_call: object) -> dict[str, int]:
        sent = sum(1 for call in api.calls if call.method == "sendMessage" and call.ok)
        api.calls.clear()  # keep memory flat; the count is cumulative below
        api_stats["sent"] += sent
        return {"sent": api_stats["sent"]}

    api_stats = {"sent": 0}
    api.set_handler(STATS_METHOD, stats)
    print(await api.start(), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await api.close()


@contextmanager
def fake_api_process() -> Iterator[str]:
    """The fake Bot API in a child on wrk's core; yields its base URL."""
    command = [sys.executable, "-m", "bench.webhook", "--fake-api"]
    process = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        if not base_url.startswith("http://"):
            raise RuntimeError("the fake Bot API did not start")
        yield base_url
    finally:
        stop_process(process)


async def _sent(api_url: str) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{api_url}/bot{BOT_TOKEN}/{STATS_METHOD}") as response,
    ):
        return int((await response.json())["result"]["sent"])


def sent_replies(api_url: str) -> int:
    return asyncio.run(_sent(api_url))


# --------------------------------------------------------------------- the database


async def _prepare_database(database_url: str, users: int) -> None:
    """Migrate (PostgreSQL: from scratch) and create the users, each with two devices."""
    from decimal import Decimal

    from db.engine import create_engine
    from db.migrate import upgrade
    from db.models import Device, User

    engine = create_engine(database_url)
    try:
        if database_url.startswith("postgresql"):
            async with engine.begin() as connection:
                await connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
                await connection.execute(text("CREATE SCHEMA public"))
        await upgrade(engine)
        now = datetime.now(UTC)
        async with engine.begin() as connection:
            await connection.execute(insert(User), user_rows(FIRST_USER, users, now))
            await connection.execute(
                insert(Device),
                [
                    {
                        "public_id": f"bench-{n}-{k}",
                        "owner_id": FIRST_USER + n,
                        "name": f"{platform} terminal",
                        "platform": platform,
                        "key_version": 1,
                        "paused": False,
                        "lot_size": Decimal("0.10"),
                        "symbol_map": {},
                        "symbol_prefix": "",
                        "symbol_suffix": "",
                        "max_signal_age": 60,
                        "created_at": now,
                        "last_seen_at": now,
                    }
                    for n in range(users)
                    for k, platform in enumerate(("mt4", "mt5"))
                ],
            )
    finally:
        await engine.dispose()


# --------------------------------------------------------------------- the load


def deliveries(
    count: int, users: int, *, first_update: int = 1, command: str = COMMAND
) -> Iterator[Request]:
    headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET}
    for n in range(count):
        user_id = FIRST_USER + n % users
        user = {"id": user_id, "is_bot": False, "first_name": "Bench", "language_code": "en"}
        update = {
            "update_id": first_update + n,
            "message": {
                "message_id": 1 + n // users,
                "from": user,
                "chat": {"id": user_id, "type": "private", "first_name": "Bench"},
                "date": 1_767_268_800,
                "text": command,
                "entities": [{"type": "bot_command", "offset": 0, "length": len(command)}],
            },
        }
        body = json.dumps(update, separators=(",", ":")).encode()
        yield Request("POST", PATH, headers=headers, body=body)


def server_cpu_seconds(factory: str) -> float | None:
    """CPU time (user + system) of the server child serving ``factory``, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if factory.encode() not in (entry / "cmdline").read_bytes():
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        return (int(fields[11]) + int(fields[12])) / ticks
    return None


async def _paced_answers(url: str, requests: list[Request], per_second: float) -> list[float]:
    """Deliver one at a time at ``per_second``; return each answer's time in ms."""
    timings = []
    async with aiohttp.ClientSession() as http:
        for request in requests:
            started = time.perf_counter()
            async with http.post(
                url + request.path, data=request.body, headers=dict(request.headers)
            ) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"delivery answered {response.status}")
            elapsed = time.perf_counter() - started
            timings.append(elapsed * 1000)
            await asyncio.sleep(max(0.0, 1 / per_second - elapsed))
    return sorted(timings)


def normal_load_latency(
    url: str, users: int, command: str, *, count: int = 200, per_second: float = 20
) -> str:
    """Answer times at a normal load (``per_second`` updates/s, each processed meanwhile)."""
    requests = list(deliveries(count, users, first_update=50_000_000, command=command))
    timings = asyncio.run(_paced_answers(url, requests, per_second))
    p50, p99 = timings[len(timings) // 2], timings[int(len(timings) * 0.99) - 1]
    return (
        f"webhook answers at {per_second:.0f} updates/s (normal load): "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {timings[-1]:.1f} ms"
    )


def wait_until_processed(api_url: str, target: int, *, idle_limit: float = 10.0) -> int:
    """Poll the fake Bot API until ``target`` replies arrived (or nothing moves for a while)."""
    last, last_change = -1, time.monotonic()
    while True:
        sent = sent_replies(api_url)
        if sent >= target:
            return sent
        if sent != last:
            last, last_change = sent, time.monotonic()
        elif time.monotonic() - last_change > idle_limit:
            return sent
        time.sleep(0.02)


def measure(
    name: str,
    factory: str,
    env: dict[str, str],
    api_url: str,
    *,
    first_update: int,
    seconds: int,
    connections: int,
    users: int,
    command: str,
) -> tuple[Result, Result, float | None]:
    """Load one server with wrk; return (answers, updates processed, server CPU per update)."""
    with server_process(factory, env=env) as url:
        if factory == SERVER:
            before = sent_replies(api_url)
            print(normal_load_latency(url, users, command, count=NORMAL_LOAD_COUNT))
            wait_until_processed(api_url, before + NORMAL_LOAD_COUNT)
        initial = sent_replies(api_url)
        cpu_before = server_cpu_seconds(factory)
        started = time.monotonic()
        answers = run_wrk(
            f"{name}: HTTP answers",
            url,
            deliveries(
                PREPARED_PER_SECOND * seconds, users, first_update=first_update, command=command
            ),
            connections=connections,
            seconds=seconds,
        )
        answered = answers.requests - answers.errors
        sent = wait_until_processed(api_url, initial + answered) - initial
        elapsed = time.monotonic() - started
        cpu_after = server_cpu_seconds(factory)
    processed = Result(
        name=f"{name}: updates processed",
        requests=sent,
        seconds=elapsed,
        errors=max(0, answered - sent),
        p50_ms=answers.p50_ms,
        p99_ms=answers.p99_ms,
    )
    cpu = None
    if cpu_before is not None and cpu_after is not None and sent:
        cpu = (cpu_after - cpu_before) / sent
    return answers, processed, cpu


def run(seconds: int, connections: int, users: int, database: str | None, command: str) -> None:
    print_header(f"webhook: {command} through the whole stack")
    # The machine is shared: the baseline is measured before and after, and averaged.
    before = measure_baseline(connections=connections, seconds=seconds)
    print(before.line())
    with tempfile.TemporaryDirectory() as tmp, fake_api_process() as api_url:
        database_url = database or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.sqlite3'}"
        asyncio.run(_prepare_database(database_url, users))
        env = {
            "APP_CONFIG": str(REPO_ROOT / "config.toml"),
            "BOT_TOKEN": BOT_TOKEN,
            "WEBHOOK_SECRET": SECRET,
            "MASTER_KEY": "m" * 43,
            "PROVIDER_TOKEN": "p" * 43,
            "TELEGRAM__MODE": "webhook",
            "TELEGRAM__API_BASE": api_url,
            "WEBHOOK__URL": "https://bench.example.com",
            "WEBHOOK__PATH": PATH,
            "DATABASE__URL": database_url,
            # Each bench user sends many updates; the bucket is still checked for each.
            "RATE_LIMIT__CAPACITY": "10000",
            # Nothing refused: every delivery is processed and counted (Telegram would retry).
            "WEBHOOK__MAX_PENDING": "100000",
            # As many updates in progress at once as the references serve (one per
            # connection): with config.toml's 8 the intake would be measured at a quarter of
            # their parallelism, and on a busy machine that bounds it, not its cost.
            "WEBHOOK__MAX_CONCURRENCY": str(connections),
            # The fake Bot API has no rate limit, so the send path need not pace for one.
            "SENDING__GLOBAL_PER_SECOND": "1000000",
            "SENDING__PER_CHAT_INTERVAL_SECONDS": "0",
            "BENCH_COMMAND": command,
        }
        load = partial(
            measure, seconds=seconds, connections=connections, users=users, command=command
        )
        webhook = load("webhook", SERVER, env, api_url, first_update=1)
        reference = load(
            "dispatcher inline (reference)",
            "bench.webhook:dispatcher_app",
            env,
            api_url,
            first_update=10_000_000,
        )
        skeleton = load(
            "aiogram + SQLAlchemy alone (stack floor)",
            "bench.webhook:skeleton_app",
            env,
            api_url,
            first_update=20_000_000,
        )
    after = measure_baseline(connections=connections, seconds=seconds)
    print(after.line())
    baseline = Result(
        name="baseline (mean of both)",
        requests=before.requests + after.requests,
        seconds=before.seconds + after.seconds,
        errors=before.errors + after.errors,
        p50_ms=(before.p50_ms + after.p50_ms) / 2,
        p99_ms=(before.p99_ms + after.p99_ms) / 2,
    )
    print(baseline.line())
    for answers, processed, cpu in (skeleton, reference, webhook):
        print(answers.line(baseline))
        print(processed.line(baseline))
        if cpu is not None:
            print(f"    server CPU {cpu * 1000:.2f} ms per update")
    print(
        f"the figure: webhook updates processed / hello-world = "
        f"{webhook[1].rps / baseline.rps:.3f} (floor 0.05, aim 0.15); "
        f"a hello-world request costs {1000 / baseline.rps:.2f} ms"
    )
    print(
        f"the stack alone (aiogram + SQLAlchemy, nothing of ours) = "
        f"{skeleton[1].rps / baseline.rps:.3f} of hello-world; the whole stack does "
        f"{webhook[1].rps / skeleton[1].rps:.2f} of what the stack alone does (floor 0.6)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--database", help="postgresql+asyncpg://... (default: a SQLite file)")
    parser.add_argument(
        "--command", default=COMMAND, help="the command every update sends (default /devices)"
    )
    parser.add_argument("--fake-api", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fake_api:
        if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(0, {CLIENT_CPU})
        asyncio.run(_serve_fake_api())
        return
    run(args.seconds, args.connections, args.users, args.database, args.command)


if __name__ == "__main__":
    main()
