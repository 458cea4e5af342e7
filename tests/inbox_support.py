"""The inbox under test, in either mode: webhook deliveries to the real side server, or
the real polling loop against the fake Bot API's getUpdates."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiogram import Dispatcher
from aiogram.utils.backoff import BackoffConfig
from sqlalchemy import event as sa_event
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from bot.container import Container
from bot.factory import create_dispatcher
from bot.intake.inbox import Inbox
from bot.intake.polling import Poller
from db.models import DeadLetter, Payment, ProcessedUpdate
from tests.fake_bot_api import FakeBotAPI
from tests.webhook_support import Instance, ServerFactory, start_instance

FAST_BACKOFF = BackoffConfig(min_delay=0.01, max_delay=0.05, factor=2, jitter=0)
# Small numbers so that a test walks every attempt in well under a second.
INBOX_OVERRIDES: dict[str, Any] = {
    "inbox": {"max_attempts": 3, "retry_backoff_s": 0.02, "retry_backoff_max_s": 0.1}
}


@dataclass
class Harness:
    """One bot instance fed by Telegram in one mode; ``send`` returns once it is claimed."""

    mode: str
    container: Container
    dp: Dispatcher
    inbox: Inbox
    api: FakeBotAPI
    webhook: Instance | None = None
    poller: Poller | None = None

    async def send(self, update: dict[str, Any]) -> int:
        if self.webhook is not None:
            status, _ = await self.webhook.deliver(update)
            assert status == 200
            return int(update["update_id"])
        update_id = self.api.inject_update(update)
        # The next getUpdates confirms it: by then the batch is stored and queued.
        await self.api.wait_for(
            "getUpdates", lambda call: int(call.params.get("offset") or 0) > update_id
        )
        return update_id

    async def send_and_wait(self, update: dict[str, Any]) -> int:
        update_id = await self.send(update)
        await self.inbox.join()
        return update_id

    async def row(self, update_id: int) -> ProcessedUpdate | None:
        async with self.container.sessionmaker() as session:
            return await session.get(ProcessedUpdate, update_id)

    async def dead_letter(self, update_id: int) -> DeadLetter | None:
        async with self.container.sessionmaker() as session:
            return await session.get(DeadLetter, update_id)

    async def payments(self) -> int:
        async with self.container.sessionmaker() as session:
            return int(await session.scalar(select(func.count()).select_from(Payment)) or 0)


@contextlib.asynccontextmanager
async def harness(
    mode: str, container: Container, api: FakeBotAPI, aiohttp_server: ServerFactory
) -> AsyncIterator[Harness]:
    if mode == "webhook":
        instance = await start_instance(container, api, aiohttp_server)
        try:
            yield Harness(mode, container, instance.dp, instance.intake, api, webhook=instance)
        finally:
            await instance.close()
        return
    dp = create_dispatcher(container)
    inbox = Inbox(container, dp)
    poller = Poller(
        inbox,
        inbox.bot,
        timeout=5,
        allowed_updates=dp.resolve_used_update_types(),
        backoff=FAST_BACKOFF,
    )
    task = asyncio.create_task(poller.run())
    try:
        yield Harness(mode, container, dp, inbox, api, poller=poller)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await inbox.close()
        await dp.storage.close()


class RefusedCommits:
    """The database refuses to commit any transaction that holds a payment, ``times``
    times: the commit fails as on a lost connection or a deferred constraint."""

    def __init__(self, times: int) -> None:
        self.times = times
        self.refused = 0

    def __enter__(self) -> RefusedCommits:
        sa_event.listen(Session, "before_commit", self._before_commit)
        return self

    def __exit__(self, *exc_info: object) -> None:
        sa_event.remove(Session, "before_commit", self._before_commit)

    def _before_commit(self, session: Session) -> None:
        if self.refused >= self.times:
            return
        if session.execute(select(func.count()).select_from(Payment)).scalar():
            self.refused += 1
            raise OperationalError("COMMIT", None, Exception("the database refused the commit"))
