"""Helpers for the signal tests: users in bulk, the side-server client, provider calls."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import Approval, Signal, User, UserSettings
from tests.conftest import TEST_SECRETS

PROVIDER_TOKEN = TEST_SECRETS["provider_token"]
AUTH = {"Authorization": f"Bearer {PROVIDER_TOKEN}"}


async def add_users(
    sessionmaker: async_sessionmaker[AsyncSession],
    ids: list[int],
    now: datetime,
    *,
    blocked: tuple[int, ...] = (),
    admins: tuple[int, ...] = (),
    auto_approve: tuple[int, ...] = (),
) -> None:
    rows = [
        {
            "id": user_id,
            "first_name": f"U{user_id}",
            "role": "admin" if user_id in admins else "user",
            "created_at": now,
            "last_seen_at": now,
            "is_blocked": user_id in blocked,
        }
        for user_id in ids
    ]
    async with sessionmaker.begin() as session:
        await session.execute(insert(User), rows)
        if auto_approve:
            await session.execute(
                insert(UserSettings),
                [
                    {
                        "user_id": user_id,
                        "auto_approve": True,
                        "notify_fills": True,
                        "notify_errors": True,
                        "updated_at": now,
                    }
                    for user_id in auto_approve
                ],
            )


async def post_signal(client: TestClient[Any, Any], body: dict[str, Any]) -> tuple[int, Any]:
    response = await client.post("/api/v1/signals", json=body, headers=AUTH)
    return response.status, await response.json()


async def approvals_of(
    sessionmaker: async_sessionmaker[AsyncSession], public_id: str
) -> dict[int, Approval]:
    async with sessionmaker() as session:
        signal = (await session.scalars(select(Signal).where(Signal.public_id == public_id))).one()
        rows = await session.scalars(select(Approval).where(Approval.signal_id == signal.id))
        return {approval.user_id: approval for approval in rows}


async def signal_row(sessionmaker: async_sessionmaker[AsyncSession], public_id: str) -> Signal:
    async with sessionmaker() as session:
        return (await session.scalars(select(Signal).where(Signal.public_id == public_id))).one()
