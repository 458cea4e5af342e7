"""The update log: the outer middleware times each update and records its outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.dispatcher.event.handler import HandlerObject
from aiogram.types import TelegramObject, Update

from bot.infra.updatelog import Outcome, UpdateLog, UpdateTrace


class UpdateLogMiddleware(BaseMiddleware):
    """Outermost of ours: sees every update and every exception before the errors handler.

    The trace travels in ``data["trace"]``; a caller of ``feed_update`` (the webhook intake)
    may pass its own to read the outcome afterwards.
    """

    def __init__(self, log: UpdateLog) -> None:
        self.log = log

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        assert isinstance(event, Update)
        trace: UpdateTrace | None = data.get("trace")
        if trace is None:
            trace = data["trace"] = UpdateTrace.of(event)
        try:
            result = await handler(event, data)
        except asyncio.CancelledError:
            trace.outcome = Outcome.CANCELLED
            raise
        except Exception:
            trace.outcome = Outcome.ERROR
            raise
        else:
            if trace.outcome is None:
                trace.outcome = Outcome.UNHANDLED if result is UNHANDLED else Outcome.HANDLED
            return result
        finally:
            self.log.record(trace)


class HandlerNameMiddleware(BaseMiddleware):
    """Inner middleware on every event type: names the handler that took the update."""

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        trace: UpdateTrace | None = data.get("trace")
        handler_object: HandlerObject | None = data.get("handler")
        if trace is not None and handler_object is not None:
            callback = handler_object.callback
            trace.handler = f"{callback.__module__}:{callback.__qualname__}"
        return await handler(event, data)
