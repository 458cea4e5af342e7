"""Factories: the bot, the dispatcher and the services (built explicitly, in dependency
order). Nothing lives at module level."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import fields
from datetime import timedelta

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramBadRequest
from aiogram.fsm.storage.base import BaseStorage
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.types import BotCommand, BotCommandScopeChat, BotCommandScopeDefault
from aiogram.utils.i18n import SimpleI18nMiddleware
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.chat.commands import commands_for
from bot.chat.i18n import DEFAULT_LOCALE, i18n, in_locale
from bot.chat.middlewares import (
    AnswerCallbackMiddleware,
    DbSessionMiddleware,
    HandlerNameMiddleware,
    InboxMiddleware,
    InFlightMiddleware,
    RateLimitMiddleware,
    UpdateLogMiddleware,
    UserMiddleware,
)
from bot.chat.middlewares.db import release_database_first
from bot.chat.notices import NoticeRenderer
from bot.chat.signal_publisher import SignalPublisher
from bot.chat.tell import Tell
from bot.chat.user_cache import UserCache
from bot.config import Settings
from bot.container import Container, Services
from bot.domain.devices import DeviceTools
from bot.domain.signals import SignalService
from bot.domain.subscriptions import active_subscribers
from bot.execution.device_activity import DeviceActivity
from bot.execution.device_hub import DeviceHub
from bot.execution.device_keys import DeviceKeyring
from bot.execution.nonces import create_nonce_store
from bot.execution.report_desk import ReportDesk
from bot.execution.wire import device_lines
from bot.infra.clock import Clock, utcnow
from bot.infra.metrics import Metrics
from bot.infra.notifier import BlockedUsers, Notifier
from bot.infra.outbox import Outbox, OutboxWorker
from bot.infra.pubsub import create_broadcast
from bot.infra.ratelimit import create_rate_limiter
from bot.infra.sending import install_send_path
from bot.infra.updatelog import UpdateLog
from db.engine import create_engine, create_sessionmaker
from handlers import create_routers

logger = logging.getLogger(__name__)


def bot_defaults() -> DefaultBotProperties:
    """What every message of the bot carries unless it says otherwise: HTML, no link
    previews (setup steps name URLs that must not unfold into cards)."""
    return DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True)


def create_bot(settings: Settings) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram.api_base))
    bot = Bot(token=settings.require_bot_token(), session=session, default=bot_defaults())
    # An update's read-only transaction is let go of before any wait on Telegram...
    bot.session.middleware(release_database_first)
    # ...and every message the bot sends or edits goes through the one rate-limited path.
    install_send_path(bot, settings.sending, settings.redis)
    return bot


def create_services(settings: Settings, *, clock: Clock = utcnow) -> Services:
    """The services without a bot: what they owe users waits in the outbox for the
    process that has one (a tool, a benchmark, a test of the side server alone)."""
    engine, sessionmaker = _database(settings)
    return _services(settings, engine, sessionmaker, clock, wake_outbox=_sent_elsewhere)


def create_container(settings: Settings, *, bot: Bot, clock: Clock = utcnow) -> Container:
    """Everything one process runs on, wired in dependency order; ``bot`` from create_bot."""
    engine, sessionmaker = _database(settings)
    # The send path create_bot installed (installed here for a bot made otherwise).
    send_path = install_send_path(bot, settings.sending, settings.redis)
    blocked_users = BlockedUsers(sessionmaker, clock)
    send_path.blocked = blocked_users
    worker = OutboxWorker(bot, sessionmaker, settings, clock, shared=bool(settings.redis.url))
    services = _services(settings, engine, sessionmaker, clock, wake_outbox=worker.wake)
    # Messages are rendered when sent, from what is stored then (bot/chat/signal_publisher.py).
    worker.render_approvals = services.signal_publisher.render
    # Notices too, in each recipient's language (bot/chat/notices.py).
    worker.render_notices = NoticeRenderer(sessionmaker).render
    # Inside the send path: every real request (retries too) is counted.
    bot.session.middleware(services.metrics.bot_api_middleware())
    services.metrics.watch_send_queue(lambda: send_path.queue_depth)
    return Container(
        **{field.name: getattr(services, field.name) for field in fields(Services)},
        bot=bot,
        send_path=send_path,
        blocked_users=blocked_users,
        notifier=Notifier(bot, blocked_users),
        outbox_worker=worker,
    )


def _database(settings: Settings) -> tuple[AsyncEngine, async_sessionmaker[AsyncSession]]:
    engine = create_engine(
        settings.database.url, echo=settings.database.echo, pool_size=settings.database.pool_size
    )
    return engine, create_sessionmaker(engine)


def _services(
    settings: Settings,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: Clock,
    *,
    wake_outbox: Callable[[], None],
) -> Services:
    redis_url, prefix = settings.redis.url, settings.redis.prefix
    metrics = Metrics()
    outbox = Outbox(settings, clock, wake_outbox)
    publisher = SignalPublisher(outbox, sessionmaker, device_lines=device_lines)
    broadcast = create_broadcast(redis_url, prefix)
    device_hub = DeviceHub(broadcast)
    metrics.watch_long_polls(lambda: device_hub.waiting)
    device_keys = DeviceKeyring(settings.require_secret("master_key"), sessionmaker, broadcast)
    device_activity = DeviceActivity(sessionmaker)
    return Services(
        settings=settings,
        engine=engine,
        sessionmaker=sessionmaker,
        clock=clock,
        subscriber_check=active_subscribers,
        outbox=outbox,
        signal_publisher=publisher,
        signals=SignalService(
            settings,
            clock,
            publisher=publisher,
            subscriber_check=active_subscribers,
            wake_device=device_hub.notify,
            notices=outbox.notice_many,
        ),
        reports=ReportDesk(settings, sessionmaker, clock, outbox=outbox),
        broadcast=broadcast,
        device_keys=device_keys,
        device_hub=device_hub,
        nonces=create_nonce_store(redis_url, prefix),
        device_activity=device_activity,
        device_tools=DeviceTools(settings, clock, device_keys, device_hub, device_activity),
        metrics=metrics,
        rate_limiter=create_rate_limiter(settings, clock),
        update_log=UpdateLog(metrics),
        # Several instances could mark a user blocked behind its back, and only a read
        # clears that flag when the user writes again: there it holds nothing.
        user_cache=UserCache(ttl=timedelta(0)) if redis_url else UserCache(),
    )


def _sent_elsewhere() -> None:
    """No bot here: queued messages wait in the outbox for the process that has one."""


def create_storage(settings: Settings) -> BaseStorage:
    """FSM state in this process, or in Redis under ``<redis.prefix>:fsm:<bot id>:...``.

    The prefix keeps deployments sharing one Redis apart; the bot id keeps two bots of one
    deployment (or a token swapped for another bot's) from reading each other's states.
    """
    if settings.redis.url:
        from aiogram.fsm.storage.base import DefaultKeyBuilder
        from aiogram.fsm.storage.redis import RedisStorage

        keys = DefaultKeyBuilder(prefix=f"{settings.redis.prefix}:fsm", with_bot_id=True)
        return RedisStorage.from_url(settings.redis.url, key_builder=keys)
    return MemoryStorage()


def create_dispatcher(container: Container) -> Dispatcher:
    settings = container.settings
    # What handlers say about their writes goes out after the commit (bot/chat/tell.py).
    tell = Tell(container.outbox)
    # Every long-lived service reaches handlers by its field name (aiogram's injection).
    services = {field.name: getattr(container, field.name) for field in fields(container)}
    services.pop("bot")  # feed_update passes the bot of each update
    services["admin_ids"] = container.admin_ids
    dp = Dispatcher(storage=create_storage(settings), **services, tell=tell)
    inflight = InFlightMiddleware()
    dp["inflight"] = inflight
    # Order matters: the log sees every outcome; the inbox mark and a throttled update
    # live in the update's transaction; the rate limit comes before the user's SELECT.
    dp.update.outer_middleware(UpdateLogMiddleware(container.update_log))
    dp.update.outer_middleware(inflight)
    dp.update.outer_middleware(DbSessionMiddleware(container.sessionmaker))
    dp.update.outer_middleware(InboxMiddleware(container.clock))
    if settings.rate_limit.enabled:
        dp.update.outer_middleware(RateLimitMiddleware(container.rate_limiter, container.admin_ids))
    dp.update.outer_middleware(
        UserMiddleware(
            container.admin_ids, container.clock, container.blocked_users, container.user_cache
        )
    )
    handler_names = HandlerNameMiddleware()
    for name, observer in dp.observers.items():
        if name not in {"update", "error"}:
            observer.middleware(handler_names)
    dp.callback_query.middleware(AnswerCallbackMiddleware(tell))
    # Texts in the user's language (language_code), English when there is no catalog for it.
    SimpleI18nMiddleware(i18n).setup(dp)
    dp.include_routers(*create_routers())
    return dp


async def set_commands(bot: Bot, admin_ids: frozenset[int]) -> None:
    """Publish the command menu: user commands for all, the full list in admins' chats;
    in English for everyone, and in each other catalog's language for its speakers
    (Telegram picks the list by the user's language_code)."""

    def as_bot_commands(language: str, *, is_admin: bool) -> list[BotCommand]:
        with in_locale(language):
            return [
                BotCommand(command=c.name, description=str(c.description))
                for c in commands_for(is_admin=is_admin)
            ]

    languages = [None, *sorted(set(i18n.available_locales) - {DEFAULT_LOCALE})]
    for language in languages:
        await bot.set_my_commands(
            as_bot_commands(language or DEFAULT_LOCALE, is_admin=False),
            scope=BotCommandScopeDefault(),
            language_code=language,
        )
    for admin_id in sorted(admin_ids):
        try:
            for language in languages:
                await bot.set_my_commands(
                    as_bot_commands(language or DEFAULT_LOCALE, is_admin=True),
                    scope=BotCommandScopeChat(chat_id=admin_id),
                    language_code=language,
                )
        except TelegramBadRequest as exc:
            # An admin who never opened the bot has no chat yet.
            logger.warning("admin commands not set for %s: %s", admin_id, exc.message)
