"""Webhook mode: accept Telegram's deliveries fast, exactly once, and process them behind.

A delivery is claimed (its id and raw JSON inserted into ``processed_updates``) before
Telegram gets its 200, then processed in the background: per chat in arrival order,
at most ``webhook.max_concurrency`` at once. The row is marked handled inside the
update's own transaction when the update wrote anything, else in a batch right after it
(bot/middlewares/inbox.py), so a crash mid-processing leaves it pending and recovery
processes it later. docs/operations.md explains the choice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from datetime import datetime, timedelta
from enum import StrEnum

from aiogram import Bot, Dispatcher
from aiogram.dispatcher.middlewares.user_context import UserContextMiddleware
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import Update
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.config import ConfigError, Settings
from bot.container import Container
from bot.middlewares.inbox import CLAIMED_KEY
from bot.updatelog import Outcome, UpdateTrace
from db.repositories.processed_updates import ProcessedUpdateRepository

logger = logging.getLogger(__name__)

Job = Callable[[], Awaitable[None]]
PRUNE_INTERVAL_S = 3600.0
# Marks of read-only updates are written this often, in one statement (MarkBatcher).
MARK_INTERVAL_S = 0.05


class Receipt(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    BUSY = "busy"


class InvalidUpdate(ValueError):
    """The body is not a Telegram update."""


class ChatQueues:
    """Runs jobs with bounded concurrency; jobs of one key run one at a time, in order.

    One worker task per key with work; workers take a slot per job, so chats share the
    slots round-robin and a busy chat cannot starve the others.
    """

    def __init__(self, concurrency: int) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self._queues: dict[Hashable, deque[Job]] = {}
        self._workers: dict[Hashable, asyncio.Task[None]] = {}
        self._size = 0

    @property
    def size(self) -> int:
        """Jobs queued or running."""
        return self._size

    def submit(self, key: Hashable, job: Job) -> None:
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
        queue.append(job)
        self._size += 1
        if key not in self._workers:
            self._workers[key] = asyncio.create_task(self._work(key, queue))

    async def _work(self, key: Hashable, queue: deque[Job]) -> None:
        try:
            while queue:
                async with self._slots:
                    job = queue[0]
                    try:
                        await job()
                    except Exception:
                        logger.exception("background job failed")
                    finally:
                        queue.popleft()
                        self._size -= 1
        finally:
            # Cancelled (shutdown): what is left stays pending in the database.
            self._size -= len(queue)
            queue.clear()
            del self._workers[key]
            del self._queues[key]

    async def join(self) -> None:
        """Wait until every job submitted so far (and any submitted meanwhile) is done."""
        while self._workers:
            await asyncio.wait(set(self._workers.values()))

    async def drain(self, within: float) -> int:
        """Let queued and running jobs finish for up to ``within`` s; cancel the rest.

        Returns how many jobs were cancelled or never started.
        """
        workers = set(self._workers.values())
        if not workers:
            return 0
        _done, late = await asyncio.wait(workers, timeout=within)
        left = self._size
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)
        return left


class ClaimBatcher:
    """Group commit of claims: whatever arrived while the last INSERT ran goes in the next.

    No timer: a lone delivery is written at once, a burst shares one transaction.
    """

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self.sessionmaker = sessionmaker
        self.clock = clock
        self._batch: list[tuple[int, str, asyncio.Future[bool]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def claim(self, update_id: int, raw: str) -> bool:
        """True when this call inserted the id; False when it was stored already."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._batch.append((update_id, raw, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._batch:
            batch, self._batch = self._batch, []
            try:
                async with self.sessionmaker.begin() as session:
                    claimed = await ProcessedUpdateRepository(session).claim(
                        [(update_id, raw) for update_id, raw, _ in batch], self.clock()
                    )
            except Exception as exc:
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            else:
                for update_id, _, future in batch:
                    if not future.done():
                        future.set_result(update_id in claimed)

    async def close(self) -> None:
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)


