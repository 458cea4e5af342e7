"""The outbox: every message the product owes a user, stored before it is sent.

``Outbox`` queues messages in the caller's transaction: a row in ``outbox`` per message,
so a message exists only if the change it tells about committed, and survives a
restart, a Telegram outage or a second instance. After the commit the worker is woken.

``OutboxWorker`` leases due rows (one UPDATE per batch, so two instances never send one
row), sends them through the bot (and so through the one send path, bot/infra/sending.py,
which keeps the rates), a chat's rows in order, chats side by side, and stores what it
learned right after Telegram's answer, whatever is waiting in one transaction:

- accepted: ``sent`` (with the message id; an approval's first message id goes on the
  approval too, so later edits find it);
- no connection, a 5xx, a 429 the send path gave up on, anything unexpected: tried again
  with exponential backoff (``outbox.retry_*``) until ``not_after`` (a signal's message
  until the signal ends, anything else ``outbox.notice_ttl_hours``), then ``expired``;
- the user blocked the bot: ``blocked`` (the send path marks them); Telegram refused the
  message itself (400): ``failed``, logged.

Signal messages (``approval`` and ``refresh`` rows) are rendered when they are sent, from
what is stored then, so a message always shows the latest state; pending refreshes of one
message are one row (``dedupe_key``), and one message is edited at most once per
``signals.edit_interval_seconds``. Notices (``notice`` rows: a code and its params as JSON
in ``text``, bot/domain/notices.py) are worded when they are sent too, in the recipient's
language, by the chat layer's renderer. docs/operations.md says what can and cannot repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import random
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from itertools import count
from typing import Any

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramRetryAfter,
)
from aiogram.types import InlineKeyboardMarkup, Message
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.infra.clock import Clock
from db.hooks import after_commit
from db.models import Approval
from db.repositories.outbox import (
    BLOCKED,
    EXPIRED,
    FAILED,
    Ended,
    NewMessage,
    OutboxRepository,
    OutboxRow,
    Outcome,
    Retry,
    Sent,
)

logger = logging.getLogger(__name__)

MESSAGE = "message"
EDIT = "edit"
APPROVAL = "approval"
REFRESH = "refresh"
NOTICE = "notice"
NOT_MODIFIED = "message is not modified"
# At shutdown a message already on its way to Telegram gets this long for the answer.
ANSWER_GRACE_S = 0.5
# Sent and ended rows older than outbox.retention_days are deleted this often.
PRUNE_INTERVAL_S = 3600.0


@dataclass(frozen=True, slots=True)
class ApprovalView:
    """What a signal's message for one approval shows now, and where it is."""

    chat_id: int
    message_id: int | None
    text: str
    reply_markup: InlineKeyboardMarkup | None
    ended_unseen: bool = False
    """The signal ended before the user had anything to do with it: a first message now
    would only say so."""


ApprovalRenderer = Callable[[Sequence[int]], Awaitable[Mapping[int, ApprovalView]]]
# Notice rows → (text, buttons) by row id, worded in each recipient's language.
NoticeRenderer = Callable[
    [Sequence[OutboxRow]], Awaitable[Mapping[int, tuple[str, InlineKeyboardMarkup | None]]]
]


def _markup_json(markup: InlineKeyboardMarkup | None) -> dict[str, Any] | None:
    return None if markup is None else markup.model_dump(mode="json", exclude_none=True)


def _markup(stored: dict[str, Any] | None) -> InlineKeyboardMarkup | None:
    return None if stored is None else InlineKeyboardMarkup.model_validate(stored)


def refresh_key(approval_id: int) -> str:
    """Pending refreshes of one approval's message are one row."""
    return f"{REFRESH}:{approval_id}"


def _refresh(approval_id: int, user_id: int) -> NewMessage:
    return NewMessage(
        user_id, REFRESH, approval_id=approval_id, dedupe_key=refresh_key(approval_id)
    )


