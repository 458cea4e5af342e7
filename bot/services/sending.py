"""The one send path: every Bot API call that sends or edits a message passes through here.

Installed as an aiogram session request middleware by ``create_bot``, so it covers the
notifier, broadcasts, edits and ``message.answer`` in handlers alike. For a message to a
chat it:

- keeps 1 message per ``per_chat_interval_seconds`` per chat: each call reserves the
  chat's next free slot and sleeps until it, so a busy chat never delays another one;
- keeps ``global_per_second`` overall (aiolimiter's leaky bucket);
- on ``429`` pauses all sending for ``retry_after`` seconds (Telegram's answer is for the
  bot, so the other messages would only collect 429s too) and retries, at most
  ``max_retries`` times and never for a wait above ``max_retry_after_seconds``;
- retries a connection that could not be opened (the request never left, so nothing can
  arrive twice); any other failure is raised as it is, never retried, so no message is
  ever delivered twice;
- on ``403`` marks the user as blocked (``BlockedUsers`` of the notifier) and refuses
  further messages to them without calling Telegram, until they write to the bot again.

Everything else (getUpdates, answerCallbackQuery, ...) passes through untouched.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import aiohttp
from aiogram import Bot
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.exceptions import (
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
)
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiolimiter import AsyncLimiter

from bot.config import SendingSettings

logger = logging.getLogger(__name__)

# Bot API methods that put a message into a chat or change one; sendChatAction only shows
# "typing…" and is not a message.
_PACED_PREFIXES = ("send", "edit", "copy", "forward")
_NOT_PACED = frozenset({"sendChatAction"})
BLOCKED_DESCRIPTION = "Forbidden: bot was blocked by the user"
# Chats whose per-chat slot lies this far in the past are forgotten.
_SLOT_CLEANUP_THRESHOLD = 10_000


class BlockedRegistry(Protocol):
    """Who blocked the bot (implemented by ``bot.services.notifier.BlockedUsers``)."""

    def __contains__(self, chat_id: object) -> bool: ...

    def mark(self, chat_id: int) -> None: ...


def is_paced(method: TelegramMethod[Any]) -> bool:
    name = method.__api_method__
    return name.startswith(_PACED_PREFIXES) and name not in _NOT_PACED


def _chat_id(method: TelegramMethod[Any]) -> int | str | None:
    chat_id = getattr(method, "chat_id", None)
    return chat_id if isinstance(chat_id, int | str) else None


def _never_sent(exc: TelegramNetworkError) -> bool:
    """True when the request certainly did not reach Telegram (no connection was opened)."""
    return isinstance(exc.__cause__, aiohttp.ClientConnectorError)


class SendPath(BaseRequestMiddleware):
    def __init__(
        self,
        settings: SendingSettings,
        *,
        time: Callable[[], float] | None = None,
    ) -> None:
        self.settings = settings
        self.blocked: BlockedRegistry | None = None
        self._limiter = AsyncLimiter(settings.global_per_second, 1.0)
        self._time = time
        self._next_slot: dict[int | str, float] = {}
        self._paused_until = 0.0
        self._waiting = 0
        self._in_flight = 0

    @classmethod
    def of(cls, bot: Bot) -> SendPath | None:
        """The send path installed on ``bot``'s session, if any."""
        for middleware in bot.session.middleware:
            if isinstance(middleware, cls):
                return middleware
        return None

    @property
    def queue_depth(self) -> int:
        """Messages waiting for their turn (per-chat slot, global limit or a 429 pause)."""
        return self._waiting

    @property
    def in_flight(self) -> int:
        """Messages sent to Telegram and not answered yet."""
        return self._in_flight

    def _now(self) -> float:
        return self._time() if self._time is not None else asyncio.get_running_loop().time()

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        if not is_paced(method):
            return await make_request(bot, method)
        chat_id = _chat_id(method)
        if chat_id is not None and self.blocked is not None and chat_id in self.blocked:
            raise TelegramForbiddenError(method=method, message=BLOCKED_DESCRIPTION)
        with self._counted("_waiting"):
            await self._wait_for_chat_slot(chat_id)
            await self._wait_for_turn()
        attempt = 0
        while True:
            try:
                with self._counted("_in_flight"):
                    return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                attempt += 1
                if attempt > self.settings.max_retries or (
                    exc.retry_after > self.settings.max_retry_after_seconds
                ):
                    logger.warning(
                        "%s to %s: giving up after 429 (retry_after %s s, attempt %s)",
                        method.__api_method__,
                        chat_id,
                        exc.retry_after,
                        attempt,
                    )
                    raise
                logger.info(
                    "429 on %s: pausing sends for %s s", method.__api_method__, exc.retry_after
                )
                self._pause(exc.retry_after)
            except TelegramNetworkError as exc:
                attempt += 1
                if not _never_sent(exc) or attempt > self.settings.max_retries:
                    raise
                logger.info(
                    "%s to %s: no connection (%s); retrying",
                    method.__api_method__,
                    chat_id,
                    exc.message,
                )
                self._pause(self.settings.connect_retry_delay_seconds)
            except TelegramForbiddenError:
                if isinstance(chat_id, int) and self.blocked is not None:
                    self.blocked.mark(chat_id)
                raise
            with self._counted("_waiting"):
                await self._wait_for_turn()

    @contextmanager
    def _counted(self, counter: str) -> Iterator[None]:
        setattr(self, counter, getattr(self, counter) + 1)
        try:
            yield
        finally:
            setattr(self, counter, getattr(self, counter) - 1)

    async def _wait_for_turn(self) -> None:
        # Another 429 may extend the pause while this one sleeps, hence the loop.
        while (delay := self._paused_until - self._now()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(delay)
        await self._limiter.acquire()

    async def _wait_for_chat_slot(self, chat_id: int | str | None) -> None:
        interval = self.settings.per_chat_interval_seconds
        if chat_id is None or interval <= 0:
            return
        now = self._now()
        slot = max(now, self._next_slot.get(chat_id, now))
        self._next_slot[chat_id] = slot + interval
        if len(self._next_slot) > _SLOT_CLEANUP_THRESHOLD:
            self._forget_old_slots(now)
        if slot > now:
            await asyncio.sleep(slot - now)

    def _forget_old_slots(self, now: float) -> None:
        for chat_id in [key for key, slot in self._next_slot.items() if slot <= now]:
            del self._next_slot[chat_id]

    def _pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, self._now() + seconds)


def install_send_path(bot: Bot, settings: SendingSettings) -> SendPath:
    """Put the send path on ``bot`` (once) and return it."""
    existing = SendPath.of(bot)
    if existing is not None:
        return existing
    path = SendPath(settings)
    bot.session.middleware(path)
    return path
