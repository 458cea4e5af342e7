"""The side server: EA reports, provider API, /healthz, /metrics, Telegram's webhook.

Every response carries ``X-Server-Time``; every error is the JSON of EA_PROTOCOL.md
(``{"error": code, "message": text}``), never HTML and never a stack trace.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from bot.container import Services
from bot.intake.webhook import WebhookIntake
from bot.lifecycle import ShutdownGate
from bot.web import ea, openapi, provider, telegram
from bot.web.errors import MAX_BODY_BYTES, error_middleware, json_error
from bot.web.keys import (
    CLOCK,
    DEVICE_ACTIVITY,
    DEVICE_HEALTH,
    DEVICE_HUB,
    DEVICE_KEYS,
    ENGINE,
    METRICS,
    NONCES,
    REPORTS,
    SESSIONMAKER,
    SETTINGS,
    SHUTDOWN_GATE,
    SIGNALS,
    WEBHOOK_INTAKE,
)
from db.engine import ping

logger = logging.getLogger(__name__)

HEALTH_TIMEOUT_S = 3.0


async def _server_time_header(request: web.Request, response: web.StreamResponse) -> None:
    # The clock X-Timestamp is checked against, so a device corrects to the time that counts.
    response.headers["X-Server-Time"] = str(int(request.app[CLOCK]().timestamp()))


async def healthz(request: web.Request) -> web.Response:
    try:
        await asyncio.wait_for(ping(request.app[ENGINE]), timeout=HEALTH_TIMEOUT_S)
    except Exception as exc:
        logger.warning("healthz: database did not answer: %s", type(exc).__name__)
        return json_error(503, "database_unavailable", "The database does not answer.")
    return web.json_response({"status": "ok"})


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz, allow_head=False)
    openapi.setup(app)
    settings = app[SETTINGS]
    if settings.metrics.enabled and not settings.metrics.port:
        app.router.add_get("/metrics", app[METRICS].view, allow_head=False)
    ea.setup(app)
    provider.setup(app)
    telegram.setup(app)


def create_app(services: Services, *, intake: WebhookIntake | None = None) -> web.Application:
    """The side server on ``services``; with ``intake`` (webhook mode) it also takes
    Telegram's updates. Each view finds what it uses under its key (bot/web/keys.py)."""
    gate = ShutdownGate()
    # client_max_size also caps chunked bodies that carry no Content-Length.
    app = web.Application(
        middlewares=[services.metrics.aiohttp_middleware(), error_middleware, gate.middleware],
        client_max_size=MAX_BODY_BYTES,
    )
    app[SETTINGS] = services.settings
    app[CLOCK] = services.clock
    app[ENGINE] = services.engine
    app[SESSIONMAKER] = services.sessionmaker
    app[METRICS] = services.metrics
    app[SIGNALS] = services.signals
    app[REPORTS] = services.reports
    app[DEVICE_KEYS] = services.device_keys
    app[NONCES] = services.nonces
    app[DEVICE_ACTIVITY] = services.device_activity
    app[DEVICE_HEALTH] = services.device_health
    app[DEVICE_HUB] = services.device_hub
    app[SHUTDOWN_GATE] = gate
    if intake is not None:
        app[WEBHOOK_INTAKE] = intake
    app.on_response_prepare.append(_server_time_header)
    setup_routes(app)
    return app