def _notice(chat_id: int, code: str, params: Mapping[str, Any]) -> NewMessage:
    return NewMessage(chat_id, NOTICE, json.dumps({"code": code, "params": params}))


class Outbox:
    """Queues messages inside the caller's transaction; they go out after its commit."""

    def __init__(self, settings: Settings, clock: Clock, wake: Callable[[], None]) -> None:
        self.settings = settings
        self.clock = clock
        self._wake = wake

    async def _add(
        self,
        session: AsyncSession,
        messages: Sequence[NewMessage],
        now: datetime,
        not_after: datetime | None = None,
    ) -> None:
        """Queue ``messages``, due ``now``, worth sending until ``not_after`` (else the
        notice TTL); the worker is woken after the commit."""
        if messages:
            ttl = now + timedelta(hours=self.settings.outbox.notice_ttl_hours)
            await OutboxRepository(session).add(messages, now=now, not_after=not_after or ttl)
            after_commit(session, self._wake)

    async def send(
        self,
        session: AsyncSession,
        chat_id: int,
        text: str,
        *,
        reply_markup: InlineKeyboardMarkup | None = None,
        not_after: datetime | None = None,
    ) -> None:
        """A message to ``chat_id`` once the session's transaction commits."""
        message = NewMessage(chat_id, MESSAGE, text, reply_markup=_markup_json(reply_markup))
        await self._add(session, [message], self.clock(), not_after)

    async def send_many(self, session: AsyncSession, messages: Iterable[tuple[int, str]]) -> None:
        """The same as ``send`` for several (chat id, text) pairs, in one statement."""
        queued = [NewMessage(chat_id, MESSAGE, text) for chat_id, text in messages]
        await self._add(session, queued, self.clock())

    async def notice(
        self, session: AsyncSession, chat_id: int, code: str, params: Mapping[str, Any]
    ) -> None:
        """A notice (a code and its JSON params) to ``chat_id``, worded when it is sent."""
        await self.notice_many(session, [(chat_id, code, params)])

    async def notice_many(
        self, session: AsyncSession, notices: Iterable[tuple[int, str, Mapping[str, Any]]]
    ) -> None:
        """Several (chat id, code, params) notices, in one statement."""
        await self._add(session, [_notice(*notice) for notice in notices], self.clock())

    async def edit(
        self,
        session: AsyncSession,
        chat_id: int,
        message_id: int,
        text: str,
        *,
        reply_markup: InlineKeyboardMarkup | None = None,
    ) -> None:
        """Edit one of the bot's messages once the session's transaction commits."""
        message = NewMessage(
            chat_id, EDIT, text, reply_markup=_markup_json(reply_markup), message_id=message_id
        )
        await self._add(session, [message], self.clock())

    async def announce(self, session: AsyncSession, signal_id: int, not_after: datetime) -> None:
        """A signal's message for each of its approvals, rendered when sent; worth
        sending until ``not_after`` (the signal's end). One statement, however many
        recipients: the rows are made from the approvals in the database."""
        if await OutboxRepository(session).add_for_approvals(
            signal_id, APPROVAL, self.clock(), not_after
        ):
            after_commit(session, self._wake)

    async def refresh(self, session: AsyncSession, approval_ids: Iterable[int]) -> None:
        """These approvals' messages must show what is stored now (after the commit)."""
        ids = sorted(set(approval_ids))
        if not ids:
            return
        query = select(Approval.id, Approval.user_id).where(Approval.id.in_(ids))
        refreshes = [
            _refresh(approval_id, user_id)
            for approval_id, user_id in (await session.execute(query)).all()
        ]
        await self._add(session, refreshes, self.clock())

    async def refresh_and_notice(
        self,
        session: AsyncSession,
        approvals: Iterable[tuple[int, int]],
        notices: Iterable[tuple[int, str, Mapping[str, Any]]],
    ) -> None:
        """The refreshes of these (approval id, user id) messages and these (chat id,
        code, params) notices, in one statement: what a batch of device reports tells."""
        messages = [
            _refresh(approval_id, user_id) for approval_id, user_id in sorted(set(approvals))
        ]
        messages += [_notice(*notice) for notice in notices]
        await self._add(session, messages, self.clock())

    async def refresh_signal(self, session: AsyncSession, signal_id: int) -> None:
        """Every message of the signal must show what is stored now (after the commit)."""
        query = select(Approval.id).where(Approval.signal_id == signal_id)
        await self.refresh(session, await session.scalars(query))


