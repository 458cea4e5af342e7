"""One process: Telegram (polling or webhook) and the side server, sharing database and services."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiohttp import web

from bot.config import ConfigError, Settings
from bot.container import Container
from bot.factory import create_bot, create_container, create_dispatcher, set_commands
from bot.heap import freeze_startup_heap
from bot.metrics import create_metrics_app
from bot.middlewares import InFlightMiddleware
from bot.webhook import WebhookIntake, register_webhook
from db.engine import ping
from webhook_server import create_app

logger = logging.getLogger(__name__)

# SIGTERM must end the process within 5 s: updates get this long to finish,
DRAIN_TIMEOUT_S = 3.0
# and messages under way this long to get Telegram's answer (the rest stay in the outbox).
SENDING_DRAIN_TIMEOUT_S = 1.0
# Removing the webhook at shutdown (webhook.delete_on_shutdown) may take this long.
WEBHOOK_DELETE_TIMEOUT_S = 1


async def run(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Run until ``stop`` is set or SIGINT/SIGTERM arrives, then shut down cleanly."""
    if settings.telegram.mode == "webhook":
        settings.require_webhook()  # one line naming the missing key, before anything starts
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    bot = create_bot(settings)
    container = create_container(settings, bot=bot)
    try:
        try:
            await ping(container.engine)
        except Exception as exc:
            raise ConfigError(
                f"database.url: the database does not answer ({type(exc).__name__}: {exc})"
            ) from None
        await container.start()
        await _serve(container, stop)
    finally:
        await container.aclose()
        await bot.session.close()
        await container.engine.dispose()


async def _start_site(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


async def _serve(container: Container, stop: asyncio.Event) -> None:
    settings = container.settings
    bot = container.bot
    assert bot is not None
    dp = create_dispatcher(container)
    intake = WebhookIntake(container, dp) if settings.telegram.mode == "webhook" else None
    runners: list[web.AppRunner] = []
    polling: asyncio.Task[None] | None = None
    expiry = asyncio.create_task(container.signals.run_expiry(container.sessionmaker, stop))
    try:
        side_app = create_app(container, intake=intake)
        freeze_startup_heap()
        runners.append(await _start_site(side_app, settings.server.host, settings.server.port))
        logger.info("side server listening on %s:%s", settings.server.host, settings.server.port)
        if settings.metrics.enabled and settings.metrics.port:
            metrics_app = create_metrics_app(container.metrics)
            host, port = settings.metrics.host, settings.metrics.port
            runners.append(await _start_site(metrics_app, host, port))
            logger.info("metrics listening on %s:%s", host, port)
        me = await bot.get_me()
        logger.info("bot @%s started (%s mode)", me.username, settings.telegram.mode)
        await set_commands(bot, container.admin_ids)
        if intake is not None:
            await intake.start()
            await register_webhook(bot, dp, settings)
            await stop.wait()
        else:
            # Also switches a bot that ran in webhook mode before back to getUpdates.
            await bot.delete_webhook(drop_pending_updates=settings.telegram.drop_pending_updates)
            polling = asyncio.create_task(
                dp.start_polling(
                    bot,
                    polling_timeout=settings.telegram.polling_timeout,
                    handle_signals=False,
                    close_bot_session=False,
                )
            )
            stopper = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait({polling, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if polling in done:
                polling.result()  # polling ended by itself: surface its error
    finally:
        logger.info("stopping")
        deadline = _loop_time() + DRAIN_TIMEOUT_S
        if polling is not None and not polling.done():
            with contextlib.suppress(RuntimeError):
                await dp.stop_polling()
            with contextlib.suppress(asyncio.CancelledError):
                await polling
        left = 0
        if intake is not None:
            if settings.webhook.delete_on_shutdown:
                await _delete_webhook(bot)
            # Deliveries now get 503 (Telegram retries them); accepted ones may finish.
            left += await intake.drain(max(0.0, deadline - _loop_time()))
            await intake.close()
        inflight: InFlightMiddleware = dp["inflight"]
        left += await inflight.drain(max(0.0, deadline - _loop_time()))
        if left:
            logger.warning("%d updates still running at shutdown", left)
        stop.set()
        await expiry
        cut = await container.stop_background(SENDING_DRAIN_TIMEOUT_S)
        if cut:
            logger.warning("%d messages cut short by the shutdown (sent again later)", cut)
        for runner in runners:
            await runner.cleanup()
        await dp.storage.close()
        logger.info("stopped")


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


async def _delete_webhook(bot: Bot) -> None:
    try:
        await bot.delete_webhook(request_timeout=WEBHOOK_DELETE_TIMEOUT_S)
    except TelegramAPIError as exc:
        logger.warning("webhook not deleted: %s", exc)
    else:
        logger.info("webhook deleted")
