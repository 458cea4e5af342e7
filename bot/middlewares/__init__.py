"""Middlewares: update log, in-flight tracking, database session, webhook inbox, rate limit,
current user, callback answers."""

from bot.middlewares.callbacks import AnswerCallbackMiddleware
from bot.middlewares.db import DbSessionMiddleware
from bot.middlewares.inbox import InboxMiddleware
from bot.middlewares.inflight import InFlightMiddleware
from bot.middlewares.ratelimit import RateLimitMiddleware
from bot.middlewares.updatelog import HandlerNameMiddleware, UpdateLogMiddleware
from bot.middlewares.user import UserMiddleware

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
