"""Get-or-create is an upsert: a new user's first two updates on two instances make one row.

On PostgreSQL the two first contacts run in two transactions on two connections, both
reading "no row" before either inserts; on SQLite (one connection, one writer) they run one
after the other, so the loser's path is also driven directly: the row appears between our
SELECT and our INSERT.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from aiogram.types import User as TelegramUser
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain.user_settings import toggle
from bot.domain.users import UserDTO, ensure_user
from db.models import User, UserSettings
from db.repositories.users import UserRepository
from tests.conftest import POSTGRES_URL

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
NEW_USER = 6001


def telegram_user(first_name: str, username: str | None = None) -> TelegramUser:
    return TelegramUser(id=NEW_USER, is_bot=False, first_name=first_name, username=username)


class ReadsTogether(UserRepository):
    """The real repository; its first SELECT waits until the other instance's has run too."""

    def __init__(self, session: AsyncSession, barrier: asyncio.Barrier | None) -> None:
        super().__init__(session)
        self.barrier = barrier

    async def row(self, user_id: int) -> Any:
        found = await super().row(user_id)
        if self.barrier is not None:
            barrier, self.barrier = self.barrier, None
            await asyncio.wait_for(barrier.wait(), timeout=10)
        return found


async def first_contact(
    sessionmaker: async_sessionmaker[AsyncSession],
    tg_user: TelegramUser,
    barrier: asyncio.Barrier | None,
) -> UserDTO:
    async with sessionmaker.begin() as session:
        return await ensure_user(
            ReadsTogether(session, barrier), tg_user, admin_ids=frozenset(), now=NOW
        )


async def stored_users(sessionmaker: async_sessionmaker[AsyncSession]) -> list[Any]:
    async with sessionmaker() as session:
        return list((await session.execute(select(User).where(User.id == NEW_USER))).scalars())


async def test_two_first_contacts_at_once_make_one_row_and_no_error(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    # SQLite has one connection: the second transaction waits for the first one's commit,
    # so a barrier between their SELECTs would never open there.
    barrier = asyncio.Barrier(2) if POSTGRES_URL else None
    first, second = await asyncio.gather(
        first_contact(sessionmaker, telegram_user("Ann"), barrier),
        first_contact(sessionmaker, telegram_user("Ann", username="ann"), barrier),
    )
    assert sorted([first.created_now, second.created_now]) == [False, True]
    [row] = await stored_users(sessionmaker)
    # Whichever came second refreshed the row with what Telegram told it.
    later = second if first.created_now else first
    assert row.username == later.username


class SomeoneElseInserts(UserRepository):
    """The other instance creates (and commits) the user just after our SELECT found none."""

    def __init__(
        self, session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        super().__init__(session)
        self.sessionmaker: async_sessionmaker[AsyncSession] | None = sessionmaker
        self.selects = 0

    async def row(self, user_id: int) -> Any:
        self.selects += 1
        if self.sessionmaker is None:
            return await super().row(user_id)
        other, self.sessionmaker = self.sessionmaker, None
        # Run before this session touches the database, so SQLite's one connection is free.
        async with other.begin() as session:
            await ensure_user(
                UserRepository(session), telegram_user("Old name"), admin_ids=frozenset(), now=NOW
            )
        return None  # what our SELECT saw, a moment before that commit


async def test_the_loser_of_the_race_reads_and_refreshes_the_winners_row(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker.begin() as session:
        repo = SomeoneElseInserts(session, sessionmaker)
        user = await ensure_user(
            repo, telegram_user("New name", "ann"), admin_ids=frozenset(), now=NOW
        )
    assert repo.selects == 2  # our SELECT, then the re-read after the INSERT did nothing
    assert not user.created_now
    assert (user.first_name, user.username) == ("New name", "ann")
    [row] = await stored_users(sessionmaker)
    assert (row.first_name, row.username, row.is_blocked) == ("New name", "ann", False)


async def test_a_brand_new_user_is_created_once_with_everything_telegram_said(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker.begin() as session:
        user = await ensure_user(
            UserRepository(session),
            telegram_user("Ann", "ann"),
            admin_ids=frozenset({NEW_USER}),
            now=NOW,
        )
    assert user.created_now and user.is_admin and user.created_at == NOW
    [row] = await stored_users(sessionmaker)
    assert (row.first_name, row.username, row.role, row.last_seen_at) == (
        "Ann",
        "ann",
        "admin",
        NOW,
    )


async def test_two_first_settings_changes_at_once_both_apply(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker.begin() as session:
        await ensure_user(
            UserRepository(session), telegram_user("Ann"), admin_ids=frozenset(), now=NOW
        )

    async def connect() -> None:
        async with sessionmaker() as session:
            await session.execute(text("SELECT 1"))
            await asyncio.sleep(0.05)

    async def flip() -> None:
        async with sessionmaker.begin() as session:
            await toggle(session, NEW_USER, "auto_approve", NOW)

    # Two pooled connections ready (PostgreSQL), so both flips really start at once.
    await asyncio.gather(connect(), connect())
    await asyncio.gather(flip(), flip())
    async with sessionmaker() as session:
        count = await session.scalar(select(func.count()).select_from(UserSettings))
        settings = await session.get(UserSettings, NEW_USER)
    assert count == 1
    # Two flips, one after the other (the row is locked for each): back where it started.
    assert settings is not None and settings.auto_approve is False
