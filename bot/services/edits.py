"""Coalesced edits of chat messages: a burst of changes makes few edits.

``touch(keys)`` says "these messages may show something new". Each key (an approval id:
one chat message) is edited at most once per ``interval`` seconds; touches while a key
waits or while its edit is under way are merged into its next edit. What an edit shows is
rendered when the edit is made, in one batch for every key due at that moment, so the
latest stored state always wins, however the touches interleaved.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from aiogram.types import InlineKeyboardMarkup

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EditContent:
    chat_id: int
    message_id: int
    text: str
    reply_markup: InlineKeyboardMarkup | None = None


Renderer = Callable[[Sequence[int]], Awaitable[Mapping[int, EditContent]]]
Editor = Callable[[EditContent], Awaitable[object]]


class EditScheduler:
    def __init__(
        self,
        render: Renderer,
        edit: Editor,
        *,
        interval: float,
        batch_size: int = 500,
    ) -> None:
        self._render = render
        self._edit = edit
        self.interval = interval
        self.batch_size = batch_size
        self._dirty: dict[int, None] = {}
        self._in_flight: set[int] = set()
        self._last_edit: dict[int, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._worker: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.edits_made = 0

    @property
    def pending(self) -> int:
        """Messages waiting for an edit or being edited."""
        return len(self._dirty.keys() | self._in_flight)

    def touch(self, keys: Iterable[int]) -> None:
        for key in keys:
            self._dirty[key] = None
        if not self._dirty:
            return
        self._wake.set()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run())

    async def drain(self) -> None:
        """Wait until every touched message has been edited (shutdown, tests)."""
        while (self._worker is not None and not self._worker.done()) or self._tasks:
            if self._worker is not None and not self._worker.done():
                await asyncio.wait({self._worker})
            if self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Stop without making the edits still waiting."""
        self._dirty.clear()
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._dirty:
            now = loop.time()
            due: list[int] = []
            next_due: float | None = None
            for key in self._dirty:
                if key in self._in_flight:
                    continue
                ready_at = self._last_edit.get(key, now - self.interval) + self.interval
                if ready_at <= now:
                    due.append(key)
                    if len(due) >= self.batch_size:
                        break
                elif next_due is None or ready_at < next_due:
                    next_due = ready_at
            if not due:
                self._wake.clear()
                timeout = None if next_due is None else max(next_due - now, 0)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
                continue
            for key in due:
                del self._dirty[key]
                self._in_flight.add(key)
                self._last_edit[key] = now
            try:
                contents = await self._render(due)
            except Exception:
                logger.exception("rendering %d message edits failed", len(due))
                contents = {}
            for key in due:
                content = contents.get(key)
                if content is None:
                    self._in_flight.discard(key)
                    continue
                task = asyncio.create_task(self._apply(key, content))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        self._forget_old(loop.time())

    async def _apply(self, key: int, content: EditContent) -> None:
        try:
            await self._edit(content)
            self.edits_made += 1
        except Exception:
            logger.exception("edit of %s/%s failed", content.chat_id, content.message_id)
        finally:
            self._in_flight.discard(key)
            self._wake.set()

    def _forget_old(self, now: float) -> None:
        for key in [k for k, at in self._last_edit.items() if at + self.interval <= now]:
            del self._last_edit[key]
