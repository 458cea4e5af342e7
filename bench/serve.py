"""`python -m bench.serve module:factory PORT`: serve an app factory on one pinned core."""

from __future__ import annotations

import asyncio
import importlib
import os
import signal
import sys

from aiohttp import web

from bench.common import SERVER_CPU


async def main(factory_path: str, port: int) -> None:
    module_name, _, attr = factory_path.partition(":")
    factory = getattr(importlib.import_module(module_name), attr)
    app: web.Application = await factory()
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def run(factory_path: str, port: int) -> None:
    """Serve; with BENCH_PROFILE=<dir>, write a cProfile of the whole run there."""
    profile_dir = os.environ.get("BENCH_PROFILE")
    if not profile_dir:
        asyncio.run(main(factory_path, port))
        return
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        asyncio.run(main(factory_path, port))
    finally:
        profiler.disable()
        name = factory_path.replace(":", ".").replace("/", "_")
        profiler.dump_stats(os.path.join(profile_dir, f"{name}.prof"))


if __name__ == "__main__":
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {SERVER_CPU})
    run(sys.argv[1], int(sys.argv[2]))
