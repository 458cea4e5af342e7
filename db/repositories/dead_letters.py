"""Dead letters: updates that failed ``inbox.max_attempts`` times in a row (bot/intake/inbox.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import DeadLetter
from db.repositories.processed_updates import StoredUpdate


class DeadLetterRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def store(
        self, stored: StoredUpdate, *, user_id: int | None, error: str, attempts: int, now: datetime
    ) -> DeadLetter:
        """Add the update, or (a retry that failed again) bring its letter up to date."""
        letter = await self.session.get(DeadLetter, stored.update_id)
        if letter is None:
            letter = DeadLetter(
                update_id=stored.update_id,
                payload=stored.payload,
                user_id=user_id,
                first_failed_at=stored.first_failed_at or now,
            )
            self.session.add(letter)
        letter.attempts = attempts
        letter.last_failed_at = now
        letter.last_error = error[:100]
        letter.retried_at = None
        letter.retried_by = None
        await self.session.flush()
        return letter

    async def get(self, update_id: int) -> DeadLetter | None:
        return await self.session.get(DeadLetter, update_id)

    async def oldest(self, limit: int) -> list[DeadLetter]:
        rows = await self.session.scalars(
            select(DeadLetter)
            .order_by(DeadLetter.last_failed_at, DeadLetter.update_id)
            .limit(limit)
        )
        return list(rows)

    async def count(self) -> int:
        return int(await self.session.scalar(select(func.count()).select_from(DeadLetter)) or 0)

    async def mark_retried(self, update_id: int, admin_id: int, now: datetime) -> None:
        letter = await self.session.get(DeadLetter, update_id)
        if letter is not None:
            letter.retried_at = now
            letter.retried_by = admin_id
            await self.session.flush()

    async def remove(self, update_id: int) -> bool:
        """Forget the letter (its retry went through); False when there was none."""
        connection = await self.session.connection()
        result = await connection.execute(
            delete(DeadLetter).where(DeadLetter.update_id == update_id)
        )
        return bool(result.rowcount)
