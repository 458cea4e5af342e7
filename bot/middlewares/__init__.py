"""Middlewares: in-flight tracking, database session, current user, callback answers."""

from bot.middlewares.callbacks import AnswerCallbackMiddleware
from bot.middlewares.db import DbSessionMiddleware
from bot.middlewares.inflight import InFlightMiddleware
from bot.middlewares.user import UserMiddleware

__all__ = [
    "AnswerCallbackMiddleware",
    "DbSessionMiddleware",
    "InFlightMiddleware",
    "UserMiddleware",
]
