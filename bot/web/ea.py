"""The device endpoints of EA_PROTOCOL.md section 3: instructions (long poll) and reports."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from bot.execution.device_keys import DeviceIdentity
from bot.execution.instructions import (
    ReportConflictError,
    UnknownInstructionError,
    UnknownSignalError,
    pending_instructions,
)
from bot.execution.reports import RECORD_ID_RE, InvalidReport, ReportKind, parse_report
from bot.web.device_auth import DEVICE, Handler, signed
from bot.web.errors import ApiError
from bot.web.json_body import NotJson, parse_json
from bot.web.keys import CLOCK, DEVICE_ACTIVITY, DEVICE_HUB, REPORTS, SESSIONMAKER

MAX_WAIT_S = 25
_WAIT_RE = re.compile(r"[0-9]{1,2}")


def _wait_seconds(values: Iterable[str]) -> int:
    given = list(values)
    if not given:
        return 0
    if len(given) == 1 and _WAIT_RE.fullmatch(given[0]) and int(given[0]) <= MAX_WAIT_S:
        return int(given[0])
    raise ApiError(
        422,
        "invalid_request",
        "The request has invalid fields.",
        fields={"wait": f"must be a whole number of seconds from 0 to {MAX_WAIT_S}"},
    )


async def _pending(app: web.Application, device: DeviceIdentity) -> list[dict[str, Any]]:
    """Pending instructions, or [] without a database read while the device is idle."""
    hub = app[DEVICE_HUB]
    if hub.is_idle(device.pk):
        return []
    generation = hub.generation(device.pk)
    async with app[SESSIONMAKER].begin() as session:
        instructions = await pending_instructions(session, device, app[CLOCK]())
    if not instructions:
        hub.mark_idle(device.pk, generation)
    return instructions


@signed
async def get_instructions(request: web.Request) -> web.Response:
    app = request.app
    device = request[DEVICE]
    wait = _wait_seconds(request.query.getall("wait", ()))
    if wait == 0:
        instructions = await _pending(app, device)
    else:
        hub = app[DEVICE_HUB]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            # Registered before the check: a notification during it wakes the wait at once.
            with hub.waiter(device.pk) as waiter:
                instructions = await _pending(app, device)
                remaining = deadline - loop.time()
                if instructions or remaining <= 0 or hub.released:
                    break
                await waiter.wait(remaining)
    return web.json_response(
        {"instructions": instructions, "server_time": int(app[CLOCK]().timestamp())}
    )


def _json_body(body: bytes) -> Any:
    try:
        parsed = parse_json(body)
    except NotJson as exc:
        raise ApiError(400, "invalid_json", f"The body is not valid JSON: {exc.reason}.") from None
    if parsed.problems:
        raise ApiError(
            422, "invalid_request", "The report has invalid fields.", fields=parsed.problems
        )
    return parsed.value


def _report_view(kind: ReportKind) -> Handler:
    @signed
    async def post_report(request: web.Request) -> web.Response:
        try:
            report = parse_report(kind, _json_body(await request.read()))
        except InvalidReport as exc:
            raise ApiError(
                422, "invalid_request", "The report has invalid fields.", fields=exc.fields
            ) from None
        try:
            receipt = await request.app[REPORTS].record(request[DEVICE], report)
        except UnknownInstructionError as exc:
            raise ApiError(404, "unknown_instruction", exc.message) from None
        except ReportConflictError as exc:
            raise ApiError(409, "report_conflict", exc.message) from None
        return web.json_response(
            {"id": receipt.id, "duplicate": receipt.duplicate},
            status=200 if receipt.duplicate else 201,
        )

    post_report.__name__ = f"post_{kind.value}"
    return post_report


@signed
async def get_status(request: web.Request) -> web.Response:
    signal_id = request.match_info["signal_id"]
    if not RECORD_ID_RE.fullmatch(signal_id):
        # Not an id this server hands out: no query (PostgreSQL refuses NUL and the like).
        raise ApiError(404, "unknown_signal", "This device has no instructions for that signal.")
    try:
        async with request.app[SESSIONMAKER].begin() as session:
            records = await request.app[REPORTS].signal_records(session, request[DEVICE], signal_id)
    except UnknownSignalError as exc:
        raise ApiError(404, "unknown_signal", exc.message) from None
    return web.json_response({"signal_id": signal_id, "records": records})


async def _release_polls(app: web.Application) -> None:
    # Shutdown must not wait for 25-second polls: they answer now with what is pending.
    app[DEVICE_HUB].release_all()


async def _device_activity(app: web.Application) -> Any:
    activity = app[DEVICE_ACTIVITY]
    await activity.start()
    yield
    await activity.close()


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/ea/instructions", get_instructions, allow_head=False)
    for kind in ReportKind:
        app.router.add_post(f"/api/v1/exec/{kind.value}", _report_view(kind))
    app.router.add_get("/api/v1/exec/status/{signal_id}", get_status, allow_head=False)
    app.on_shutdown.append(_release_polls)
    app.cleanup_ctx.append(_device_activity)
