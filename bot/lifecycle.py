"""Shutdown: the side server's gate, and the error that parts of it raise when closing.

SIGTERM first stops new work. The gate is an aiohttp middleware (inside the error
middleware, so what it answers is final): once closed, every new request gets
``503 {"error": "shutting_down", ...}`` with ``Retry-After`` (Telegram redelivers a
webhook update, an EA resends its report), and a service that stops taking work while a
request is inside (the report writer) raises :class:`ShuttingDown`, answered the same way.
Requests already running finish. bot/app.py runs the rest of the sequence.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

# Clients may try again this many seconds later (a restart takes about this long).
RETRY_AFTER_S = 5

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ShuttingDown(Exception):
    """The process is stopping: the work was not done, and may be asked for again."""


class ShutdownGate:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.closed:
            return shutting_down()
        try:
            return await handler(request)
        except ShuttingDown:
            return shutting_down()


def shutting_down() -> web.Response:
    return web.json_response(
        {"error": "shutting_down", "message": "The server is restarting; try again shortly."},
        status=503,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )
