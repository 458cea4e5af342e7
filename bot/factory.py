"""Factories: the bot, the dispatcher and the container. Nothing lives at module level."""

from __future__ import annotations

import logging
from dataclasses import fields

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

from bot.chat.commands import commands_for
from bot.chat.i18n import i18n
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
from bot.chat.tell import Tell
from bot.config import Settings
from bot.container import Container
from bot.infra.clock import Clock, utcnow
from bot.infra.sending import install_send_path
from db.engine import create_engine, create_sessionmaker
from handlers import create_routers

logger = logging.getLogger(__name__)


def create_bot(settings: Settings) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram.api_base))
    bot = Bot(
        token=settings.require_bot_token(),
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )
    # An update's read-only transaction is let go of before any wait on Telegram...
    bot.session.middleware(release_database_first)
    # ...and every message the bot sends or edits goes through the one rate-limited path.
    install_send_path(bot, settings.sending, settings.redis)
    return bot


def create_container(
    settings: Settings, *, bot: Bot | None = None, clock: Clock = utcnow
) -> Container:
    engine = create_engine(
        settings.database.url, echo=settings.database.echo, pool_size=settings.database.pool_size
    )
    return Container(
        settings=settings,
        engine=engine,
        sessionmaker=create_sessionmaker(engine),
        bot=bot,
        clock=clock,
    )


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
    services.pop("bot", None)  # feed_update passes the bot of each update
    services.setdefault("admin_ids", frozenset(settings.telegram.admin_ids))
    dp = Dispatcher(storage=create_storage(settings), **services, container=container, tell=tell)
    inflight = InFlightMiddleware()
    dp["inflight"] = inflight
    # Order matters: the log sees every outcome; the inbox mark and a throttled update
    # live in the update's transaction; the rate limit comes before the user's SELECT.
    dp.update.outer_middleware(UpdateLogMiddleware(container.update_log))
    dp.update.outer_middleware(inflight)
    dp.update.outer_middleware(DbSessionMiddleware(container.sessionmaker))
    dp.update.outer_middleware(InboxMiddleware(container.clock))
    if settings.rate_limit.enabled and container.rate_limiter is not None:
        dp.update.outer_middleware(RateLimitMiddleware(container.rate_limiter, container.admin_ids))
    blocked = container.notifier.blocked if container.notifier is not None else None
    dp.update.outer_middleware(
        UserMiddleware(container.admin_ids, container.clock, blocked, container.user_cache)
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
    """Publish the command menu: user commands for all, the full list in admins' chats."""

    def as_bot_commands(*, is_admin: bool) -> list[BotCommand]:
        return [
            BotCommand(command=c.name, description=str(c.description))
            for c in commands_for(is_admin=is_admin)
        ]

    await bot.set_my_commands(as_bot_commands(is_admin=False), scope=BotCommandScopeDefault())
    for admin_id in sorted(admin_ids):
        try:
            await bot.set_my_commands(
                as_bot_commands(is_admin=True), scope=BotCommandScopeChat(chat_id=admin_id)
            )
        except TelegramBadRequest as exc:
            # An admin who never opened the bot has no chat yet.
            logger.warning("admin commands not set for %s: %s", admin_id, exc.message)
