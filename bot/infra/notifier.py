"""Direct sends, and who blocked the bot.

Messages about a stored change never come through here: they are outbox rows, written
with the change and sent after its commit (bot/infra/outbox.py, bot/chat/tell.py). This is
the direct path for what tells of nothing stored (the /stats chart). A user who blocked
the bot (403) is marked blocked and skipped from then on; nothing else is lost. "Message
is not modified" on an edit is not an error. Marking happens in a background task, because
the caller may hold the only SQLite connection in its own transaction (see db/engine.py).

``BlockedUsers`` is that mechanism, shared with the send path (bot/infra/sending.py),
which consults it before every message and marks on every 403, whoever sent it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError
from aiogram.types import BufferedInputFile, InlineKeyboardMarkup, Message
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.infra.clock import Clock
from db.repositories.users import UserRepository

logger = logging.getLogger(__name__)


class BlockedUsers:
    """Users who blocked the bot: known in memory at once, stored in the background.

    A user who writes to the bot again is taken off the list (``discard``, called by the
    user middleware; the stored flag is cleared by ``ensure_user``).
    """

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self.sessionmaker = sessionmaker
        self.clock = clock
        self._ids: set[int] = set()
        self._background: set[asyncio.Task[None]] = set()

    def __contains__(self, chat_id: object) -> bool:
        return chat_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def mark(self, chat_id: int) -> None:
        if chat_id in self._ids:
            return
        self._ids.add(chat_id)
        logger.info("user %s blocked the bot; no more messages to them", chat_id)
        task = asyncio.create_task(self._store(chat_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def discard(self, chat_id: int) -> None:
        self._ids.discard(chat_id)

    async def _store(self, chat_id: int) -> None:
        async with self.sessionmaker.begin() as session:
            await UserRepository(session).set_blocked(chat_id, True, self.clock())

    async def drain(self) -> None:
        """Finish background writes (shutdown, tests)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)


class Notifier:
    def __init__(self, bot: Bot, blocked: BlockedUsers) -> None:
        self.bot = bot
        self.blocked = blocked

    async def send(
        self, chat_id: int, text: str, *, reply_markup: InlineKeyboardMarkup | None = None
    ) -> Message | None:
        """Send a message; None when the user blocked the bot."""
        return await self._deliver(
            chat_id, self.bot.send_message(chat_id=chat_id, text=text, reply_markup=reply_markup)
        )

    async def send_photo(
        self,
        chat_id: int,
        photo: BufferedInputFile,
        *,
        caption: str | None = None,
        reply_markup: InlineKeyboardMarkup | None = None,
    ) -> Message | None:
        return await self._deliver(
            chat_id,
            self.bot.send_photo(
                chat_id=chat_id, photo=photo, caption=caption, reply_markup=reply_markup
            ),
        )

    async def edit(
        self,
        chat_id: int,
        message_id: int,
        text: str,
        *,
        reply_markup: InlineKeyboardMarkup | None = None,
    ) -> bool:
        """Edit a message in place; True when it shows ``text`` afterwards."""
        try:
            await self.bot.edit_message_text(
                chat_id=chat_id, message_id=message_id, text=text, reply_markup=reply_markup
            )
        except TelegramBadRequest as exc:
            if "message is not modified" in exc.message:
                return True
            logger.warning("edit of %s/%s refused: %s", chat_id, message_id, exc.message)
            return False
        except TelegramForbiddenError:
            self.blocked.mark(chat_id)
            return False
        return True

    async def _deliver(self, chat_id: int, call: Any) -> Message | None:
        try:
            result: Message = await call
        except TelegramForbiddenError:
            self.blocked.mark(chat_id)
            return None
        return result

    async def drain(self) -> None:
        """Finish background writes (shutdown, tests)."""
        await self.blocked.drain()
