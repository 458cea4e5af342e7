"""Fixtures: everything is built by the production factories on a real migrated database.

SQLite by default (a fresh migrated file per test, copied from a template migrated once);
PostgreSQL when TEST_DATABASE_URL is set (migrated once, tables emptied per test).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.container import Container
from bot.factory import create_bot, create_container, create_dispatcher
from db.base import Base
from db.engine import create_engine
from db.migrate import downgrade, upgrade
from tests.fake_bot_api import FakeBotAPI, close_bot_session

ADMIN_ID = 900_000_001
BOT_TOKEN = "123456789:" + "T" * 35
TEST_SECRETS = {
    "master_key": "test-master-key-" + "m" * 32,
    "webhook_secret": "test-webhook-secret-" + "w" * 20,
    "provider_token": "test-provider-token-" + "p" * 20,
}
REPO_ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get("TEST_DATABASE_URL", "")
_ENV_PREFIXES = (
    "BOT_TOKEN",
    "MASTER_KEY",
    "WEBHOOK_SECRET",
    "PROVIDER_TOKEN",
    "APP_CONFIG",
    "TELEGRAM__",
    "DATABASE__",
    "SERVER__",
    "WEBHOOK__",
    "REDIS__",
    "LOGGING__",
    "DEVICES__",
    "SIGNALS__",
    "AFFILIATES__",
    "CHECKOUT__",
    "RATE_LIMIT__",
    "METRICS__",
    "SENDING__",
    "OUTBOX__",
    "INBOX__",
)


class FakeClock:
    """An injectable clock: starts at a fixed UTC instant, moves only when told."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No developer .env or environment override leaks into a test."""
    for name in list(os.environ):
        if name.upper().startswith(_ENV_PREFIXES):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once; each test gets a copy."""
    import asyncio

    path = tmp_path_factory.mktemp("template") / "template.sqlite3"

    async def migrate() -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(migrate())
    return path


@pytest.fixture(scope="session")
def postgres_ready() -> Iterator[str]:
    import asyncio

    async def reset() -> None:
        engine = create_engine(POSTGRES_URL)
        try:
            async with engine.begin() as connection:
                await connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
                await connection.execute(text("CREATE SCHEMA public"))
            await upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(reset())
    yield POSTGRES_URL


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if POSTGRES_URL:
        return str(request.getfixturevalue("postgres_ready"))
    template: Path = request.getfixturevalue("sqlite_template")
    path = tmp_path / "signalbridge.sqlite3"
    shutil.copyfile(template, path)
    return f"sqlite+aiosqlite:///{path}"


async def _truncate_all(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
            await connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    finally:
        await engine.dispose()


@pytest.fixture
async def clean_database(database_url: str) -> AsyncIterator[str]:
    if POSTGRES_URL:
        await _truncate_all(database_url)
    yield database_url


@pytest.fixture
async def fake_api() -> AsyncIterator[FakeBotAPI]:
    api = FakeBotAPI()
    await api.start()
    try:
        yield api
    finally:
        await api.close()


def make_settings(database_url: str, api_base: str, **sections: Any) -> Settings:
    data: dict[str, Any] = {
        "telegram": {"api_base": api_base, "admin_ids": [ADMIN_ID]},
        "database": {"url": database_url},
        "server": {"host": "127.0.0.1", "port": 0, "public_url": "http://127.0.0.1:8080"},
        # Telegram's real pace (1 message/s per chat) would make every chat flow slow;
        # tests/test_sending.py proves the pacing with small numbers.
        "sending": {"global_per_second": 100_000, "per_chat_interval_seconds": 0},
        "signals": {"edit_interval_seconds": 0},
        # Flows send many updates at a frozen FakeClock; tests/test_ratelimit.py sets the
        # production bucket (10 a minute) itself.
        "rate_limit": {"capacity": 1000},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return Settings(_env_file=None, bot_token=BOT_TOKEN, **TEST_SECRETS, **data)  # type: ignore[arg-type]


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override per test module: return {"section": {"key": value}}."""
    return {}


@pytest.fixture
def settings(
    clean_database: str, fake_api: FakeBotAPI, settings_overrides: dict[str, Any]
) -> Settings:
    return make_settings(clean_database, fake_api.base_url, **settings_overrides)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def bot(settings: Settings) -> AsyncIterator[Bot]:
    instance = create_bot(settings)
    try:
        yield instance
    finally:
        await close_bot_session(instance)


@pytest.fixture
async def container(settings: Settings, bot: Bot, clock: FakeClock) -> AsyncIterator[Container]:
    instance = create_container(settings, bot=bot, clock=clock)
    try:
        yield instance
    finally:
        await instance.stop_background(within=5.0)
        await instance.engine.dispose()


@pytest.fixture
def sessionmaker(container: Container) -> async_sessionmaker[AsyncSession]:
    return container.sessionmaker


@pytest.fixture
async def dp(container: Container) -> AsyncIterator[Dispatcher]:
    dispatcher = create_dispatcher(container)
    try:
        yield dispatcher
    finally:
        await dispatcher.storage.close()


class Chat:
    """Drives the real dispatcher with Telegram-shaped updates and reads what the bot sent."""

    def __init__(self, dp: Dispatcher, bot: Bot, api: FakeBotAPI) -> None:
        self.dp = dp
        self.bot = bot
        self.api = api
        self._update_id = 0

    async def feed(self, update: dict[str, Any]) -> Any:
        self._update_id += 1
        update = {"update_id": self._update_id, **update}
        result = await self.dp.feed_raw_update(self.bot, update)
        # What the update queued in the outbox, and the calls it left for after its commit
        # (callback answers, bot/chat/tell.py), go out after the commit: wait for them.
        await self.dp["outbox_worker"].drain()
        await self.dp["tell"].drain()
        return result

    async def send(self, user_id: int, text: str, **kwargs: Any) -> list[str]:
        """Send a message as ``user_id``; return the texts the bot sent in answer."""
        from tests.fake_bot_api import message_update

        before = len(self.api.calls)
        await self.feed(message_update(user_id, text, **kwargs))
        return [
            str(call.params.get("text") or call.params.get("caption") or "")
            for call in self.api.calls[before:]
            if call.method in {"sendMessage", "editMessageText", "sendPhoto", "sendDocument"}
        ]

    async def press(self, user_id: int, data: str, **kwargs: Any) -> list[Any]:
        """Press a button as ``user_id``; return the calls the bot made in answer."""
        from tests.fake_bot_api import callback_update

        before = len(self.api.calls)
        await self.feed(callback_update(user_id, data, **kwargs))
        return self.api.calls[before:]


@pytest.fixture
def chat(dp: Dispatcher, bot: Bot, fake_api: FakeBotAPI) -> Chat:
    return Chat(dp, bot, fake_api)


__all__ = ["ADMIN_ID", "BOT_TOKEN", "Chat", "FakeClock", "downgrade", "make_settings", "upgrade"]
