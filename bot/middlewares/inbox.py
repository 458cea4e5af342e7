"""Webhook idempotency: the mark that an update was handled (see docs/operations.md)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.middlewares.db import QuietRollback
from bot.updatelog import Outcome, UpdateTrace
from db.hooks import after_commit
from db.repositories.processed_updates import ProcessedUpdateRepository
from db.writes import session_wrote

CLAIMED_KEY = "claimed_update"


class HandledMarks(Protocol):
    """Where an update that only read is marked handled, after its transaction."""

    def defer(self, update_id: int) -> None: ...


class InboxMiddleware(BaseMiddleware):
    """For updates the webhook intake claimed (``claimed_update`` in the data: its marks).

    When the handler wrote anything, the mark is the last statement of the update's
    transaction, so it commits or rolls back together with the writes: exactly once. If
    the mark finds the update handled already (another instance recovered it and
    finished first), the transaction is rolled back quietly and nothing is stored twice.
    When the handler only read, the mark waits for the commit and goes out in a batch
    with other updates' marks: no write, no commit of its own. A crash between the two
    leaves it pending, and recovery runs it again (a read-only update: a reply, twice).
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        marks: HandledMarks | None = data.get(CLAIMED_KEY)
        if marks is None:
            return await handler(event, data)
        assert isinstance(event, Update)
        session: AsyncSession = data["session"]
        result = await handler(event, data)
        update_id = event.update_id
        if not session_wrote(session):
            after_commit(session, lambda: marks.defer(update_id))
            return result
        if not await ProcessedUpdateRepository(session).mark_handled(update_id, self.clock()):
            trace: UpdateTrace | None = data.get("trace")
            if trace is not None:
                trace.outcome = Outcome.DUPLICATE
            raise QuietRollback
        return result
