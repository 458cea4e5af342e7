"""Stored before told: what an update says about its writes goes out after their commit.

One ``Tell`` per dispatcher, injected into handlers by name (``tell``); every method takes
the update's session:

- ``send``: a message owed to someone: a row in the outbox, written in the update's
  transaction and sent after its commit, durable across restarts and outages
  (bot/infra/outbox.py). ``notice`` is the same for a message to someone else (an admin,
  a referrer, the user of a payout): a code and its values, worded when it is sent, in
  the recipient's language (bot/domain/notices.py, bot/chat/notices.py).
- ``reply`` / ``edit`` / ``show``: the answer in the update's own chat. While the
  transaction holds writes it is an outbox row like ``send``, so it leaves only if they
  commit; after reads only it goes at once, as there is nothing to wait for.
- ``later``: a Bot API call not worth storing (a callback answer; a message carrying a
  device's secret, which must never be written to the database), made once the
  transaction commits and dropped if it rolls back.

A direct call to Telegram while the transaction holds writes is refused
(db/update_session.py, ``TellBeforeCommitError``), so nothing can be told too early.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.notices import NoticeCode
from bot.infra.outbox import NOT_MODIFIED, Outbox
from db.hooks import after_commit
from db.update_session import holds_writes

logger = logging.getLogger(__name__)

Call = Callable[[], Awaitable[object]]


class Tell:
    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self._later: set[asyncio.Task[None]] = set()

    async def send(
        self,
        session: AsyncSession,
        chat_id: int,
        text: str,
        *,
        reply_markup: InlineKeyboardMarkup | None = None,
    ) -> None:
        """A message to ``chat_id`` once the session's transaction commits (durable)."""
        await self.outbox.send(session, chat_id, text, reply_markup=reply_markup)

    async def send_many(self, session: AsyncSession, messages: Iterable[tuple[int, str]]) -> None:
        """``send`` for several (chat id, text) pairs, in one statement."""
        await self.outbox.send_many(session, messages)

    async def notice(
        self, session: AsyncSession, chat_id: int, code: NoticeCode, **params: Any
    ) -> None:
        """A notice to ``chat_id`` once the session's transaction commits (durable)."""
        await self.outbox.notice(session, chat_id, code, params)

    async def notice_many(
        self, session: AsyncSession, notices: Iterable[tuple[int, NoticeCode, Mapping[str, Any]]]
    ) -> None:
        """``notice`` for several (chat id, code, params), in one statement."""
        await self.outbox.notice_many(session, notices)

    async def reply(
        self,
        session: AsyncSession,
        to: Message | CallbackQuery,
        text: str,
        reply_markup: InlineKeyboardMarkup | None = None,
    ) -> None:
        """A message into the chat of ``to`` (a message, or a pressed button: the presser's
        chat): after the commit when the transaction holds writes, at once otherwise."""
        chat_id = to.chat.id if isinstance(to, Message) else to.from_user.id
        if holds_writes(session):
            await self.outbox.send(session, chat_id, text, reply_markup=reply_markup)
        elif isinstance(to, Message):
            await to.answer(text, reply_markup=reply_markup)
        elif to.bot is not None:
            await to.bot.send_message(chat_id, text, reply_markup=reply_markup)

    async def edit(
        self,
        session: AsyncSession,
        message: Message,
        text: str,
        reply_markup: InlineKeyboardMarkup | None = None,
    ) -> None:
        """Edit one of the bot's messages, by the rule of ``reply``. "Not modified" is no
        error; another refusal (too old, gone) is logged, as the outbox does."""
        if holds_writes(session):
            await self.outbox.edit(
                session, message.chat.id, message.message_id, text, reply_markup=reply_markup
            )
            return
        try:
            await message.edit_text(text, reply_markup=reply_markup)
        except TelegramBadRequest as exc:
            if NOT_MODIFIED not in exc.message:
                logger.info(
                    "edit of %s/%s refused: %s", message.chat.id, message.message_id, exc.message
                )

    async def show(
        self,
        session: AsyncSession,
        query: CallbackQuery,
        text: str,
        reply_markup: InlineKeyboardMarkup | None = None,
    ) -> None:
        """``text`` in place of the pressed message, or as a new message in the presser's
        chat when Telegram no longer gives the message (too old)."""
        if isinstance(query.message, Message):
            await self.edit(session, query.message, text, reply_markup)
        else:
            await self.reply(session, query, text, reply_markup)

    def later(self, session: AsyncSession, call: Call, what: str) -> None:
        """Make ``call`` once the session's transaction commits (at once when none is
        open); never when it rolls back. Not stored: a failure is logged and forgotten."""
        after_commit(session, lambda: self._start(call, what))

    def _start(self, call: Call, what: str) -> None:
        # A context of its own: the update's session is not this task's to use.
        task = asyncio.get_running_loop().create_task(
            self._run(call, what), context=contextvars.Context()
        )
        self._later.add(task)
        task.add_done_callback(self._later.discard)

    @staticmethod
    async def _run(call: Call, what: str) -> None:
        try:
            await call()
        except TelegramAPIError as exc:
            logger.info("%s after the commit not made: %s", what, exc.message)
        except Exception:
            logger.exception("%s after the commit failed", what)

    async def drain(self) -> None:
        """Wait for the calls made after commits (tests, shutdown)."""
        while self._later:
            await asyncio.gather(*list(self._later), return_exceptions=True)
