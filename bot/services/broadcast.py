"""One message to many chats, concurrently, through the one send path.

``concurrency`` workers take the next message each; the send path (bot/services/sending.py)
keeps the rates, waits out 429s and marks who blocked the bot. Each delivered message's id
is handed to ``record`` in batches, by one writer, while the broadcast goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from aiogram.exceptions import TelegramAPIError
from aiogram.types import InlineKeyboardMarkup

from bot.services.notifier import Notifier

logger = logging.getLogger(__name__)

Recorder = Callable[[list[tuple[int, int]]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message for ``chat_id``; ``key`` names it for the caller (an approval id)."""

    key: int
    chat_id: int
    text: str
    reply_markup: InlineKeyboardMarkup | None = None


@dataclass(slots=True)
class BroadcastResult:
    delivered: dict[int, int] = field(default_factory=dict)
    """key → Telegram message id"""
    blocked: list[int] = field(default_factory=list)
    """keys whose user blocked the bot"""
    failed: list[int] = field(default_factory=list)
    """keys Telegram refused for another reason (logged)"""


async def broadcast(
    notifier: Notifier,
    items: Sequence[Outgoing],
    *,
    concurrency: int,
    record: Recorder | None = None,
    record_batch: int = 500,
) -> BroadcastResult:
    result = BroadcastResult()
    queue: asyncio.Queue[tuple[int, int] | None] = asyncio.Queue()
    pending = iter(items)

    async def worker() -> None:
        for item in pending:
            try:
                message = await notifier.send(
                    item.chat_id, item.text, reply_markup=item.reply_markup
                )
            except TelegramAPIError as exc:
                logger.warning("broadcast to %s refused: %s", item.chat_id, exc.message)
                result.failed.append(item.key)
                continue
            if message is None:
                result.blocked.append(item.key)
                continue
            result.delivered[item.key] = message.message_id
            queue.put_nowait((item.key, message.message_id))

    async def recorder() -> None:
        done = False
        while not done:
            first = await queue.get()
            batch: list[tuple[int, int]] = []
            if first is None:
                done = True
            else:
                batch.append(first)
            while not done and len(batch) < record_batch and not queue.empty():
                entry = queue.get_nowait()
                if entry is None:
                    done = True
                else:
                    batch.append(entry)
            if batch and record is not None:
                try:
                    await record(batch)
                except Exception:
                    logger.exception("recording %d message ids failed", len(batch))

    writer = asyncio.create_task(recorder())
    try:
        await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(items))))))
    finally:
        queue.put_nowait(None)
        await writer
    return result
