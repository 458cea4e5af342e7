"""Middlewares: update log, in-flight tracking, database session, webhook inbox, rate limit,
current user, callback answers."""

from bot.chat.middlewares.callbacks import AnswerCallbackMiddleware
from bot.chat.middlewares.db import DbSessionMiddleware
from bot.chat.middlewares.inbox import InboxMiddleware
from bot.chat.middlewares.inflight import InFlightMiddleware
from bot.chat.middlewares.ratelimit import RateLimitMiddleware
from bot.chat.middlewares.updatelog import HandlerNameMiddleware, UpdateLogMiddleware
from bot.chat.middlewares.user import UserMiddleware

__all__ = [
    "AnswerCallbackMiddleware",
    "DbSessionMiddleware",
    "HandlerNameMiddleware",
    "InFlightMiddleware",
    "InboxMiddleware",
    "RateLimitMiddleware",
    "UpdateLogMiddleware",
    "UserMiddleware",
]
