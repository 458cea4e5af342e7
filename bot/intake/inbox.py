"""The inbox: every Telegram update is stored before it is processed, in both modes.

Webhook deliveries (bot/intake/webhook.py) and long-polling batches (bot/intake/polling.py)
are claimed the same way: the update's id and raw JSON are inserted into ``processed_updates``
before Telegram is told we have it (the webhook's 200, or the next getUpdates offset).
Then they are processed in the background, per chat in arrival order, at most
``webhook.max_concurrency`` at once. The row is marked handled inside the update's own
transaction when the update wrote anything, else in a batch right after it
(bot/chat/middlewares/inbox.py), so a crash mid-processing leaves it pending and recovery
processes it later.

An update whose processing fails (an unexpected error, or its commit) is not marked: its
failed attempts are counted in the row and it runs again after a backoff, until it
succeeds or has failed ``inbox.max_attempts`` times in a row; then it becomes a dead
letter, the admins are told once, and ``/retry <update_id>`` runs it again.
docs/operations.md explains the choices.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.dispatcher.middlewares.user_context import UserContextMiddleware
from aiogram.types import Update
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.chat.middlewares.inbox import ATTEMPT_KEY, CLAIMED_KEY, Attempt
from bot.container import Container
from bot.domain.notices import NoticeCode
from bot.infra.clock import Clock
from bot.infra.group_commit import Gathering
from bot.infra.updatelog import Outcome, UpdateTrace
from db.models import DeadLetter
from db.repositories.dead_letters import DeadLetterRepository
from db.repositories.processed_updates import ProcessedUpdateRepository, StoredUpdate

logger = logging.getLogger(__name__)

Job = Callable[[], Awaitable[None]]
PRUNE_INTERVAL_S = 3600.0
# Marks of read-only updates are written this often, in one statement (MarkBatcher).
MARK_INTERVAL_S = 0.05
# Claims stored per transaction at most.
CLAIM_BATCH = 500
# The key of ``received_at`` (UTC time of the claim) in the data of every update.
RECEIVED_AT_KEY = "received_at"


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
        # Set whenever a job ends (whoever waits for room clears it first).
        self.freed = asyncio.Event()

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
                        self.freed.set()
        finally:
            # Cancelled (shutdown): what is left stays pending in the database.
            self._size -= len(queue)
            self.freed.set()
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
        _done, late = await asyncio.wait(workers, timeout=within) if within > 0 else ((), workers)
        left = self._size
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)
        return left


class ClaimBatcher:
    """Group commit of claims: whatever arrived while the last INSERT ran goes in the next,
    and under load the deliveries the last commit answered too (bot/infra/group_commit.py).

    No timer: a lone delivery is written at once, a burst shares one transaction.
    """

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self.sessionmaker = sessionmaker
        self.clock = clock
        self._batch: list[tuple[int, str, asyncio.Future[datetime | None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._arrived = asyncio.Event()
        self._gathering = Gathering()

    async def claim(self, update_id: int, raw: str) -> datetime | None:
        """The time of the claim when this call inserted the id; None when it was stored
        already."""
        future: asyncio.Future[datetime | None] = asyncio.get_running_loop().create_future()
        self._batch.append((update_id, raw, future))
        self._arrived.set()
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._batch:
            await self._gathering.wait(self._batch.__len__, self._arrived, CLAIM_BATCH)
            batch, self._batch = self._batch[:CLAIM_BATCH], self._batch[CLAIM_BATCH:]
            now = self.clock()
            try:
                async with self.sessionmaker.begin() as session:
                    claimed = await ProcessedUpdateRepository(session).claim(
                        [(update_id, raw) for update_id, raw, _ in batch], now
                    )
            except Exception as exc:
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            else:
                for update_id, _, future in batch:
                    if not future.done():
                        future.set_result(now if update_id in claimed else None)
            self._gathering.committed(len(batch))

    async def close(self) -> None:
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)


class MarkBatcher:
    """Batched "handled" marks for updates that only read (see bot/chat/middlewares/inbox.py).

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


