"""The current user: created on first contact, refreshed only when something changed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from aiogram.types import User as TelegramUser

from db.models import User
from db.repositories.users import UserRepository

# A row is rewritten when a name changes or this long has passed since last_seen_at,
# so a chatty user costs one SELECT per update, not a write (DESIGN.md: DB budget).
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
    def from_model(cls, user: User, *, created_now: bool = False) -> UserDTO:
        return cls(
            id=user.id,
            first_name=user.first_name,
            last_name=user.last_name,
            username=user.username,
            language_code=user.language_code,
            role=user.role,
            is_blocked=user.is_blocked,
            referred_by_id=user.referred_by_id,
            created_at=user.created_at,
            created_now=created_now,
        )


async def ensure_user(
    repo: UserRepository, tg_user: TelegramUser, *, admin_ids: frozenset[int], now: datetime
) -> UserDTO:
    """Return the stored user for a Telegram user, creating or refreshing the row as needed."""
    role = "admin" if tg_user.id in admin_ids else "user"
    user = await repo.get(tg_user.id)
    if user is None:
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
    changed = any(getattr(user, key) != value for key, value in fresh.items())
    # A user who writes to us again has unblocked the bot.
    if changed or user.is_blocked or now - user.last_seen_at >= LAST_SEEN_RESOLUTION:
        for key, value in fresh.items():
            setattr(user, key, value)
        user.last_seen_at = now
        user.is_blocked = False
        user.blocked_at = None
        await repo.session.flush()
    return UserDTO.from_model(user)
