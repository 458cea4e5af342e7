"""Report ingestion: distinct valid fills at concurrency 32 on SQLite, against the
hello-world baseline measured in the same run.

`python -m bench.reports [SECONDS] [ROUNDS]`. The parent prepares a database with 32
devices and enough instructions for every request to be a new fill of its own
instruction, signs the requests like an EA, and replays each once with wrk; the real side
server runs in a child on the server CPU. Each round measures hello-world first; the
median ratio over the rounds counts. Afterwards it checks that every 201 stored exactly
one record.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
from pathlib import Path

from sqlalchemy import func, select

from bench.common import measure_baseline, print_header, run_wrk, server_process
from bench.ea_support import fill_request, prepare_fills, settings_for
from bot.factory import create_services
from db.models import ExecutionRecord

CONNECTIONS = 32
DEVICES = 32
# Prepared per second of the run: above the best rate the server could reach.
PER_SECOND = 12_000
# Rounds, each against a baseline measured just before it; the median ratio counts, since
# other load on the machine moves both (as in bench.ea_poll).
ROUNDS = 3


async def prepare(database_url: str, count: int) -> list[tuple[object, str]]:
    return list(await prepare_fills(database_url, DEVICES, count))


async def stored(database_url: str) -> int:
    container = create_services(settings_for(database_url))
    try:
        async with container.sessionmaker() as session:
            return int(await session.scalar(select(func.count()).select_from(ExecutionRecord)) or 0)
    finally:
        await container.engine.dispose()


def main(seconds: int, rounds: int = ROUNDS) -> None:
    print_header("report ingestion: distinct fills, concurrency 32, SQLite")
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'reports.sqlite3'}"
        count = PER_SECOND * seconds
        # Every round's fills are new: each takes its own slice of the prepared ones.
        targets = asyncio.run(prepare(url, count * rounds))
        answered = 0
        for round_ in range(rounds):
            baseline = measure_baseline(connections=CONNECTIONS, seconds=seconds)
            print(baseline.line())
            with server_process(
                "bench.ea_support:side_server", env={"BENCH_DATABASE_URL": url}
            ) as base:
                part = targets[round_ * count : (round_ + 1) * count]
                requests = [
                    fill_request(device, instruction_id, f"r-{round_}-{index:010d}")  # type: ignore[arg-type]
                    for index, (device, instruction_id) in enumerate(part)
                ]
                result = run_wrk(
                    "POST /api/v1/exec/fill (new fills)",
                    base,
                    requests,
                    connections=CONNECTIONS,
                    seconds=seconds,
                )
            print(result.line(baseline))
            ratios.append(result.rps / baseline.rps)
            answered += result.requests - result.errors
        records = asyncio.run(stored(url))
        print(f"records stored: {records} (answered without error: {answered})")
    if len(ratios) > 1:
        print(f"median ratio over {len(ratios)} rounds: {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 10,
        int(sys.argv[2]) if len(sys.argv) > 2 else ROUNDS,
    )
