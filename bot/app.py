"""One process: Telegram (polling or webhook) and the side server, sharing database and services."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiohttp import web

from bot.chat.middlewares import InFlightMiddleware
from bot.config import ConfigError, Settings
from bot.container import Container
from bot.factory import create_bot, create_container, create_dispatcher, set_commands
from bot.infra.heap import freeze_startup_heap
from bot.infra.metrics import create_metrics_app
from bot.intake.inbox import Inbox
from bot.intake.polling import Poller
from bot.intake.webhook import WebhookIntake, register_webhook
from bot.lifecycle import ShutdownGate
from bot.web.keys import SHUTDOWN_GATE
from db.engine import ping
from webhook_server import create_app

logger = logging.getLogger(__name__)

# SIGTERM must end the process within 5 s. From the signal, what is in flight (updates,
# reports, broadcasts and edits, messages) gets this long in all, side by side;
DRAIN_TIMEOUT_S = 3.0
# then requests still open on the side server get this long to be answered, and the
# listeners, the database and the Bot API session are closed.
HTTP_SHUTDOWN_TIMEOUT_S = 0.5
# At the deadline a message already on its way to Telegram gets this long for the answer.
OUTBOX_ANSWER_GRACE_S = 0.5
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
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=HTTP_SHUTDOWN_TIMEOUT_S
    )
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


async def _serve(container: Container, stop: asyncio.Event) -> None:
    settings = container.settings
    bot = container.bot
    dp = create_dispatcher(container)
    webhook = settings.telegram.mode == "webhook"
    # Both modes store every update before processing it (bot/intake/inbox.py).
    inbox: Inbox = (
        WebhookIntake(container, dp) if webhook else Inbox(container, dp, sole_consumer=True)
    )
    runners: list[web.AppRunner] = []
    gates: list[ShutdownGate] = []
    polling: asyncio.Task[None] | None = None
    expiry = asyncio.create_task(container.signals.run_expiry(container.sessionmaker, stop))
    try:
        side_app = create_app(container, intake=inbox if isinstance(inbox, WebhookIntake) else None)
        gates.append(side_app[SHUTDOWN_GATE])
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
        await inbox.start()
        if webhook:
            await register_webhook(bot, dp, settings)
        else:
            # Also switches a bot that ran in webhook mode before back to getUpdates.
            await bot.delete_webhook(drop_pending_updates=settings.telegram.drop_pending_updates)
            poller = Poller(
                inbox,
                bot,
                timeout=settings.telegram.polling_timeout,
                allowed_updates=dp.resolve_used_update_types(),
            )
            polling = asyncio.create_task(poller.run())
        stopper = asyncio.create_task(stop.wait())
        waiting: set[asyncio.Task[None] | asyncio.Task[bool]] = {stopper}
        if polling is not None:
            waiting.add(polling)
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if polling is not None and polling in done:
            polling.result()  # polling ended by itself: surface its error
    finally:
        await _shut_down(container, inbox, dp["inflight"], gates, polling, expiry, stop)
        for runner in runners:
            await runner.cleanup()
        await inbox.close()
        await dp.storage.close()
        logger.info("stopped")


async def _shut_down(
    container: Container,
    inbox: Inbox,
    inflight: InFlightMiddleware,
    gates: list[ShutdownGate],
    polling: asyncio.Task[None] | None,
    expiry: asyncio.Task[None],
    stop: asyncio.Event,
) -> None:
    """Stop taking work at once, then finish or persist what is in flight by one deadline."""
    logger.info("stopping")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DRAIN_TIMEOUT_S

    def left() -> float:
        return max(0.0, deadline - loop.time())

    # 1. No new work: the side server answers 503 shutting_down (Telegram redelivers, EAs
    # resend), EA long polls answer now, no getUpdates any more (the long poll is cancelled;
    # a batch not stored yet was not confirmed, so Telegram sends it again), no retries.
    for gate in gates:
        gate.close()
    container.device_hub.release_all()
    inbox.stop_accepting()
    if polling is not None and not polling.done():
        polling.cancel()
    if polling is not None:
        await asyncio.gather(polling, return_exceptions=True)
    stop.set()

    # 2. What is in flight, side by side, by the deadline. Updates not finished stay
    # pending in the inbox and run after the restart; reports either commit (then they
    # are answered) or are answered 503 and resent; broadcasts and edits are cut.
    async def updates() -> int:
        return await inbox.drain(left()) + await inflight.drain(left())

    async def expiry_round() -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(expiry), left())
        expiry.cancel()
        await asyncio.gather(expiry, return_exceptions=True)

    async def webhook_removal() -> None:
        if isinstance(inbox, WebhookIntake) and container.settings.webhook.delete_on_shutdown:
            await _delete_webhook(container.bot)

    left_updates, turned_away, cut, *_ = await asyncio.gather(
        updates(),
        container.reports.close(left()),
        # Sends what it can by the deadline, then keeps the rest stored for the next run.
        _bounded(container.outbox_worker.close(left()), left() + OUTBOX_ANSWER_GRACE_S),
        expiry_round(),
        webhook_removal(),
    )
    if left_updates:
        logger.warning(
            "%d updates still running at shutdown (run again after the restart)", left_updates
        )
    if cut:
        logger.warning("%d messages cut short by the shutdown (sent again after it)", cut)
    # Whatever the above left (blocked-user writes, notices): stopped now.
    await _bounded(container.stop_background(0), HTTP_SHUTDOWN_TIMEOUT_S)
    logger.info(
        "drained in %.2f s (%d reports answered 503)", DRAIN_TIMEOUT_S - left(), turned_away
    )


async def _bounded(work: Awaitable[int], within: float) -> int:
    """``work``'s result, or 0 when it is cut (cancelled) after ``within`` s; a message
    waiting for its turn in a chat's lane (1 per second) must not hold the shutdown."""
    try:
        return await asyncio.wait_for(work, within + 0.05)
    except TimeoutError:
        logger.warning("shutdown: a drain was cut at its deadline")
        return 0


async def _delete_webhook(bot: Bot) -> None:
    try:
        await bot.delete_webhook(request_timeout=WEBHOOK_DELETE_TIMEOUT_S)
    except TelegramAPIError as exc:
        logger.warning("webhook not deleted: %s", exc)
    else:
        logger.info("webhook deleted")
