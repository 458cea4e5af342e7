"""One signal to 10,000 recipients through a fake Bot API with no rate limit.

`python -m bench.broadcast [RECIPIENTS]`. The fake Bot API runs in its own process on
CPU 0 (bench.common.server_process); this process runs on CPU 1. Two measurements in the
same run, at the same concurrency, against the same server:

- baseline: RECIPIENTS raw aiohttp POSTs of the same form body aiogram sends
  (chat_id, text, parse_mode, link_preview_options, reply_markup and aiogram's
  disable_web_page_preview) to /bot<token>/sendMessage;
- aiogram: the same messages through aiogram's Bot alone, with our bot's defaults (what
  any aiogram bot sending these messages pays);
- pipeline: the provider path from the stored signal on: one transaction storing the
  signal and an approval per recipient, rendering each message, the broadcast through
  aiogram and the send path (limits raised so nothing waits), and the message ids
  written back to the approvals.

It prints the time per message of each and what our pipeline adds per message, in wall
time and in this process's CPU time (the machine is shared: CPU time is the steadier
figure when other work steals the core). Garbage is collected before each timed phase, so
no phase pays for another's. aiogram alone and the pipeline run twice, taking turns, and the
best run of each is reported.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import aiohttp
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import InlineKeyboardMarkup
from sqlalchemy import func, insert, select

from bench.common import CLIENT_CPU, print_header, server_process, user_rows
from bot.chat.signal_messages import render_approval_message
from bot.config import Settings, SignalsSettings
from bot.domain.signal_dto import ApprovalDTO, SignalDTO
from bot.domain.signal_rules import validate_new_signal
from bot.factory import bot_defaults, create_bot, create_container
from bot.infra.heap import freeze_startup_heap
from db.migrate import upgrade
from db.models import Approval, User

TOKEN = "123456789:" + "B" * 35


class Timed:
    """Wall and CPU seconds of one phase.

    What exists when the phase starts is frozen out of the collector's walks, as the bot
    does with its start-up heap before serving (bot/infra/heap.py, bot/app.py); the same
    for every phase, aiogram's alone included."""

    def __init__(self) -> None:
        freeze_startup_heap()
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def done(self) -> tuple[float, float]:
        wall, cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu
        gc.unfreeze()
        return wall, cpu


CONCURRENCY = 50
ROUNDS = 2
FIRST_USER = 10_000_000


def _bodies(count: int) -> list[dict[str, str]]:
    """The form fields aiogram sends for each recipient's message."""
    draft = validate_new_signal(
        {"symbol": "EURUSD", "side": "buy", "stop_loss": "1.08", "take_profit": ["1.095", "1.1"]},
        SignalsSettings(),
    )
    issued = datetime.now(UTC)
    signal = SignalDTO(
        id=1,
        public_id="sig_bench",
        symbol=draft.symbol,
        side=draft.side,
        order_type=draft.order_type,
        entry=None,
        stop_loss=draft.stop_loss,
        take_profit=draft.take_profit,
        comment=None,
        issued_at=issued,
        expires_at=issued + timedelta(minutes=15),
        state="open",
        closed_fraction=Decimal(0),
        client_id=None,
        source="provider",
        created_by_id=None,
        modified_at=None,
        ended_at=None,
    )
    bodies = []
    for index in range(count):
        approval = ApprovalDTO(index, 1, FIRST_USER + index, "pending", None, None)
        rendered = render_approval_message(signal, approval)
        assert rendered.reply_markup is not None
        markup = rendered.reply_markup.model_dump(exclude_none=True)
        bodies.append(
            {
                "chat_id": str(approval.user_id),
                "text": rendered.text,
                "parse_mode": "HTML",
                "link_preview_options": json.dumps({"is_disabled": True}),
                "reply_markup": json.dumps(markup),
                "disable_web_page_preview": "true",
            }
        )
    return bodies


async def baseline(url: str, count: int) -> tuple[float, float]:
    bodies = iter(_bodies(count))
    endpoint = f"{url}/bot{TOKEN}/sendMessage"
    async with aiohttp.ClientSession() as session:

        async def worker() -> None:
            for body in bodies:
                async with session.post(endpoint, data=body) as response:
                    payload = await response.json()
                    assert payload["ok"]

        timed = Timed()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return timed.done()


async def aiogram_bare(url: str, count: int) -> tuple[float, float]:
    """The same messages through aiogram's Bot alone (no send path, no database), with
    our bot's defaults (HTML, no link previews): the same requests reach Telegram."""
    bodies = iter(_bodies(count))
    bot = Bot(
        TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(url)), default=bot_defaults()
    )
    try:

        async def worker() -> None:
            for body in bodies:
                await bot.send_message(
                    chat_id=int(body["chat_id"]),
                    text=body["text"],
                    reply_markup=InlineKeyboardMarkup.model_validate_json(body["reply_markup"]),
                )

        timed = Timed()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return timed.done()
    finally:
        await bot.session.close()


