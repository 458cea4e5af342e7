"""Log lines cannot be forged: request-derived values are escaped where records are formatted."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from yarl import URL

from bot.container import Container
from bot.logging_setup import (
    DATE_FORMAT,
    FORMAT,
    DropUndecodableBodies,
    OneLineFormatter,
    escape_for_log,
)
from tests.conftest import REPO_ROOT
from webhook_server import create_app

HOSTILE = "a\nb\rc\x1b[31md\x00e\x85f\u2028g\udcffh\ti"


def test_escape_for_log_leaves_one_printable_line() -> None:
    escaped = escape_for_log(HOSTILE)
    assert escaped == "a\\nb\\rc\\x1b[31md\\x00e\\x85f\\u2028g\\udcffh\\ti"
    assert escaped.isprintable()
    assert escape_for_log("plain text, ünïcödé and € stay") == "plain text, ünïcödé and € stay"


def _record(message: str, *args: Any, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("test", logging.WARNING, __file__, 1, message, args, exc_info)


def test_formatter_escapes_message_and_args_and_indents_tracebacks() -> None:
    formatter = OneLineFormatter(FORMAT, DATE_FORMAT)
    line = formatter.format(_record("path %s", "/x\n2026-01-01 ERROR forged: line"))
    assert "\n" not in line
    assert line.endswith("path /x\\n2026-01-01 ERROR forged: line")

    try:
        raise ValueError("bad value\nFORGED record\x1b[2J")
    except ValueError as exc:
        error = exc
    lines = formatter.format(_record("failed on %s", "/y\r\n", exc=error)).split("\n")
    assert lines[0].endswith("failed on /y\\r\\n")
    assert len(lines) > 2
    # Every line after the first is indented: none can pass for a record of its own.
    assert all(line.startswith("    ") for line in lines[1:])
    assert any("FORGED record\\x1b[2J" in line for line in lines[1:])
    # The record itself is untouched for other handlers.
    record = _record("raw %s", "a\nb")
    formatter.format(record)
    assert record.getMessage() == "raw a\nb"


def test_setup_logging_installs_the_formatter() -> None:
    script = (
        "import logging; from bot.logging_setup import setup_logging; setup_logging('INFO'); "
        "logging.getLogger('probe').warning('seen %s', 'x\\nFORGED\\x1b[0m\\udcff')"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
        timeout=60,
    )
    output = done.stderr.decode("utf-8")
    assert output.count("\n") == 1
    assert output.rstrip("\n").endswith("WARNING probe: seen x\\nFORGED\\x1b[0m\\udcff")


@pytest.fixture
def side_server_log() -> Iterator[io.StringIO]:
    """What the production formatter writes for the side server's and aiohttp's records."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(OneLineFormatter(FORMAT, DATE_FORMAT))
    loggers = [logging.getLogger("bot.web.errors"), logging.getLogger("aiohttp.server")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield stream
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


async def _fail(_request: web.Request) -> web.Response:
    raise RuntimeError("view failed")


async def test_a_newline_in_the_url_stays_on_the_record_line(
    container: Container, aiohttp_client: Any, side_server_log: io.StringIO
) -> None:
    app = create_app(container)
    app.router.add_get(r"/fail/{tail:[\s\S]*}", _fail)
    client: TestClient[Any, Any] = await aiohttp_client(app)
    target = "/fail/x%0A2026-01-01T00:00:00+0000%20ERROR%20forged:%20%1B[31mline%0D"
    response = await client.get(URL(target, encoded=True))
    assert response.status == 500
    lines = side_server_log.getvalue().splitlines()
    assert lines[0].endswith(
        "unhandled error on GET /fail/x\\n2026-01-01T00:00:00+0000 ERROR forged: \\x1b[31mline\\r"
    )
    assert all(line.startswith("    ") for line in lines[1:])


def test_undecodable_body_noise_is_dropped_and_nothing_else() -> None:
    drop = DropUndecodableBodies()
    noise = _record("Unhandled exception", exc=web.RequestPayloadError("cannot decode"))
    assert drop.filter(noise) is False
    assert drop.filter(_record("Unhandled exception", exc=RuntimeError("real"))) is True
    assert drop.filter(_record("Error handling request")) is True
