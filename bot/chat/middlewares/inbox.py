"""The inbox's mark that an update was handled, and the attempt it is (docs/operations.md)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.chat.middlewares.db import QuietRollback
from bot.infra.clock import Clock
from bot.infra.updatelog import Outcome, UpdateTrace
from db.hooks import after_commit
from db.repositories.dead_letters import DeadLetterRepository
from db.repositories.processed_updates import ProcessedUpdateRepository
from db.writes import session_wrote

CLAIMED_KEY = "claimed_update"
ATTEMPT_KEY = "inbox_attempt"


@dataclass(slots=True)
class Attempt:
    """One run of a stored update (``inbox_attempt`` in the data), filled in as it fails.

    The errors handler records an unexpected error here (an AppError is an answer, not a
    failure) and apologises only when :attr:`apologise` says so: once per update, on the
    attempt that sends it to the dead letters.
    """

    number: int
    final: bool
    dead_letter: bool = False
    error: str | None = None

    @property
    def apologise(self) -> bool:
        return self.final and not self.dead_letter

    def failed(self, exc: BaseException) -> None:
        self.error = type(exc).__name__


class HandledMarks(Protocol):
    """Where an update that only read is marked handled, after its transaction."""

    def defer(self, update_id: int) -> None: ...


class InboxMiddleware(BaseMiddleware):
    """For updates the inbox claimed (``claimed_update`` in the data: its marks).

    When the handler wrote anything, the mark is the last statement of the update's
    transaction, so it commits or rolls back together with the writes: exactly once. If
    the mark finds the update handled already (another instance recovered it and
    finished first), the transaction is rolled back quietly and nothing is stored twice.
    When the handler only read, the mark waits for the commit and goes out in a batch
    with other updates' marks: no write, no commit of its own. A crash between the two
    leaves it pending, and recovery runs it again (a read-only update: a reply, twice).
    An update put back from the dead letters is always marked inline, and its letter
    removed in the same transaction.
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
        attempt: Attempt | None = data.get(ATTEMPT_KEY)
        dead_letter = attempt is not None and attempt.dead_letter
        if not dead_letter and not session_wrote(session):
            after_commit(session, lambda: marks.defer(update_id))
            return result
        if dead_letter:
            await DeadLetterRepository(session).remove(update_id)
        if not await ProcessedUpdateRepository(session).mark_handled(update_id, self.clock()):
            trace: UpdateTrace | None = data.get("trace")
            if trace is not None:
                trace.outcome = Outcome.DUPLICATE
            raise QuietRollback
        return result
