"""Per-user switches (/settings): auto-approve, fill, error and close notifications."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from db.repositories.signals import UserSettingsRepository

SettingName = Literal["auto_approve", "notify_fills", "notify_errors", "notify_closes"]


@dataclass(frozen=True, slots=True)
class UserPrefs:
    auto_approve: bool = False
    notify_fills: bool = True
    notify_errors: bool = True
    notify_closes: bool = True

    def as_dict(self) -> dict[str, bool]:
        return asdict(self)


async def get_prefs(session: AsyncSession, user_id: int) -> UserPrefs:
    row = await UserSettingsRepository(session).get(user_id)
    if row is None:
        return UserPrefs()
    return UserPrefs(row.auto_approve, row.notify_fills, row.notify_errors, row.notify_closes)


async def toggle(
    session: AsyncSession, user_id: int, name: SettingName, now: datetime
) -> UserPrefs:
    """Switch one setting; the new values back."""
    row = await UserSettingsRepository(session).get_or_create(user_id, now)
    setattr(row, name, not getattr(row, name))
    row.updated_at = now
    await session.flush()
    return UserPrefs(row.auto_approve, row.notify_fills, row.notify_errors, row.notify_closes)
