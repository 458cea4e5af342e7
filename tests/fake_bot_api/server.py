"""The fake Bot API's aiohttp server: routing each request to its answer, and the lifecycle.

:class:`FakeBotAPI` serves ``/bot{token}/{method}`` on 127.0.0.1 (a free port). Each request
is decoded (:mod:`.wire`) and recorded (:mod:`.calls`), then answered in this order: an
injected failure or hold (:mod:`.failures`), a handler the test set with
:meth:`FakeBotAPI.set_handler`, getUpdates (:mod:`.updates`), Telegram's own answer
(:mod:`.telegram`), else 400 "method not found".
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.fake_bot_api.calls import Call, CallLog
from tests.fake_bot_api.failures import FailureInjection, FakeApiError
from tests.fake_bot_api.telegram import FakeTelegram, Handler
from tests.fake_bot_api.updates import UpdateQueue
from tests.fake_bot_api.wire import read_params

if TYPE_CHECKING:
    from aiogram import Bot

METHOD_NOT_FOUND_DESCRIPTION = "Bad Request: method not found"


class FakeBotAPI(CallLog, FailureInjection, UpdateQueue):
    """A fake Telegram Bot API server for aiogram's real HTTP session (see the package)."""

    def __init__(self, *, shutdown_timeout: float = 2.0) -> None:
        """Create the server (not started yet); :meth:`close` waits ``shutdown_timeout``
        seconds for requests in flight."""
        CallLog.__init__(self)
        FailureInjection.__init__(self)
        UpdateQueue.__init__(self)
        self.telegram = FakeTelegram(drop_pending_updates=self.drop_pending_updates)
        self.base_url = ""
        self._shutdown_timeout = shutdown_timeout
        self._runner: web.AppRunner | None = None
        self._custom: dict[str, Handler] = {}

    @property
    def webhook(self) -> dict[str, Any] | None:
        """The parameters of the last setWebhook (None before it and after deleteWebhook)."""
        return self.telegram.webhook

    def commands(self, scope: dict[str, Any] | None = None, language_code: str = "") -> list[Any]:
        """Commands last set with setMyCommands for ``scope`` (default scope when None)."""
        return self.telegram.commands(scope, language_code)

    def set_handler(self, method: str, handler: Handler | None) -> None:
        """Override (or with None restore) the answer for ``method``; the handler gets the
        recorded :class:`Call` and returns the ``result`` or raises :class:`FakeApiError`.
        Also makes otherwise unknown methods answerable."""
        if handler is None:
            self._custom.pop(method.lower(), None)
        else:
            self._custom[method.lower()] = handler

    async def start(self) -> str:
        """Start serving on 127.0.0.1 (random port); returns and stores ``base_url``."""
        if self._runner is not None:
            return self.base_url
        self.end_polls(False)
        app = web.Application(client_max_size=60 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=self._shutdown_timeout
        )
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"
        return self.base_url

    async def close(self) -> None:
        """Stop the server; pending long polls answer ``[]`` right away. Idempotent."""
        self.end_polls()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> FakeBotAPI:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _handle(self, request: web.Request) -> web.Response:
        try:
            params = await read_params(request)
        except ValueError:
            params = {}
        call = Call(
            method=request.match_info["method"],
            token=request.match_info["token"],
            params=params,
            at=time.monotonic(),
            content_type=request.content_type if request.body_exists else "",
        )
        self.record(call)
        await self.wait_if_held(call)
        try:
            result = await self._answer(call)
        except FakeApiError as exc:
            error = exc
        except Exception as exc:  # a bug in a handler: answer it visibly instead of HTML 500
            error = FakeApiError(500, f"Internal Server Error: fake handler crashed: {exc!r}")
        else:
            call.result = result
            return web.json_response({"ok": True, "result": result})
        call.failed = error.error_code
        call.description = error.description
        return web.json_response(error.to_json(), status=error.error_code)

    async def _answer(self, call: Call) -> Any:
        failure = self.injected_failure(call)
        if failure is not None:
            raise failure
        key = call.method.lower()
        if key in self._custom:
            return self._custom[key](call)
        if key == "getupdates":
            return await self.get_updates(call)
        if key in self.telegram.handlers:
            return self.telegram.handlers[key](call)
        raise FakeApiError(400, METHOD_NOT_FOUND_DESCRIPTION)


async def close_bot_session(bot: Bot) -> None:
    """Close ``bot.session`` without aiogram's fixed 250 ms pause.

    ``AiohttpSession.close()`` sleeps 0.25 s after closing its aiohttp ``ClientSession`` so TLS
    connections can shut down; that pause is only skipped when the ``ClientSession`` is already
    closed. Connections to the fake server are plain HTTP, so this closes the ``ClientSession``
    (the public ``create_session()`` returns the open one) and then calls ``bot.session.close()``
    as usual. Saves a quarter of a second per test.
    """
    from aiogram.client.session.aiohttp import AiohttpSession

    session = bot.session
    if isinstance(session, AiohttpSession):
        client = await session.create_session()
        await client.close()
    await session.close()
