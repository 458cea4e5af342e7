"""Shared benchmark parts: a server in its own process, wrk as the load, a baseline.

The server runs pinned to CPU 0 and wrk (a C load generator) to CPU 1, so the client is
never the bottleneck and the two do not steal each other's core. Requests are built in
Python beforehand (signed ones need unique nonces) and replayed by bench/wrk.lua.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
SERVER_CPU = 0
CLIENT_CPU = 1


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def line(self) -> str:
        body = self.body.decode()
        if "\t" in body or "\n" in body:
            raise ValueError("bodies must be compact JSON without tabs or newlines")
        headers = "\x1f".join(f"{name}:{value}" for name, value in self.headers.items())
        return f"{self.method}\t{self.path}\t{headers}\t{body}"


@dataclass(frozen=True, slots=True)
class Result:
    name: str
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def line(self, baseline: Result | None = None) -> str:
        text = (
            f"{self.name:<34} {self.rps:>9.0f} req/s  p50 {self.p50_ms:>7.2f} ms  "
            f"p99 {self.p99_ms:>7.2f} ms  errors {self.errors}"
        )
        if baseline is not None and baseline.rps:
            text += f"  ratio {self.rps / baseline.rps:.3f}"
        return text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        sys.exit("wrk is not installed: apt-get install wrk (Debian) or brew install wrk")
    return path


def _duration_ms(value: str, unit: str) -> float:
    factor = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]
    return float(value) * factor


def _parse_wrk(name: str, output: str) -> Result:
    total = re.search(r"(\d+) requests in ([\d.]+)(\w+)", output)
    if total is None:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    seconds = _duration_ms(total.group(2), total.group(3)) / 1000
    percentiles = dict(re.findall(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+\w+)", output, re.MULTILINE))

    def ms(text: str) -> float:
        match = re.match(r"([\d.]+)(\w+)", text)
        assert match is not None
        return _duration_ms(match.group(1), match.group(2))

    errors = 0
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        errors += int(non_2xx.group(1))
    socket_errors = re.search(r"Socket errors: (.*)", output)
    if socket_errors:
        errors += sum(int(n) for n in re.findall(r"\d+", socket_errors.group(1)))
    return Result(
        name=name,
        requests=int(total.group(1)),
        seconds=seconds,
        errors=errors,
        p50_ms=ms(percentiles["50"]),
        p99_ms=ms(percentiles["99"]),
    )


def run_wrk(
    name: str,
    base_url: str,
    requests: Iterable[Request],
    *,
    connections: int = 32,
    seconds: int = 10,
) -> Result:
    """Replay ``requests`` (each at most once) against ``base_url`` for ``seconds``."""
    wrk = require_wrk()
    with tempfile.NamedTemporaryFile("w", suffix=".reqs", delete=False) as handle:
        count = 0
        for request in requests:
            handle.write(request.line() + "\n")
            count += 1
        path = handle.name
    try:
        command = [
            wrk,
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "--timeout",
            "30s",
            "-s",
            str(BENCH_DIR / "wrk.lua"),
            base_url,
            "--",
            path,
        ]
        if shutil.which("taskset"):
            command = ["taskset", "-c", str(CLIENT_CPU), *command]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(path)
    result = _parse_wrk(name, output)
    if result.requests > count:
        print(
            f"warning: {name}: {result.requests} sent but only {count} prepared; "
            "raise the prepared count",
            file=sys.stderr,
        )
    return result


def repeat(request: Request, count: int) -> Iterator[Request]:
    for _ in range(count):
        yield request


# --- what several benchmarks share -----------------------------------------------------

BENCH_BOT_ID = 123456789


def user_rows(first_id: int, count: int, now: datetime) -> list[dict[str, Any]]:
    """``count`` users (ids from ``first_id``) for ``insert(User)``, seen at ``now``."""
    return [
        {
            "id": first_id + index,
            "first_name": "Bench",
            "language_code": "en",
            "role": "user",
            "created_at": now,
            "last_seen_at": now,
            "is_blocked": False,
        }
        for index in range(count)
    ]


async def minimal_bot_api_app() -> web.Application:
    """Telegram's answers to getMe, sendMessage and editMessageText, with no limit and
    nothing recorded (``True`` for anything else). Reads JSON bodies (our session) and
    forms (aiogram's own), as Telegram does."""
    message_ids = itertools.count(1)

    async def handle(request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.content_type == "application/json":
            params: dict[str, Any] = await request.json()
        else:
            params = dict(await request.post())
        result: Any = True
        if method == "getMe":
            result = {
                "id": BENCH_BOT_ID,
                "is_bot": True,
                "first_name": "Bench",
                "username": "bench_bot",
            }
        elif method in ("sendMessage", "editMessageText"):
            result = {
                "message_id": int(str(params.get("message_id", 0))) or next(message_ids),
                "date": int(time.time()),
                "chat": {"id": int(str(params["chat_id"])), "type": "private", "first_name": "U"},
                "text": str(params.get("text", "")),
            }
        return web.json_response({"ok": True, "result": result})

    app = web.Application()
    app.router.add_post("/bot{token}/{method}", handle)
    return app


# --- servers in their own process ------------------------------------------------------


async def hello_app() -> web.Application:
    """The baseline: bare aiohttp, no middleware, a constant answer."""

    async def hello(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/hello", hello)
    return app


@contextlib.contextmanager
def server_process(factory: str, *, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """Run ``module:async_factory`` (returning a web.Application) in a child; yield its URL."""
    port = free_port()
    child_env = {**os.environ, **(env or {}), "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.serve", factory, str(port)],
        cwd=REPO_ROOT,
        env=child_env,
    )
    try:
        _wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(process)


def stop_process(process: subprocess.Popen[Any]) -> None:
    """SIGTERM (the servers shut down cleanly on it), then SIGKILL after 15 s."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("server did not start listening in time")


def measure_baseline(*, connections: int = 32, seconds: int = 10) -> Result:
    with server_process("bench.common:hello_app") as url:
        count = 60_000 * seconds
        return run_wrk(
            "aiohttp hello-world (baseline)",
            url,
            repeat(Request("GET", "/hello"), count),
            connections=connections,
            seconds=seconds,
        )


def print_header(title: str) -> None:
    cores = os.cpu_count()
    print(f"== {title}  (server on CPU {SERVER_CPU}, wrk on CPU {CLIENT_CPU}, {cores} cores)")
