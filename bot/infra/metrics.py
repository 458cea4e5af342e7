"""Prometheus metrics: one registry per container (tests stay isolated), served at /metrics.

Features feed two gauges through hooks, without importing prometheus_client:
``metrics.watch_long_polls(lambda: hub.waiting)`` (EA long polls waiting) and
``metrics.watch_send_queue(lambda: queue.qsize())`` (messages waiting to be sent); the
gauges are also plain ``Gauge`` objects (``metrics.send_queue_depth.inc()``) for code
that prefers counting itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramConflictError,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.methods import Response, TelegramMethod
    from aiogram.methods.base import TelegramType

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

# Most specific first: TelegramEntityTooLarge is a network error, RestartingTelegram a 5xx.
_API_ERRORS: tuple[tuple[type[TelegramAPIError], str], ...] = (
    (TelegramRetryAfter, "retry_after"),
    (TelegramForbiddenError, "forbidden"),
    (TelegramBadRequest, "bad_request"),
    (TelegramNotFound, "not_found"),
    (TelegramUnauthorizedError, "unauthorized"),
    (TelegramConflictError, "conflict"),
    (TelegramMigrateToChat, "migrate_to_chat"),
    (TelegramEntityTooLarge, "entity_too_large"),
    (TelegramServerError, "server_error"),
    (TelegramNetworkError, "network"),
)


def api_error_kind(exc: TelegramAPIError) -> str:
    return next((kind for cls, kind in _API_ERRORS if isinstance(exc, cls)), "other")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        self.updates = Counter(
            "signalbridge_updates",
            "Telegram updates by type and outcome "
            "(handled, unhandled, error, throttled, duplicate, cancelled).",
            ["type", "outcome"],
            registry=registry,
        )
        self.update_seconds = Histogram(
            "signalbridge_update_duration_seconds",
            "Time to process one update through middlewares and handler, by handler.",
            ["handler"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.bot_api_requests = Counter(
            "signalbridge_bot_api_requests",
            "Bot API requests made, by method.",
            ["method"],
            registry=registry,
        )
        self.bot_api_errors = Counter(
            "signalbridge_bot_api_errors",
            "Bot API requests that failed, by method and kind of error.",
            ["method", "error"],
            registry=registry,
        )
        self.http_requests = Counter(
            "signalbridge_http_requests",
            "Side-server requests (EA, provider, webhook, health) by route, method and status.",
            ["endpoint", "method", "status"],
            registry=registry,
        )
        self.http_seconds = Histogram(
            "signalbridge_http_request_duration_seconds",
            "Side-server response time by route (long polls included).",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.long_polls_waiting = Gauge(
            "signalbridge_long_polls_waiting",
            "EA long polls currently waiting for an instruction.",
            registry=registry,
        )
        self.send_queue_depth = Gauge(
            "signalbridge_send_queue_depth",
            "Messages waiting in the rate-limited send path.",
            registry=registry,
        )
        self.webhook_queue_depth = Gauge(
            "signalbridge_webhook_queue_depth",
            "Webhook updates accepted and not yet processed (running ones included).",
            registry=registry,
        )

    def watch_long_polls(self, source: Callable[[], float]) -> None:
        """Report ``source()`` as the number of EA long polls waiting, read at each scrape."""
        self.long_polls_waiting.set_function(source)

    def watch_send_queue(self, source: Callable[[], float]) -> None:
        """Report ``source()`` as the send-queue depth, read at each scrape."""
        self.send_queue_depth.set_function(source)

    def watch_webhook_queue(self, source: Callable[[], float]) -> None:
        self.webhook_queue_depth.set_function(source)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    # ------------------------------------------------------------------ hooks

    def bot_api_middleware(self) -> BotApiMetrics:
        """For ``bot.session.middleware(...)``: counts every Bot API call and failure."""
        return BotApiMetrics(self)

    def aiohttp_middleware(self) -> Middleware:
        """Counts every request of an aiohttp app by route and final status."""
        requests = self.http_requests
        seconds = self.http_seconds
        # The labelled children, kept (as prometheus_client suggests for hot paths): the
        # labels are route templates, methods and statuses, a bounded set.
        counters: dict[tuple[str, str, str], Counter] = {}
        timers: dict[str, Histogram] = {}

        @web.middleware
        async def count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
            started = time.perf_counter()
            status = 500
            try:
                response = await handler(request)
                status = response.status
                return response
            except web.HTTPException as exc:
                status = exc.status
                raise
            except asyncio.CancelledError:
                status = 499  # the client went away (nginx's code for it)
                raise
            finally:
                endpoint = _endpoint(request)
                key = (endpoint, request.method, str(status))
                counter = counters.get(key)
                if counter is None:
                    counter = counters[key] = requests.labels(*key)
                counter.inc()
                timer = timers.get(endpoint)
                if timer is None:
                    timer = timers[endpoint] = seconds.labels(endpoint)
                timer.observe(time.perf_counter() - started)

        return count_requests

    async def view(self, _request: web.Request) -> web.Response:
        return web.Response(body=self.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def _endpoint(request: web.Request) -> str:
    """The route template (``/ea/v1/devices/{id}``), never the raw path: bounded labels."""
    resource = request.match_info.route.resource
    if resource is None:
        return "unmatched"
    return resource.canonical


class BotApiMetrics(BaseRequestMiddleware):
    def __init__(self, metrics: Metrics) -> None:
        self.requests = metrics.bot_api_requests
        self.errors = metrics.bot_api_errors

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        name = method.__api_method__
        self.requests.labels(name).inc()
        try:
            return await make_request(bot, method)
        except TelegramAPIError as exc:
            self.errors.labels(name, api_error_kind(exc)).inc()
            raise


def create_metrics_app(metrics: Metrics) -> web.Application:
    """A listener of its own for /metrics (``metrics.port`` set): keeps it off the public port."""
    app = web.Application()
    app.router.add_get("/metrics", metrics.view, allow_head=False)
    return app
