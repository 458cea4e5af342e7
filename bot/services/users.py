"""The current user: created on first contact, refreshed only when something changed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from aiogram.types import User as TelegramUser
from sqlalchemy import Row

from db.models import User
from db.repositories.users import UserRepository

# A row is rewritten when a name changes or this long has passed since last_seen_at,
# so a chatty user costs one SELECT per update, not a write (DESIGN.md: DB budget). The
# SELECT reads a plain row and the refresh is one UPDATE: no ORM object is built for a
# row that is only compared.
LAST_SEEN_RESOLUTION = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class UserDTO:
    id: int
    first_name: str
    last_name: str | None
    username: str | None
    language_code: str | None
    role: str
    is_blocked: bool
    referred_by_id: int | None
    created_at: datetime
    created_now: bool = False

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @classmethod
    def from_model(
        cls, user: User | Row[Any] | Mapping[str, Any], *, created_now: bool = False
    ) -> UserDTO:
        """From the ORM object, a row of the users table, or a mapping of its columns."""
        get = user.__getitem__ if isinstance(user, Mapping) else partial(getattr, user)
        return cls(
            id=get("id"),
            first_name=get("first_name"),
            last_name=get("last_name"),
            username=get("username"),
            language_code=get("language_code"),
            role=get("role"),
            is_blocked=get("is_blocked"),
            referred_by_id=get("referred_by_id"),
            created_at=get("created_at"),
            created_now=created_now,
        )


async def ensure_user(
    repo: UserRepository, tg_user: TelegramUser, *, admin_ids: frozenset[int], now: datetime
) -> UserDTO:
    """Return the stored user for a Telegram user, creating or refreshing the row as needed."""
    role = "admin" if tg_user.id in admin_ids else "user"
    row = await repo.row(tg_user.id)
    if row is None:
        user = await repo.add(
            User(
                id=tg_user.id,
                first_name=tg_user.first_name,
                last_name=tg_user.last_name,
                username=tg_user.username,
                language_code=tg_user.language_code,
                role=role,
                created_at=now,
                last_seen_at=now,
                is_blocked=False,
            )
        )
        return UserDTO.from_model(user, created_now=True)
    fresh = {
        "first_name": tg_user.first_name,
        "last_name": tg_user.last_name,
        "username": tg_user.username,
        "language_code": tg_user.language_code,
        "role": role,
    }
    changed = any(getattr(row, key) != value for key, value in fresh.items())
    # A user who writes to us again has unblocked the bot.
    if changed or row.is_blocked or now - row.last_seen_at >= LAST_SEEN_RESOLUTION:
        refreshed = {**fresh, "last_seen_at": now, "is_blocked": False, "blocked_at": None}
        await repo.update_columns(tg_user.id, refreshed)
        return UserDTO.from_model({**row._asdict(), **refreshed})
    return UserDTO.from_model(row)
