"""The current user: created on first contact, refreshed only when something changed."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Row

from db.models import User
from db.repositories.users import UserRepository

# A row is rewritten when a name changes or this long has passed since last_seen_at,
# so a chatty user costs one SELECT per update, not a write (DESIGN.md: DB budget). The
# SELECT reads a plain row and the refresh is one UPDATE: no ORM object is built for a
# row that is only compared.
LAST_SEEN_RESOLUTION = timedelta(minutes=5)


class TelegramUser(Protocol):
    """What Telegram says about a user with each update (aiogram's ``types.User`` has it)."""

    @property
    def id(self) -> int: ...
    @property
    def first_name(self) -> str: ...
    @property
    def last_name(self) -> str | None: ...
    @property
    def username(self) -> str | None: ...
    @property
    def language_code(self) -> str | None: ...


# What Telegram sends about the user with every update.
TELEGRAM_FIELDS = ("first_name", "last_name", "username", "language_code")


@dataclass(frozen=True, slots=True)
class UserDTO:
    """The current user as handlers see it: what Telegram says (``TELEGRAM_FIELDS``), the
    role from ``telegram.admin_ids``, and what never changes. Columns other code writes
    (the blocked flag, the referrer, ``last_seen_at``) stay out, so a DTO kept for the
    next update (bot/chat/user_cache.py) is stale only when Telegram's data or the role
    differ, which the cache checks on every hit."""

    id: int
    first_name: str
    last_name: str | None
    username: str | None
    language_code: str | None
    role: str
    created_at: datetime
    created_now: bool = False

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @classmethod
    def from_model(cls, user: User | Row[Any], *, created_now: bool = False) -> UserDTO:
        """From the ORM object or a row of the users table (the same attribute names)."""
        return cls(
            id=user.id,
            first_name=user.first_name,
            last_name=user.last_name,
            username=user.username,
            language_code=user.language_code,
            role=user.role,
            created_at=user.created_at,
            created_now=created_now,
        )


async def ensure_user(
    repo: UserRepository, tg_user: TelegramUser, *, admin_ids: frozenset[int], now: datetime
) -> UserDTO:
    """Return the stored user for a Telegram user, creating or refreshing the row as needed.

    Creation is an upsert: when another instance created the row between our SELECT and
    our INSERT (a new user's first two updates, one on each), the INSERT does nothing and
    the row it made is read and refreshed like any existing one (``created_now`` False:
    only one update is a user's first contact).
    """
    role = "admin" if tg_user.id in admin_ids else "user"
    fresh: dict[str, Any] = {name: getattr(tg_user, name) for name in TELEGRAM_FIELDS}
    fresh["role"] = role
    row = await repo.row(tg_user.id)
    if row is None:
        created = await repo.insert_new(
            {
                "id": tg_user.id,
                **fresh,
                "created_at": now,
                "last_seen_at": now,
                "is_blocked": False,
            }
        )
        if created is not None:
            return UserDTO.from_model(created, created_now=True)
        row = await repo.row(tg_user.id)
        if row is None:  # created and deleted again meanwhile: nothing sane to return
            raise RuntimeError(f"user {tg_user.id} vanished while being created")
    changed = any(getattr(row, key) != value for key, value in fresh.items())
    # A user who writes to us again has unblocked the bot.
    if changed or row.is_blocked or now - row.last_seen_at >= LAST_SEEN_RESOLUTION:
        await repo.update_columns(
            tg_user.id, {**fresh, "last_seen_at": now, "is_blocked": False, "blocked_at": None}
        )
        return replace(UserDTO.from_model(row), **fresh)
    return UserDTO.from_model(row)