class MarkBatcher:
    """Batched "handled" marks for updates that only read (see bot/middlewares/inbox.py).

    ``defer`` is called from an after-commit hook and only queues. Nobody waits for a
    mark, so they are written every ``MARK_INTERVAL_S`` in one statement rather than one
    by one. Ids stay in ``waiting`` until their mark is stored, so recovery leaves them
    alone meanwhile; ``on_stored`` hears of each batch once it is written (or given up:
    then recovery finds those updates pending and runs them again). A crash loses at
    most the last interval's marks, and those updates are read-only ones.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        on_stored: Callable[[list[int]], None],
    ) -> None:
        self.sessionmaker = sessionmaker
        self.clock = clock
        self.on_stored = on_stored
        self.waiting: set[int] = set()
        self._batch: list[int] = []
        self._hurry = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None

    def defer(self, update_id: int) -> None:
        self.waiting.add(update_id)
        self._batch.append(update_id)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self._batch:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._hurry.wait(), MARK_INTERVAL_S)
            batch, self._batch = self._batch, []
            await self._store(batch)

    async def _store(self, batch: list[int]) -> None:
        try:
            async with self.sessionmaker.begin() as session:
                await ProcessedUpdateRepository(session).mark_many_handled(batch, self.clock())
        except Exception as exc:
            logger.warning(
                "%d handled updates stay pending (run again by recovery): %s",
                len(batch),
                type(exc).__name__,
            )
        finally:
            self.waiting.difference_update(batch)
            self.on_stored(batch)

    async def flush(self) -> None:
        """Store every mark queued so far, now."""
        self._hurry.set()
        try:
            if self._flusher is not None:
                await asyncio.gather(self._flusher, return_exceptions=True)
        finally:
            self._hurry.clear()


class WebhookIntake:
    """Receives webhook deliveries for one dispatcher; see the module docstring."""

    def __init__(self, container: Container, dp: Dispatcher, bot: Bot | None = None) -> None:
        bot = bot or container.bot
        if bot is None:
            raise RuntimeError("webhook mode needs a bot")
        self.bot = bot
        self.dp = dp
        self.settings = container.settings.webhook
        self.clock = container.clock
        self.sessionmaker = container.sessionmaker
        self.log = container.update_log
        # An update holds the database only while it works with it, not while it waits on
        # Telegram (db/update_session.py), so SQLite's one connection serves them all.
        self._queues = ChatQueues(self.settings.max_concurrency)
        self._claims = ClaimBatcher(container.sessionmaker, container.clock)
        self._marks = MarkBatcher(container.sessionmaker, container.clock, self._forget)
        self._active: set[int] = set()
        self._accepting = True
        self._maintenance: asyncio.Task[None] | None = None
        container.metrics.watch_webhook_queue(lambda: self._queues.size)

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        """Start recovery and pruning in the background (the first round runs at once)."""
        if self._maintenance is None:
            self._maintenance = asyncio.create_task(self._maintain())

    async def join(self) -> None:
        """Wait until every accepted update has been processed and marked (tests, benchmarks)."""
        await self._queues.join()
        await self._marks.flush()

    async def drain(self, within: float) -> int:
        """Stop accepting (503 from now on) and let work finish; return what was left."""
        self._accepting = False
        left = await self._queues.drain(within)
        await self._marks.flush()
        return left

    async def close(self) -> None:
        self._accepting = False
        if self._maintenance is not None:
            self._maintenance.cancel()
            await asyncio.gather(self._maintenance, return_exceptions=True)
            self._maintenance = None
        await self._queues.drain(0)
        await self._claims.close()
        await self._marks.flush()

    # ------------------------------------------------------------------ receiving

    def parse(self, raw: str | bytes) -> Update:
        """The update in a delivery's JSON body; InvalidUpdate when it is not one."""
        try:
            return Update.model_validate_json(raw, context={"bot": self.bot})
        except ValidationError as exc:
            raise InvalidUpdate(str(exc.errors()[0]["msg"])) from None

    async def receive(self, raw: str) -> Receipt:
        """Claim and queue one delivery. Raises InvalidUpdate, or the database's error."""
        if not self._accepting or self._queues.size >= self.settings.max_pending:
            return Receipt.BUSY  # before parsing: overload must stay cheap
        update = self.parse(raw)
        update_id = update.update_id
        if update_id in self._active:
            return self._duplicate(update)
        self._active.add(update_id)
        try:
            claimed = await self._claims.claim(update_id, raw)
        except BaseException:
            self._active.discard(update_id)
            raise
        if not claimed:
            self._active.discard(update_id)
            return self._duplicate(update)
        self._submit(update)
        return Receipt.ACCEPTED

    def _forget(self, update_ids: list[int]) -> None:
        """Their marks are stored (or given up): no longer in flight here."""
        self._active.difference_update(update_ids)

    def _duplicate(self, update: Update) -> Receipt:
        trace = UpdateTrace.of(update)
        trace.outcome = Outcome.DUPLICATE
        self.log.record(trace, timed=False)
        return Receipt.DUPLICATE

    def _submit(self, update: Update) -> None:
        context = UserContextMiddleware.resolve_event_context(update)
        key: Hashable = context.chat_id or context.user_id or ("update", update.update_id)
        received_at = self.clock()  # accepted now; the rate limit counts it from here

        async def job() -> None:
            await self._process(update, received_at)

        self._queues.submit(key, job)

    async def _process(self, update: Update, received_at: datetime) -> None:
        trace = UpdateTrace.of(update)
        try:
            await self.dp.feed_update(
                self.bot,
                update,
                trace=trace,
                received_at=received_at,
                **{CLAIMED_KEY: self._marks},
            )
        except Exception:
            # The errors handler gave up (or something before our middlewares failed).
            logger.exception("update %s failed outside its handlers", update.update_id)
            if trace.outcome is None:
                return  # not even started: leave it pending for recovery
        finally:
            if update.update_id not in self._marks.waiting:
                self._active.discard(update.update_id)
        if trace.outcome is Outcome.ERROR:
            # The failed update's transaction rolled back its mark; the user has had the
            # apology, so settle it rather than retrying a poison update forever.
            await self._settle(update.update_id)

    async def _settle(self, update_id: int) -> None:
        try:
            async with self.sessionmaker.begin() as session:
                await ProcessedUpdateRepository(session).mark_handled(update_id, self.clock())
        except Exception as exc:
            logger.warning(
                "update %s stays pending (retried later): %s", update_id, type(exc).__name__
            )

    # ------------------------------------------------------------------ maintenance

    async def recover(self) -> int:
        """Queue updates claimed long enough ago and never handled (a crash, a shutdown)."""
        room = self.settings.max_pending - self._queues.size
        if room <= 0 or not self._accepting:
            return 0
        cutoff = self.clock() - timedelta(seconds=self.settings.recover_after_s)
        async with self.sessionmaker.begin() as session:
            rows = await ProcessedUpdateRepository(session).pending(cutoff, room)
        queued = 0
        for update_id, raw in rows:
            if update_id in self._active:
                continue
            try:
                update = self.parse(raw)
            except InvalidUpdate:
                logger.error("stored update %s is unreadable; dropped", update_id)
                await self._settle(update_id)
                continue
            self._active.add(update_id)
            self._submit(update)
            queued += 1
        if queued:
            logger.warning("recovered %d accepted but unprocessed updates", queued)
        return queued

    async def prune(self) -> int:
        """Forget update ids older than the retention (Telegram stopped retrying long ago)."""
        cutoff = self.clock() - timedelta(days=self.settings.retention_days)
        async with self.sessionmaker.begin() as session:
            removed = await ProcessedUpdateRepository(session).prune(cutoff)
        if removed:
            logger.info("pruned %d processed update ids", removed)
        return removed

    async def _maintain(self) -> None:
        interval = max(1.0, self.settings.recover_after_s / 2)
        next_prune = 0.0
        while True:
            try:
                await self.recover()
                if time.monotonic() >= next_prune:
                    await self.prune()
                    next_prune = time.monotonic() + PRUNE_INTERVAL_S
            except Exception as exc:
                logger.warning("webhook maintenance failed: %s", type(exc).__name__)
            await asyncio.sleep(interval)


async def register_webhook(bot: Bot, dp: Dispatcher, settings: Settings) -> list[str]:
    """setWebhook with the URL, the secret and the update types the handlers use."""
    url, secret = settings.require_webhook()
    allowed = dp.resolve_used_update_types()
    try:
        await bot.set_webhook(
            url=url,
            secret_token=secret,
            allowed_updates=allowed,
            drop_pending_updates=settings.telegram.drop_pending_updates,
            max_connections=settings.webhook.max_connections,
        )
    except TelegramBadRequest as exc:
        # Telegram checks the URL (HTTPS, port 443/80/88/8443, resolvable): name the key.
        raise ConfigError(
            f"config error: webhook.url (WEBHOOK__URL or config.toml): "
            f"Telegram refused {url}: {exc.message}"
        ) from None
    logger.info("webhook set: %s (%s)", url, ", ".join(allowed))
    return allowed
