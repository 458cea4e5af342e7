"""The Telegram side of signals: the broadcast of a new signal and the edits that follow.

``announce`` sends each recipient their message (in the background, through the one send
path) and stores each message id on its approval. ``refresh`` / ``refresh_approvals`` mark
messages as outdated; the edit scheduler re-renders them from the database and edits them,
coalescing bursts. A change that arrives while the broadcast still runs is shown on every
message that broadcast delivered, once it has finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.services.broadcast import BroadcastResult, Outgoing, broadcast
from bot.services.edits import EditContent, EditScheduler
from bot.services.notifier import Notifier
from bot.services.signal_dto import ApprovalDTO, DeviceLine, SignalDTO
from bot.services.signal_messages import render_approval_message
from db.repositories.signals import SignalRepository

logger = logging.getLogger(__name__)

# (user id, signal id) → that user's devices on that signal, latest state each.
DeviceLinesLoader = Callable[
    [AsyncSession, Sequence[tuple[int, int]]],
    Awaitable[Mapping[tuple[int, int], Sequence[DeviceLine]]],
]


class SignalPublisher:
    def __init__(
        self,
        notifier: Notifier,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        *,
        device_lines: DeviceLinesLoader | None = None,
    ) -> None:
        self.notifier = notifier
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.device_lines = device_lines
        self.edits = EditScheduler(
            self.render_edits, self._edit, interval=settings.signals.edit_interval_seconds
        )
        self._tasks: set[asyncio.Task[BroadcastResult]] = set()
        # Look-ups of a changed signal's delivered messages (refresh_signal).
        self._lookups: set[asyncio.Task[Any]] = set()
        # Signals being broadcast → whether they changed meanwhile.
        self._broadcasting: dict[int, bool] = {}

    # ------------------------------------------------------------------ new signals

    def announce(self, signal: SignalDTO, approvals: Sequence[ApprovalDTO]) -> None:
        """Start the broadcast of a stored signal (called after its commit)."""
        task = asyncio.create_task(self.broadcast_signal(signal, approvals))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def broadcast_signal(
        self, signal: SignalDTO, approvals: Sequence[ApprovalDTO]
    ) -> BroadcastResult:
        items = []
        for approval in approvals:
            rendered = render_approval_message(signal, approval)
            items.append(
                Outgoing(approval.id, approval.user_id, rendered.text, rendered.reply_markup)
            )
        self._broadcasting[signal.id] = False
        try:
            result = await broadcast(
                self.notifier,
                items,
                concurrency=self.settings.sending.broadcast_concurrency,
                record=self._record_message_ids,
            )
        finally:
            changed = self._broadcasting.pop(signal.id, False)
        if changed:
            self.edits.touch(result.delivered)
        logger.info(
            "signal %s delivered to %d, %d blocked the bot, %d refused",
            signal.public_id,
            len(result.delivered),
            len(result.blocked),
            len(result.failed),
        )
        return result

    async def _record_message_ids(self, pairs: list[tuple[int, int]]) -> None:
        async with self.sessionmaker.begin() as session:
            await SignalRepository(session).set_message_ids(pairs)

    # ------------------------------------------------------------------ edits

    def refresh(self, signal_id: int, approval_ids: Iterable[int]) -> None:
        """The signal or some of its approvals changed: update those messages."""
        if signal_id in self._broadcasting:
            self._broadcasting[signal_id] = True
        self.edits.touch(approval_ids)

    def refresh_signal(self, signal_id: int) -> None:
        """The signal changed (after its commit): update every message delivered for it.

        The messages are looked up now, after the commit, so one whose id a broadcast
        recorded while the change was being stored is not missed.
        """
        if signal_id in self._broadcasting:
            # The broadcast edits every message it delivered once it has finished.
            self._broadcasting[signal_id] = True
            return
        task = asyncio.create_task(self._refresh_delivered(signal_id))
        self._lookups.add(task)
        task.add_done_callback(self._lookups.discard)

    async def _refresh_delivered(self, signal_id: int) -> None:
        async with self.sessionmaker() as session:
            ids = await SignalRepository(session).message_approval_ids(signal_id)
        self.edits.touch(ids)

    def refresh_approvals(self, approval_ids: Iterable[int]) -> None:
        self.edits.touch(approval_ids)

    async def render_edits(self, approval_ids: Sequence[int]) -> dict[int, EditContent]:
        """What each approval's message must show now (messages not delivered are left out)."""
        async with self.sessionmaker.begin() as session:
            rows = await SignalRepository(session).with_signals(approval_ids)
            rows = [(a, s) for a, s in rows if a.message_id is not None]
            devices: Mapping[tuple[int, int], Sequence[DeviceLine]] = {}
            if self.device_lines is not None and rows:
                devices = await self.device_lines(
                    session, [(a.user_id, a.signal_id) for a, _ in rows]
                )
        contents: dict[int, EditContent] = {}
        for approval, signal in rows:
            assert approval.message_id is not None
            rendered = render_approval_message(
                SignalDTO.from_model(signal),
                ApprovalDTO.from_model(approval),
                devices.get((approval.user_id, approval.signal_id), ()),
            )
            contents[approval.id] = EditContent(
                approval.user_id, approval.message_id, rendered.text, rendered.reply_markup
            )
        return contents

    async def _edit(self, content: EditContent) -> None:
        await self.notifier.edit(
            content.chat_id, content.message_id, content.text, reply_markup=content.reply_markup
        )

    # ------------------------------------------------------------------ lifecycle

    @property
    def broadcasts_running(self) -> int:
        return len(self._tasks)

    async def close(self, within: float) -> int:
        """Shutdown: let broadcasts and edits finish for up to ``within`` s, then stop them.

        Returns how many broadcasts were cut short (their remaining recipients were not sent
        the signal; the approvals stay pending until the signal expires).
        """
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.drain(), within)
        cut = [task for task in self._tasks if not task.done()]
        lookups = [task for task in self._lookups if not task.done()]
        for task in (*cut, *lookups):
            task.cancel()
        await asyncio.gather(*cut, *lookups, return_exceptions=True)
        await self.edits.close()
        await self.notifier.drain()
        return len(cut)

    async def drain(self) -> None:
        """Finish broadcasts and edits under way (shutdown, tests)."""
        while self._tasks or self._lookups or self.edits.pending:
            if self._tasks or self._lookups:
                await asyncio.gather(*self._tasks, *self._lookups, return_exceptions=True)
            await self.edits.drain()
        await self.notifier.drain()