class OutboxWorker:
    """Sends the outbox (see the module docstring). One per process."""

    def __init__(
        self,
        bot: Bot,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        clock: Clock,
        *,
        shared: bool,
    ) -> None:
        self.bot = bot
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.clock = clock
        # Several instances share the database: leases of others must be waited out.
        self.shared = shared
        self.render_approvals: ApprovalRenderer | None = None
        self.render_notices: NoticeRenderer | None = None
        self.instance = secrets.token_hex(6)
        self._claims = count(1)
        self._concurrency = max(1, settings.sending.broadcast_concurrency)
        # Chats claimed and not done yet, waiting in order; up to ``_concurrency`` runners
        # take them one after another (a task per runner, not per chat: a broadcast is
        # thousands of one-message chats).
        self._chats: deque[tuple[list[OutboxRow], Mapping[int, ApprovalView]]] = deque()
        self._open_chats = 0
        self._runners: set[asyncio.Task[None]] = set()
        self._wakes = 0
        self._settled = 0
        self._idle_at = -1
        self._wake_event = asyncio.Event()
        self._idle = asyncio.Condition()
        self._loop_task: asyncio.Task[None] | None = None
        self._outcomes: list[Outcome] = []
        self._settler: asyncio.Task[None] | None = None
        self._last_edit: dict[int, float] = {}
        self._closing = False
        self._started = False
        self.sent = 0

    # ------------------------------------------------------------------ life cycle

    def wake(self) -> None:
        """New rows were committed: look at once (starts the worker on first use)."""
        self._wakes += 1
        self._wake_event.set()
        if self._closing:
            return
        if self._loop_task is None or self._loop_task.done():
            # A context of its own: not the update's that happened to commit first.
            self._loop_task = asyncio.get_running_loop().create_task(
                self._run(), context=contextvars.Context()
            )

    async def start(self) -> None:
        """Take up what a previous run left: its leases, when nothing else shares them."""
        if not self.shared and not self._started:
            async with self.sessionmaker.begin() as session:
                released = await OutboxRepository(session).release(None)
            if released:
                logger.info("outbox: %d messages of the previous run taken up again", released)
        self._started = True
        self.wake()

    async def drain(self) -> None:
        """Wait until nothing is due, in flight or waiting to be stored (tests, shutdown)."""
        self.wake()
        target = self._wakes
        async with self._idle:
            await self._idle.wait_for(
                lambda: self._idle_at >= target or self._loop_task is None or self._loop_task.done()
            )
        if self._loop_task is not None and self._loop_task.done() and not self._closing:
            self._loop_task.result()  # the loop died: say why

    async def close(self, within: float, *, grace: float = ANSWER_GRACE_S) -> int:
        """Send what is due for up to ``within`` s; then take no more rows, give sends
        under way ``grace`` s for Telegram's answer, store what was learned and give back
        the leases of rows not sent (the next run sends them). Returns how many sends were
        cut (tried again later: each may have reached Telegram)."""
        if within > 0 and not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.drain(), within)
        self._closing = True
        self._wake_event.set()
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        cut = 0
        self._drop_waiting_chats()  # not started: their leases are given back below
        if self._runners:
            _, late = await asyncio.wait(set(self._runners), timeout=max(0.0, grace))
            cut = len(late)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self._settler is not None:
            # A settle under way finishes its transaction before the engine may go away.
            await asyncio.gather(self._settler, return_exceptions=True)
        await self._settle_now()
        try:
            async with self.sessionmaker.begin() as session:
                await OutboxRepository(session).release(self.instance)
        except Exception as exc:
            logger.warning("outbox leases not given back (they expire): %s", type(exc).__name__)
        return cut

    async def abandon(self) -> None:
        """Stop dead, as a killed process would: nothing stored, no lease given back."""
        self._closing = True
        self._wake_event.set()
        self._drop_waiting_chats()
        runners = list(self._runners)
        for task in runners:
            task.cancel()  # mid-send: Telegram's answers are never heard
        self._outcomes.clear()
        # The loop and a settle under way end on their own (no half-used connection left).
        pending = [t for t in (self._loop_task, self._settler) if t is not None]
        await asyncio.gather(*runners, *pending, return_exceptions=True)

    # ------------------------------------------------------------------ the loop

    async def _run(self) -> None:
        try:
            await self._work()
        finally:
            # Whoever drains must not wait for a loop that has ended.
            async with self._idle:
                self._idle.notify_all()

    async def _work(self) -> None:
        poll = self.settings.outbox.poll_seconds
        next_prune = 0.0
        while not self._closing:
            if asyncio.get_running_loop().time() >= next_prune:
                await self._prune()
                next_prune = asyncio.get_running_loop().time() + PRUNE_INTERVAL_S
            seen, settled = self._wakes, self._settled
            self._wake_event.clear()
            batch = self.settings.outbox.batch_size
            room = batch - self._open_chats
            rows: list[OutboxRow] = []
            # Refilled in bulk, once half the batch is done: a claim and a render per
            # finished chat would cost more than the sends themselves.
            if room > 0 and self._open_chats <= batch // 2:
                try:
                    rows = await self._claim(room)
                except Exception as exc:
                    logger.warning("outbox: claim failed (%s); retrying", type(exc).__name__)
                    await asyncio.sleep(poll)
                    continue
            if rows:
                await self._start_chains(rows)
                continue
            # Idle only if nothing was stored while the claim ran: a row it found held by
            # an earlier one of its chat may have become free meanwhile.
            quiet = settled == self._settled and not self._settling()
            if quiet and not self._open_chats and not self._outcomes:
                async with self._idle:
                    self._idle_at = seen
                    self._idle.notify_all()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_event.wait(), poll)

    async def _prune(self) -> None:
        cutoff = self.clock() - timedelta(days=self.settings.outbox.retention_days)
        try:
            async with self.sessionmaker.begin() as session:
                removed = await OutboxRepository(session).prune(cutoff)
        except Exception as exc:
            logger.warning("outbox: pruning failed (%s); next hour", type(exc).__name__)
            return
        if removed:
            logger.info("outbox: forgot %d sent or ended messages", removed)

    def _settling(self) -> bool:
        return self._settler is not None and not self._settler.done()

    async def _claim(self, limit: int) -> list[OutboxRow]:
        now = self.clock()
        owner = f"{self.instance}:{next(self._claims)}"
        until = now + timedelta(seconds=self.settings.outbox.lease_seconds)
        async with self.sessionmaker.begin() as session:
            return await OutboxRepository(session).claim(owner, now, until, limit)

    async def _start_chains(self, rows: list[OutboxRow]) -> None:
        views: Mapping[int, ApprovalView] = {}
        approval_ids = [r.approval_id for r in rows if r.approval_id is not None]
        if approval_ids and self.render_approvals is not None:
            try:
                views = await self.render_approvals(approval_ids)
            except Exception:
                logger.exception("outbox: rendering %d signal messages failed", len(approval_ids))
                now = self.clock()
                for row in rows:
                    self._store(self._retry(row, now, "render failed"))
                return
        notices = [r for r in rows if r.kind == NOTICE]
        if notices and self.render_notices is not None:
            try:
                worded = await self.render_notices(notices)
            except Exception:
                logger.exception("outbox: rendering %d notices failed", len(notices))
                now = self.clock()
                for row in rows:
                    self._store(self._retry(row, now, "render failed"))
                return
            # Worded, a notice is sent like any message (one the renderer could not word
            # stays a notice, tried again until it expires).
            rows = [_worded(r, worded.get(r.id)) for r in rows]
        by_chat: dict[int, list[OutboxRow]] = {}
        for row in rows:
            by_chat.setdefault(row.chat_id, []).append(row)
        self._chats.extend((chat_rows, views) for chat_rows in by_chat.values())
        self._open_chats += len(by_chat)
        for _ in range(min(self._concurrency - len(self._runners), len(self._chats))):
            task = asyncio.create_task(self._run_chats())
            self._runners.add(task)
            task.add_done_callback(self._runners.discard)

    def _drop_waiting_chats(self) -> None:
        self._open_chats -= len(self._chats)
        self._chats.clear()

    async def _run_chats(self) -> None:
        """One runner: claimed chats, one after another, until none is waiting."""
        refill_at = self.settings.outbox.batch_size // 2
        while self._chats and not self._closing:
            rows, views = self._chats.popleft()
            try:
                await self._chain(rows, views)
            finally:
                self._open_chats -= 1
                # The loop refills once half the batch is done, and idles when all is.
                if self._open_chats <= refill_at:
                    self._wake_event.set()

    async def _chain(
        self,
        rows: list[OutboxRow],
        views: Mapping[int, ApprovalView],
    ) -> None:
        """One chat's rows, in order; a row put off puts off the ones after it."""
        held: datetime | None = None
        # Signal messages this chain sent: they show what its later refreshes would.
        shown: set[int] = set()
        for row in rows:
            if self._closing:
                return  # shutting down: the rest stay queued (close gives them back)
            if held is not None:
                self._store(Retry(row.id, held, "after an earlier message", counts=False))
                continue
            if row.kind == REFRESH and row.approval_id in shown:
                self._store(Sent(row.id, self.clock(), None))
                continue
            outcome = await self._deliver(row, views)
            self._store(outcome)
            if isinstance(outcome, Retry):
                held = outcome.at
            elif isinstance(outcome, Sent) and row.approval_id is not None:
                shown.add(row.approval_id)

    def _retry(
        self, row: OutboxRow, now: datetime, error: str, *, at: datetime | None = None
    ) -> Outcome:
        if at is None:
            base = self.settings.outbox.retry_base_seconds
            delay = min(self.settings.outbox.retry_max_seconds, base * 2 ** min(row.attempts, 30))
            at = now + timedelta(seconds=delay * random.uniform(0.8, 1.2))  # noqa: S311
        if at > row.not_after:
            return Ended(row.id, EXPIRED, error)
        return Retry(row.id, at, error)

    async def _deliver(self, row: OutboxRow, views: Mapping[int, ApprovalView]) -> Outcome:
        now = self.clock()
        if now > row.not_after:
            return Ended(row.id, EXPIRED, "no longer worth sending")
        view = views.get(row.approval_id) if row.approval_id is not None else None
        if row.kind in (APPROVAL, REFRESH) and view is None:
            return Ended(row.id, FAILED, "the signal's message is gone")
        if row.kind == APPROVAL and view is not None and view.ended_unseen:
            return Ended(row.id, EXPIRED, "the signal ended before its message went out")
        if row.kind == REFRESH:
            assert view is not None and row.approval_id is not None
            if view.message_id is None:
                # A refresh is claimed only after its chat's earlier rows are done, so the
                # first message was sent (its id stored with that outcome) or given up.
                return Ended(row.id, FAILED, "the signal's message was never delivered")
            interval = self.settings.signals.edit_interval_seconds
            last = self._last_edit.get(row.approval_id)
            loop_now = asyncio.get_running_loop().time()
            if last is not None and loop_now - last < interval:
                at = now + timedelta(seconds=interval - (loop_now - last))
                return Retry(row.id, at, "edited a moment ago", counts=False)
        try:
            message_id = await self._call(row, view)
        except TelegramForbiddenError:
            return Ended(row.id, BLOCKED, "the user blocked the bot")
        except TelegramRetryAfter as exc:
            return self._retry(row, now, "429", at=now + timedelta(seconds=exc.retry_after))
        except TelegramBadRequest as exc:
            if NOT_MODIFIED in exc.message:
                return Sent(row.id, now, row.message_id)
            logger.warning(
                "outbox: %s %s to %s refused: %s", row.kind, row.id, row.chat_id, exc.message
            )
            return Ended(row.id, FAILED, exc.message)
        except TelegramAPIError as exc:
            logger.info(
                "outbox: %s %s to %s not sent (%s); retrying",
                row.kind,
                row.id,
                row.chat_id,
                type(exc).__name__,
            )
            return self._retry(row, now, f"{type(exc).__name__}: {exc.message}")
        except Exception as exc:
            logger.exception("outbox: %s %s to %s failed", row.kind, row.id, row.chat_id)
            return self._retry(row, now, type(exc).__name__)
        self.sent += 1
        if row.kind == REFRESH and row.approval_id is not None:
            self._last_edit[row.approval_id] = asyncio.get_running_loop().time()
            if len(self._last_edit) > 10_000:
                self._forget_old_edits()
        first = row.approval_id if row.kind == APPROVAL else None
        return Sent(row.id, self.clock(), message_id, approval_id=first)

    async def _call(self, row: OutboxRow, view: ApprovalView | None) -> int | None:
        if row.kind == MESSAGE:
            sent: Message = await self.bot.send_message(
                chat_id=row.chat_id, text=row.text or "", reply_markup=_markup(row.reply_markup)
            )
            return sent.message_id
        if row.kind == EDIT:
            assert row.message_id is not None
            await self.bot.edit_message_text(
                chat_id=row.chat_id,
                message_id=row.message_id,
                text=row.text or "",
                reply_markup=_markup(row.reply_markup),
            )
            return row.message_id
        assert view is not None
        if row.kind == APPROVAL:
            sent = await self.bot.send_message(
                chat_id=view.chat_id, text=view.text, reply_markup=view.reply_markup
            )
            return sent.message_id
        assert view.message_id is not None
        await self.bot.edit_message_text(
            chat_id=view.chat_id,
            message_id=view.message_id,
            text=view.text,
            reply_markup=view.reply_markup,
        )
        return view.message_id

    def _forget_old_edits(self) -> None:
        horizon = asyncio.get_running_loop().time() - self.settings.signals.edit_interval_seconds
        for key in [k for k, at in self._last_edit.items() if at < horizon]:
            del self._last_edit[key]

    # ------------------------------------------------------------------ storing outcomes

    def _store(self, outcome: Outcome) -> None:
        """What a send learned is stored at once: whatever is waiting, in one commit."""
        self._outcomes.append(outcome)
        if not self._settling():
            self._settler = asyncio.create_task(self._settle_loop())

    async def _settle_loop(self) -> None:
        while self._outcomes:
            await self._settle_now()
        self._wake_event.set()

    async def _settle_now(self) -> None:
        if not self._outcomes:
            return
        batch, self._outcomes = self._outcomes, []
        for attempt in range(5):
            try:
                async with self.sessionmaker.begin() as session:
                    await OutboxRepository(session).settle(batch)
                self._settled += 1
                return
            except Exception as exc:
                logger.warning(
                    "outbox: storing %d outcomes failed (%s), attempt %d",
                    len(batch),
                    type(exc).__name__,
                    attempt + 1,
                )
                await asyncio.sleep(0.05 * 2**attempt)
        # Their leases run out and they are sent again: a repeat, never a loss.
        logger.error("outbox: %d outcomes not stored; those messages may repeat", len(batch))


def _worded(row: OutboxRow, worded: tuple[str, InlineKeyboardMarkup | None] | None) -> OutboxRow:
    if row.kind != NOTICE or worded is None:
        return row
    text, markup = worded
    return replace(row, kind=MESSAGE, text=text, reply_markup=_markup_json(markup))
