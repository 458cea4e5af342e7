"""From an Approve press to the device's long-poll answer, with 1,000 devices long-polling.

`python -m bench.approve_latency [DEVICES] [PRESSES]`. The real side server (with the bot's
dispatcher, fed each press as a Telegram update) runs in a child on the server CPU; this
process, on the client CPU, runs a fake Bot API, keeps every device's long poll open
(`wait=25`, re-polling as an EA does; a device acks what it receives) and presses Approve
for one user after another. Each sample is the time from sending the press to the moment
that user's device has its ``open``. The hello-world baseline of the same run is printed
for scale.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from bench.common import (
    BENCH_BOT_ID,
    CLIENT_CPU,
    free_port,
    measure_baseline,
    minimal_bot_api_app,
    print_header,
    server_process,
)
from bench.ea_support import BenchDevice, prepare_devices, settings_for, signed
from bot.chat.callbacks import SignalVote, Vote

WAIT_S = 25
POLL_TARGET = f"/api/v1/ea/instructions?wait={WAIT_S}"


def press_update(update_id: int, device: BenchDevice, message_id: int, signal_pk: int) -> str:
    user = {"id": device.owner_id, "is_bot": False, "first_name": "Bench", "language_code": "en"}
    return json.dumps(
        {
            "update_id": update_id,
            "callback_query": {
                "id": f"cb{update_id}",
                "from": user,
                "message": {
                    "message_id": message_id,
                    "from": {"id": BENCH_BOT_ID, "is_bot": True, "first_name": "Bench"},
                    "chat": {"id": device.owner_id, "type": "private", "first_name": "U"},
                    "date": int(time.time()),
                    "text": "signal",
                },
                "chat_instance": str(device.owner_id),
                "data": SignalVote(action=Vote.APPROVE, signal=signal_pk).pack(),
            },
        }
    )


class Devices:
    """Every device's long-poll loop; records when each device receives its open."""

    def __init__(self, http: aiohttp.ClientSession, base: str, devices: list[BenchDevice]):
        self.http = http
        self.base = base
        self.devices = devices
        self.received: dict[int, float] = {}
        self.arrived: dict[int, asyncio.Event] = {d.pk: asyncio.Event() for d in devices}
        self.polling = 0
        self.errors = 0
        self.stop = False

    async def run(self, device: BenchDevice) -> None:
        while not self.stop:
            request = signed(device, "GET", POLL_TARGET)
            self.polling += 1
            try:
                async with self.http.get(self.base + request.path, headers=request.headers) as r:
                    body = await r.json()
                    status = r.status
            except (aiohttp.ClientError, TimeoutError):
                self.errors += 1
                continue
            finally:
                self.polling -= 1
            if status != 200:
                self.errors += 1
                await asyncio.sleep(0.5)
                continue
            for instruction in body["instructions"]:
                if device.pk not in self.received:
                    self.received[device.pk] = time.perf_counter()
                    self.arrived[device.pk].set()
                ack = signed(
                    device,
                    "POST",
                    "/api/v1/exec/ack",
                    {"report_id": f"ack-{device.pk:08d}", "instruction_id": instruction["id"]},
                )
                async with self.http.post(
                    self.base + ack.path, data=ack.body, headers=ack.headers
                ) as response:
                    await response.read()


async def measure(base: str, devices: list[BenchDevice], signal_pk: int, presses: int) -> None:
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=WAIT_S + 30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        crowd = Devices(http, base, devices)
        loops = [asyncio.create_task(crowd.run(device)) for device in devices]
        # Let every first poll reach the server and settle into waiting.
        await asyncio.sleep(3 + len(devices) / 250)
        waiting_at_start = crowd.polling
        latencies: list[float] = []
        press_round_trips: list[float] = []
        for index, device in enumerate(devices[:presses]):
            body = press_update(index + 1, device, index + 1, signal_pk)
            started = time.perf_counter()
            async with http.post(
                base + "/bench/update", data=body, headers={"Content-Type": "application/json"}
            ) as response:
                await response.read()
                assert response.status == 200, await response.text()
            press_round_trips.append(time.perf_counter() - started)
            await asyncio.wait_for(crowd.arrived[device.pk].wait(), 10)
            latencies.append(crowd.received[device.pk] - started)
            await asyncio.sleep(0.01)
        crowd.stop = True
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)

    def ms(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    print(
        f"devices {len(devices)}, polls open when pressing began {waiting_at_start}, "
        f"presses {len(latencies)}, poll errors {crowd.errors}"
    )
    print(
        f"Approve press → device's answer   p50 {ms(latencies, 0.5):7.2f} ms  "
        f"p99 {ms(latencies, 0.99):7.2f} ms  max {max(latencies) * 1000:7.2f} ms  "
        f"mean {statistics.fmean(latencies) * 1000:7.2f} ms"
    )
    print(
        f"press handled (update round trip)  p50 {ms(press_round_trips, 0.5):7.2f} ms  "
        f"p99 {ms(press_round_trips, 0.99):7.2f} ms"
    )


async def run_fake_api(port: int) -> web.AppRunner:
    runner = web.AppRunner(await minimal_bot_api_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def main(count: int, presses: int) -> None:
    print_header(f"approve latency: {count} devices long-polling")
    baseline = measure_baseline(seconds=5)
    print(baseline.line())
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'approve.sqlite3'}"
        devices, signal_pk = asyncio.run(prepare_devices(settings_for(url), count))
        api_port = free_port()

        async def session() -> None:
            runner = await run_fake_api(api_port)
            try:
                env = {"BENCH_DATABASE_URL": url, "BENCH_BOT_API": f"http://127.0.0.1:{api_port}"}
                with server_process("bench.ea_support:side_server", env=env) as base:
                    await measure(base, devices, signal_pk, presses)
            finally:
                await runner.cleanup()

        asyncio.run(session())


if __name__ == "__main__":
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {CLIENT_CPU})
    arguments = [int(value) for value in sys.argv[1:3]]
    main(*(arguments + [1000, 300][len(arguments) :]))
