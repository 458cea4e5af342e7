"""Webhook idempotency inside the update's transaction (see docs/operations.md)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.updatelog import Outcome, UpdateTrace
from db.repositories.processed_updates import ProcessedUpdateRepository

CLAIMED_KEY = "claimed_update"


class InboxMiddleware(BaseMiddleware):
    """For updates the webhook intake claimed (``claimed_update=True`` in the data).

    Marks the stored update handled as the first statement of the update's transaction,
    so the mark commits or rolls back together with everything the handler wrote. When
    the mark finds the update handled already (another instance recovered it first), the
    update is not processed again.
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        if not data.get(CLAIMED_KEY):
            return await handler(event, data)
        assert isinstance(event, Update)
        session: AsyncSession = data["session"]
        if not await ProcessedUpdateRepository(session).mark_handled(event.update_id, self.clock()):
            trace: UpdateTrace | None = data.get("trace")
            if trace is not None:
                trace.outcome = Outcome.DUPLICATE
            return None
        return await handler(event, data)