@dataclass(frozen=True, slots=True)
class Pending:
    """A claimed update on its way through the queues."""

    update: Update
    received_at: datetime
    # Failed attempts so far (stored in its row).
    attempts: int = 0
    # Put back from the dead letters by an admin (``retried_by``), who hears the outcome.
    dead_letter: bool = False
    retried_by: int | None = None


class Inbox:
    """Claims, queues, processes, retries and recovers updates; see the module docstring."""

    def __init__(
        self,
        container: Container,
        dp: Dispatcher,
        bot: Bot | None = None,
        *,
        sole_consumer: bool = False,
    ) -> None:
        """``sole_consumer``: no other instance takes this bot's updates (polling: Telegram
        answers a second getUpdates 409), so what is pending at start-up was left by the
        last run and is recovered at once rather than after ``webhook.recover_after_s``."""
        bot = bot or container.bot
        if bot is None:
            raise RuntimeError("the inbox needs a bot")
        self.sole_consumer = sole_consumer
        self.bot = bot
        self.dp = dp
        self.container = container
        self.settings = container.settings.webhook
        self.retries = container.settings.inbox
        self.clock = container.clock
        self.sessionmaker = container.sessionmaker
        self.log = container.update_log
        # An update holds the database only while it works with it, not while it waits on
        # Telegram (db/update_session.py), so SQLite's one connection serves them all.
        self._queues = ChatQueues(self.settings.max_concurrency)
        self._claims = ClaimBatcher(container.sessionmaker, container.clock)
        self._marks = MarkBatcher(container.sessionmaker, container.clock, self._forget)
        # Ids claimed, queued, running, waiting for a retry or for their batched mark here.
        self._active: set[int] = set()
        self._retry_timers: dict[int, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._accepting = True
        self._maintenance: asyncio.Task[None] | None = None
        container.metrics.watch_webhook_queue(lambda: self._queues.size)
        # The admin commands (handlers/admin_dead_letters.py) re-queue through it.
        dp["inbox"] = self

    # ------------------------------------------------------------------ life cycle

    @property
    def accepting(self) -> bool:
        return self._accepting

    @property
    def queued(self) -> int:
        """Updates queued or running here."""
        return self._queues.size

    async def start(self) -> None:
        """Start recovery and pruning in the background (the first round runs at once)."""
        if self._maintenance is None:
            self._maintenance = asyncio.create_task(self._maintain())

    async def join(self) -> None:
        """Wait until every accepted update has been processed, retried to the end,
        marked, and what it told sent (tests, benchmarks)."""
        while True:
            await self._queues.join()
            if self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
                continue
            await self._marks.flush()
            if not self._retry_timers and not self._queues.size and not self._tasks:
                break
            await asyncio.sleep(0.01)
        # And told: what the updates queued goes out after their commits.
        await self.dp["tell"].drain()
        if self.container.outbox_worker is not None:
            await self.container.outbox_worker.drain()

    def stop_accepting(self) -> None:
        """Shutdown, first step: no new deliveries (503), batches, retries or recovery."""
        self._accepting = False
        for timer in self._retry_timers.values():
            timer.cancel()  # the row says when it is due; recovery runs it after a restart
        self._retry_timers.clear()
        self._queues.freed.set()  # a poller waiting for room stops waiting

    async def drain(self, within: float) -> int:
        """Stop accepting and let work finish for up to ``within`` s; return what was left
        (it stays pending in the database)."""
        self.stop_accepting()
        left = await self._queues.drain(within)
        await self._marks.flush()
        return left

    async def close(self) -> None:
        self.stop_accepting()
        if self._maintenance is not None:
            self._maintenance.cancel()
            await asyncio.gather(self._maintenance, return_exceptions=True)
            self._maintenance = None
        await self._queues.drain(0)
        await self._claims.close()
        await self._marks.flush()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def wait_for_room(self) -> None:
        """Until fewer than ``webhook.max_pending`` updates wait here (polling's back-pressure)."""
        while self._accepting and self._queues.size >= self.settings.max_pending:
            self._queues.freed.clear()
            await self._queues.freed.wait()

    # ------------------------------------------------------------------ receiving

    def parse(self, raw: str | bytes) -> Update:
        """The update in a stored or delivered JSON body; InvalidUpdate when it is not one."""
        try:
            return Update.model_validate_json(raw, context={"bot": self.bot})
        except ValidationError as exc:
            raise InvalidUpdate(str(exc.errors()[0]["msg"])) from None

    async def accept(self, update: Update, raw: str) -> Receipt:
        """Claim and queue one update. Raises the database's error when it cannot be stored."""
        if not self._accepting or self._queues.size >= self.settings.max_pending:
            return Receipt.BUSY
        update_id = update.update_id
        if update_id in self._active:
            return self._duplicate(update)
        self._active.add(update_id)
        try:
            received_at = await self._claims.claim(update_id, raw)
        except BaseException:
            self._active.discard(update_id)
            raise
        if received_at is None:
            self._active.discard(update_id)
            return self._duplicate(update)
        self._submit(Pending(update, received_at))
        return Receipt.ACCEPTED

    async def accept_batch(self, updates: Sequence[Update]) -> int:
        """Claim a getUpdates batch in one transaction, then queue what was new; return how
        many were. Raises the database's error (then nothing was stored)."""
        fresh = [update for update in updates if update.update_id not in self._active]
        for update in updates:
            if update.update_id in self._active:
                self._duplicate(update)
        if not fresh:
            return 0
        rows = [(update.update_id, as_json(update)) for update in fresh]
        now = self.clock()
        async with self.sessionmaker.begin() as session:
            claimed = await ProcessedUpdateRepository(session).claim(rows, now)
        for update in fresh:
            if update.update_id in claimed:
                self._active.add(update.update_id)
                self._submit(Pending(update, now))
            else:
                self._duplicate(update)
        return len(claimed)

    def _forget(self, update_ids: list[int]) -> None:
        """Their marks are stored (or given up): no longer in flight here."""
        self._active.difference_update(update_ids)

    def _duplicate(self, update: Update) -> Receipt:
        trace = UpdateTrace.of(update)
        trace.outcome = Outcome.DUPLICATE
        self.log.record(trace, timed=False)
        return Receipt.DUPLICATE

    def _submit(self, pending: Pending) -> None:
        update = pending.update
        context = UserContextMiddleware.resolve_event_context(update)
        key: Hashable = context.chat_id or context.user_id or ("update", update.update_id)

        async def job() -> None:
            await self._process(pending)

        self._queues.submit(key, job)

    # ------------------------------------------------------------------ processing

    async def _process(self, pending: Pending) -> None:
        update = pending.update
        update_id = update.update_id
        number = pending.attempts + 1
        attempt = Attempt(
            number=number,
            final=number >= self.retries.max_attempts,
            dead_letter=pending.dead_letter,
        )
        trace = UpdateTrace.of(update)
        failure: str | None = None
        try:
            await self.dp.feed_update(
                self.bot,
                update,
                trace=trace,
                **{
                    CLAIMED_KEY: self._marks,
                    ATTEMPT_KEY: attempt,
                    RECEIVED_AT_KEY: pending.received_at,
                },
            )
        except Exception as exc:
            # The errors handler gave up (or something before our middlewares failed).
            logger.error(
                "update %s failed outside its handlers: %s",
                update_id,
                type(exc).__name__,
                exc_info=(type(exc), exc, exc.__traceback__),
            )
            failure = attempt.error or type(exc).__name__
        except BaseException:
            self._active.discard(update_id)  # cancelled (shutdown): it stays pending
            raise
        else:
            failure = attempt.error
        if failure is not None:
            await self._failed(pending, attempt, failure)
            return
        if update_id not in self._marks.waiting:
            self._active.discard(update_id)
        if trace.outcome is Outcome.ERROR:
            # An AppError: the user has its answer, and the rollback took the mark with it.
            await self._settle(pending)
        if pending.dead_letter and pending.retried_by is not None:
            await self.tell(
                pending.retried_by, NoticeCode.DEAD_LETTER_DONE, {"update_id": update_id}
            )

    async def _settle(self, pending: Pending) -> None:
        update_id = pending.update.update_id
        try:
            async with self.sessionmaker.begin() as session:
                await ProcessedUpdateRepository(session).mark_handled(update_id, self.clock())
                if pending.dead_letter:
                    await DeadLetterRepository(session).remove(update_id)
        except Exception as exc:
            logger.warning(
                "update %s stays pending (run again later): %s", update_id, type(exc).__name__
            )

    def backoff(self, attempts: int) -> float:
        """Seconds before the next attempt after ``attempts`` failures in a row."""
        delay = self.retries.retry_backoff_s * 2 ** max(0, attempts - 1)
        return float(min(delay, self.retries.retry_backoff_max_s))

    async def _failed(self, pending: Pending, attempt: Attempt, error: str) -> None:
        """Count the failure; retry after a backoff, or move the update to the dead letters."""
        update = pending.update
        update_id = update.update_id
        now = self.clock()
        delay = self.backoff(pending.attempts + 1)
        letter: DeadLetter | None = None
        try:
            async with self.sessionmaker.begin() as session:
                repo = ProcessedUpdateRepository(session)
                attempts = await repo.record_failure(
                    update_id, error, now, now + timedelta(seconds=delay)
                )
                if attempts is not None and attempts >= self.retries.max_attempts:
                    stored = await repo.get_pending(update_id)
                    assert stored is not None
                    user = UserContextMiddleware.resolve_event_context(update).user
                    letter = await DeadLetterRepository(session).store(
                        stored,
                        user_id=user.id if user is not None else None,
                        error=error,
                        attempts=attempts,
                        now=now,
                    )
                    await repo.mark_handled(update_id, now)
                    # The admins' notice is stored with the letter: it goes out once.
                    notice = {
                        "update_id": update_id,
                        "user_id": letter.user_id,
                        "error": error,
                        "attempts": attempts,
                        "again": pending.dead_letter,
                    }
                    admins = sorted(self.container.admin_ids)
                    await self.container.outbox.notice_many(
                        session, [(admin, NoticeCode.DEAD_LETTER, notice) for admin in admins]
                    )
        except Exception as exc:
            # Left as it was: recovery runs it again (the failure is not counted).
            logger.warning("failure of update %s not recorded: %s", update_id, type(exc).__name__)
            self._active.discard(update_id)
            return
        if attempts is None:  # handled meanwhile (another instance's recovery)
            self._active.discard(update_id)
            return
        if letter is not None:
            self._active.discard(update_id)
            logger.error(
                "update %s failed %d times (last: %s): moved to the dead letters",
                update_id,
                attempts,
                error,
            )
            return
        logger.warning(
            "update %s failed (attempt %d of %d, %s): retried in %.1f s",
            update_id,
            attempts,
            self.retries.max_attempts,
            error,
            delay,
        )
        if not self._accepting:
            self._active.discard(update_id)  # shutting down: the row says when it is due
            return
        retry = replace(pending, attempts=attempts)
        self._retry_timers[update_id] = asyncio.get_running_loop().call_later(
            delay, self._retry, retry
        )

    def _retry(self, pending: Pending) -> None:
        self._retry_timers.pop(pending.update.update_id, None)
        if self._accepting:
            self._submit(pending)
        else:
            self._active.discard(pending.update.update_id)

    # ------------------------------------------------------------------ admins

    async def tell(self, chat_id: int, code: NoticeCode, params: dict[str, Any]) -> None:
        """Queue a notice in the outbox (its own transaction: what it tells is committed)."""
        try:
            async with self.sessionmaker.begin() as session:
                await self.container.outbox.notice(session, chat_id, code, params)
        except Exception as exc:
            logger.warning("notice to %s not stored: %s", chat_id, type(exc).__name__)

    def run_stored(self, update_id: int, *, retried_by: int | None = None) -> None:
        """Queue a stored pending update now (an admin's /retry, after its commit)."""
        task = asyncio.create_task(self._run_stored(update_id, retried_by))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_stored(self, update_id: int, retried_by: int | None) -> None:
        if not self._accepting or update_id in self._active:
            return
        async with self.sessionmaker.begin() as session:
            stored = await ProcessedUpdateRepository(session).get_pending(update_id)
            letters = await _dead_letters(session, [update_id])
        if stored is None:
            return
        self._queue_stored([stored], letters, retried_by)

    def _queue_stored(
        self,
        rows: Iterable[StoredUpdate],
        letters: dict[int, int | None],
        retried_by: int | None = None,
    ) -> int:
        queued = 0
        for row in rows:
            if row.update_id in self._active:
                continue
            try:
                update = self.parse(row.payload)
            except InvalidUpdate:
                logger.error("stored update %s is unreadable; dropped", row.update_id)
                self._forget_unreadable(row.update_id)
                continue
            dead = row.update_id in letters
            admin = (retried_by or letters[row.update_id]) if dead else None
            self._active.add(row.update_id)
            self._submit(
                Pending(update, row.received_at, row.attempts, dead_letter=dead, retried_by=admin)
            )
            queued += 1
        return queued

    def _forget_unreadable(self, update_id: int) -> None:
        async def settle() -> None:
            try:
                async with self.sessionmaker.begin() as session:
                    await ProcessedUpdateRepository(session).mark_handled(update_id, self.clock())
            except Exception as exc:
                logger.warning("update %s not settled: %s", update_id, type(exc).__name__)

        task = asyncio.create_task(settle())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ maintenance

    async def recover(self, *, left_by_last_run: bool = False) -> int:
        """Queue pending updates this instance is not working on: claimed long enough ago
        and never handled (a crash, a shutdown), or failed and overdue for their retry.
        ``left_by_last_run`` (the sole consumer's start-up): everything already due."""
        room = self.settings.max_pending - self._queues.size
        if room <= 0 or not self._accepting:
            return 0
        cutoff = self.clock()
        if not left_by_last_run:
            cutoff -= timedelta(seconds=self.settings.recover_after_s)
        async with self.sessionmaker.begin() as session:
            rows = await ProcessedUpdateRepository(session).pending(cutoff, room)
            rows = [row for row in rows if row.update_id not in self._active]
            letters = await _dead_letters(session, [row.update_id for row in rows])
        queued = self._queue_stored(rows, letters)
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
        first = self.sole_consumer
        while True:
            try:
                await self.recover(left_by_last_run=first)
                first = False
                if time.monotonic() >= next_prune:
                    await self.prune()
                    next_prune = time.monotonic() + PRUNE_INTERVAL_S
            except Exception as exc:
                logger.warning("inbox maintenance failed: %s", type(exc).__name__)
            await asyncio.sleep(interval)


async def _dead_letters(session: AsyncSession, update_ids: list[int]) -> dict[int, int | None]:
    """Which of these updates were put back from the dead letters, and by whom."""
    if not update_ids:
        return {}
    rows = await session.execute(
        select(DeadLetter.update_id, DeadLetter.retried_by).where(
            DeadLetter.update_id.in_(update_ids)
        )
    )
    return {update_id: retried_by for update_id, retried_by in rows}


def as_json(update: Update) -> str:
    """The update as Telegram's JSON (fields it sent, by their wire names)."""
    return update.model_dump_json(exclude_unset=True, by_alias=True)
