"""The device endpoints of EA_PROTOCOL.md sections 3 and 5: instructions (long poll),
reports, the device's state and position events."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from bot.execution.device_state import InvalidState, parse_state, poll_wait, store_state
from bot.execution.report_desk import ReportConflictError, UnknownInstructionError
from bot.execution.reports import (
    RECORD_ID_RE,
    InvalidReport,
    ReportKind,
    parse_event,
    parse_report,
)
from bot.execution.wire import (
    UnknownSignalError,
    idle_devices,
    pending_instructions,
    signal_records,
)
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


@signed
async def get_instructions(request: web.Request) -> web.Response:
    app = request.app
    device = request[DEVICE]
    wait = _wait_seconds(request.query.getall("wait", ()))

    async def pending() -> list[dict[str, Any]]:
        async with app[SESSIONMAKER].begin() as session:
            return await pending_instructions(session, device, app[CLOCK]())

    instructions = await app[DEVICE_HUB].poll(device.pk, pending, wait)
    return web.json_response(
        {"instructions": list(instructions), "server_time": int(app[CLOCK]().timestamp())}
    )


def _json_body(body: bytes, what: str = "report") -> Any:
    try:
        parsed = parse_json(body)
    except NotJson as exc:
        raise ApiError(400, "invalid_json", f"The body is not valid JSON: {exc.reason}.") from None
    if parsed.problems:
        raise ApiError(
            422, "invalid_request", f"The {what} has invalid fields.", fields=parsed.problems
        )
    return parsed.value


def _report_view(kind: ReportKind | None) -> Handler:
    """The view of one report kind, or of position events (5.4) for ``None``."""

    @signed
    async def post_report(request: web.Request) -> web.Response:
        try:
            body = _json_body(await request.read())
            report = parse_event(body) if kind is None else parse_report(kind, body)
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

    post_report.__name__ = f"post_{'event' if kind is None else kind.value}"
    return post_report


@signed
async def post_state(request: web.Request) -> web.Response:
    """5.1: keep the device's latest state; suggest the ``wait`` of its next polls."""
    app = request.app
    device = request[DEVICE]
    try:
        state = parse_state(_json_body(await request.read(), "state"))
    except InvalidState as exc:
        raise ApiError(
            422, "invalid_request", "The state has invalid fields.", fields=exc.fields
        ) from None
    now = app[CLOCK]()
    async with app[SESSIONMAKER].begin() as session:
        await store_state(session, device.pk, state, now)

    async def pending() -> list[dict[str, Any]]:
        async with app[SESSIONMAKER].begin() as session:
            return await pending_instructions(session, device, app[CLOCK]())

    # Known idle (the usual case): no read at all; else one read, as a poll would do.
    work = await app[DEVICE_HUB].poll(device.pk, pending, 0)
    return web.json_response(
        {"server_time": int(now.timestamp()), "poll_wait": poll_wait(bool(work))}
    )


@signed
async def get_status(request: web.Request) -> web.Response:
    signal_id = request.match_info["signal_id"]
    if not RECORD_ID_RE.fullmatch(signal_id):
        # Not an id this server hands out: no query (PostgreSQL refuses NUL and the like).
        raise ApiError(404, "unknown_signal", "This device has no instructions for that signal.")
    try:
        async with request.app[SESSIONMAKER].begin() as session:
            records = await signal_records(session, request[DEVICE], signal_id)
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


async def _device_hub(app: web.Application) -> Any:
    # After container.start(): subscribed to pub/sub before reading what is pending.
    hub, sessionmaker, clock = app[DEVICE_HUB], app[SESSIONMAKER], app[CLOCK]

    async def idle() -> set[int]:
        async with sessionmaker() as session:
            return await idle_devices(session, clock())

    await hub.start(idle)
    yield
    await hub.close()


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/ea/instructions", get_instructions, allow_head=False)
    app.router.add_post("/api/v1/ea/state", post_state)
    for kind in ReportKind:
        app.router.add_post(f"/api/v1/exec/{kind.value}", _report_view(kind))
    app.router.add_post("/api/v1/exec/event", _report_view(None))
    app.router.add_get("/api/v1/exec/status/{signal_id}", get_status, allow_head=False)
    app.on_shutdown.append(_release_polls)
    app.cleanup_ctx.append(_device_activity)
    app.cleanup_ctx.append(_device_hub)