async def pipeline(url: str, count: int, directory: Path) -> tuple[float, float, float]:
    """(wall seconds for the whole path, CPU seconds, wall seconds of storing the signal
    and approvals)."""
    database = directory / f"bench-{time.monotonic_ns()}.sqlite3"
    settings = Settings(
        _env_file=None,
        bot_token=TOKEN,
        provider_token="bench-provider-token",
        master_key="bench-master-key-" + "m" * 27,
        telegram={"api_base": url, "admin_ids": []},
        database={"url": f"sqlite+aiosqlite:///{database}"},
        sending={
            "global_per_second": 1e9,
            "per_chat_interval_seconds": 0,
            "broadcast_concurrency": CONCURRENCY,
        },
    )
    bot = create_bot(settings)
    container = create_container(settings, bot=bot)
    try:
        await upgrade(container.engine)
        now = container.clock()
        async with container.sessionmaker.begin() as session:
            await session.execute(insert(User), user_rows(FIRST_USER, count, now))
        draft = validate_new_signal(
            {
                "symbol": "EURUSD",
                "side": "buy",
                "stop_loss": "1.08",
                "take_profit": ["1.095", "1.1"],
            },
            settings.signals,
        )
        worker = container.outbox_worker
        timed = Timed()
        outcome = await container.signals.submit(container.sessionmaker, draft, source="provider")
        stored = time.perf_counter() - timed.wall
        await worker.drain()
        wall, cpu = timed.done()
        assert outcome.recipients == count
        async with container.sessionmaker() as session:
            recorded = await session.scalar(
                select(func.count()).select_from(Approval).where(Approval.message_id.is_not(None))
            )
        assert recorded == count, f"{recorded} of {count} message ids recorded"
        return wall, cpu, stored
    finally:
        await container.stop_background(5)
        await bot.session.close()
        await container.engine.dispose()


async def main(count: int) -> None:
    with (
        server_process("bench.common:minimal_bot_api_app") as url,
        tempfile.TemporaryDirectory() as tmp,
    ):
        # Warm up both paths (connections, imports, caches) on a small run.
        await baseline(url, 200)
        await aiogram_bare(url, 200)
        await pipeline(url, 200, Path(tmp))
        base_first, base_first_cpu = await baseline(url, count)
        # aiogram alone and the pipeline take turns, ROUNDS times; the best of each counts
        # (noise from the shared machine only ever adds time).
        bares: list[tuple[float, float]] = []
        pipelines: list[tuple[float, float, float]] = []
        for _ in range(ROUNDS):
            bares.append(await aiogram_bare(url, count))
            pipelines.append(await pipeline(url, count, Path(tmp)))
        bare, bare_cpu = (min(run[i] for run in bares) for i in (0, 1))
        total, total_cpu, storing = (min(run[i] for run in pipelines) for i in (0, 1, 2))
        base_second, base_second_cpu = await baseline(url, count)
    base, base_cpu = min((base_first, base_first_cpu), (base_second, base_second_cpu))

    def per(seconds: float) -> float:
        return seconds / count * 1e6

    print(f"recipients {count}, concurrency {CONCURRENCY}; µs/message: wall (this process's CPU)")
    print(
        f"baseline  raw aiohttp POSTs      {base:7.2f} s  {per(base):7.1f} ({per(base_cpu):.1f})"
        f"  ({count / base:,.0f} msg/s; runs {base_first:.2f} s and {base_second:.2f} s)"
    )
    print(
        f"aiogram   Bot.send_message alone {bare:7.2f} s  {per(bare):7.1f} ({per(bare_cpu):.1f})"
        f"  ({count / bare:,.0f} msg/s; runs {', '.join(f'{w:.2f}' for w, _ in bares)} s)"
    )
    print(
        f"pipeline  signal → all delivered {total:7.2f} s  {per(total):7.1f} ({per(total_cpu):.1f})"
        f"  ({count / total:,.0f} msg/s; runs {', '.join(f'{w:.2f}' for w, _, _ in pipelines)} s;"
        f" storing signal + approvals {storing:.2f} s)"
    )
    print(
        f"added by our pipeline: {per(total - base):.1f} µs/message;"
        f" ratio pipeline/baseline {total / base:.2f} (throughput ratio {base / total:.3f});"
        f" beyond aiogram's own cost: {per(total - bare):.1f} µs/message"
        f" (CPU {per(total_cpu - bare_cpu):.1f})"
    )


if __name__ == "__main__":
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {CLIENT_CPU})
    print_header("broadcast: one signal to many recipients")
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000))
