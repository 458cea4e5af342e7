"""Webhook mode under test: the real side server on loopback, fed by the fake Bot API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiogram import Bot, Dispatcher
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from bot.container import Container
from bot.factory import create_dispatcher
from bot.intake.webhook import WebhookIntake
from db.models import ProcessedUpdate
from tests.conftest import TEST_SECRETS
from tests.fake_bot_api import FakeBotAPI
from webhook_server import create_app

SECRET = TEST_SECRETS["webhook_secret"]
WEBHOOK_OVERRIDES: dict[str, Any] = {
    "telegram": {"mode": "webhook"},
    "webhook": {"url": "https://bot.example.com"},
}

ServerFactory = Callable[..., Awaitable[TestServer]]


@dataclass
class Instance:
    """One bot instance: its container, dispatcher, intake and side server."""

    container: Container
    dp: Dispatcher
    intake: WebhookIntake
    server: TestServer
    api: FakeBotAPI

    @property
    def url(self) -> str:
        return str(self.server.make_url(self.container.settings.webhook.path))

    async def deliver(
        self, update: dict[str, Any], *, secret: str | None = SECRET
    ) -> tuple[int, str]:
        return await self.api.deliver_webhook(self.url, update, secret_token=secret)

    async def deliver_and_wait(self, update: dict[str, Any]) -> tuple[int, str]:
        result = await self.deliver(update)
        await self.intake.join()
        return result

    async def row(self, update_id: int) -> ProcessedUpdate | None:
        async with self.container.sessionmaker() as session:
            return await session.scalar(
                select(ProcessedUpdate).where(ProcessedUpdate.update_id == update_id)
            )

    async def close(self) -> None:
        await self.intake.close()
        await self.server.close()
        await self.dp.storage.close()


async def start_instance(
    container: Container,
    api: FakeBotAPI,
    aiohttp_server: ServerFactory,
    *,
    dp: Dispatcher | None = None,
    bot: Bot | None = None,
) -> Instance:
    dp = dp or create_dispatcher(container)
    intake = WebhookIntake(container, dp, bot)
    server = await aiohttp_server(create_app(container, intake=intake))
    return Instance(container, dp, intake, server, api)


async def dispose(container: Container) -> None:
    """Close a container a test built itself (the fixture closes its own)."""
    await container.stop_background(within=5.0)
    await container.aclose()
    await container.engine.dispose()
