"""One process: Telegram polling and the side server, sharing database and services."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from aiohttp import web

from bot.config import ConfigError, Settings
from bot.container import Container
from bot.factory import create_bot, create_container, create_dispatcher, set_commands
from bot.middlewares import InFlightMiddleware
from db.engine import ping
from webhook_server import create_app

logger = logging.getLogger(__name__)

# SIGTERM must end the process within 5 s: updates get this long to finish,
DRAIN_TIMEOUT_S = 3.0
# and broadcasts and message edits under way this long after them.
SENDING_DRAIN_TIMEOUT_S = 1.0


async def run(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Run until ``stop`` is set or SIGINT/SIGTERM arrives, then shut down cleanly."""
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


async def _serve(container: Container, stop: asyncio.Event) -> None:
    settings = container.settings
    bot = container.bot
    assert bot is not None
    dp = create_dispatcher(container)
    runner = web.AppRunner(create_app(container), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, settings.server.host, settings.server.port)
    await site.start()
    logger.info("side server listening on %s:%s", settings.server.host, settings.server.port)

    polling: asyncio.Task[None] | None = None
    expiry = asyncio.create_task(container.signals.run_expiry(container.sessionmaker, stop))
    try:
        me = await bot.get_me()
        logger.info("bot @%s started (%s mode)", me.username, settings.telegram.mode)
        await set_commands(bot, container.admin_ids)
        if settings.telegram.drop_pending_updates:
            await bot.delete_webhook(drop_pending_updates=True)
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
        if polling is not None and not polling.done():
            with contextlib.suppress(RuntimeError):
                await dp.stop_polling()
            with contextlib.suppress(asyncio.CancelledError):
                await polling
        inflight: InFlightMiddleware = dp["inflight"]
        left = await inflight.drain(DRAIN_TIMEOUT_S)
        if left:
            logger.warning("%d updates still running at shutdown", left)
        stop.set()
        await expiry
        cut = await container.stop_background(SENDING_DRAIN_TIMEOUT_S)
        if cut:
            logger.warning("%d signal broadcasts cut short by the shutdown", cut)
        await runner.cleanup()
        await dp.storage.close()
        logger.info("stopped")
