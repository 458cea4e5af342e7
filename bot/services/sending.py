"""The one send path: every Bot API call that sends or edits a message passes through here.

Installed as an aiogram session request middleware by ``create_bot``, so it covers the
notifier, broadcasts, edits and ``message.answer`` in handlers alike. For a message to a
chat it:

- keeps 1 message per ``per_chat_interval_seconds`` per chat: a chat's messages go one
  at a time, in order, each at least the interval after the previous one was answered;
  every chat has its own lane, so a busy chat never delays another one;
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
# Idle chats are forgotten once this many are known.
_LANE_CLEANUP_THRESHOLD = 10_000


class _Lane:
    """One chat's queue: its messages go one at a time, ``interval`` apart."""

    __slots__ = ("free_at", "lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.free_at = 0.0
        self.users = 0


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
        self._lanes: dict[int | str, _Lane] = {}
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
        interval = self.settings.per_chat_interval_seconds
        if chat_id is None or interval <= 0:
            return await self._send(make_request, bot, method, chat_id)
        lane = self._lanes.get(chat_id)
        if lane is None:
            lane = self._lanes[chat_id] = _Lane()
        lane.users += 1
        try:
            with self._counted("_waiting"):
                await lane.lock.acquire()
            try:
                with self._counted("_waiting"):
                    while (delay := lane.free_at - self._now()) > 0:  # noqa: ASYNC110
                        await asyncio.sleep(delay)
                return await self._send(make_request, bot, method, chat_id)
            finally:
                # Counted from the answer: the next message to this chat arrives at least
                # ``interval`` after this one did, however long either spent in transit.
                lane.free_at = self._now() + interval
                lane.lock.release()
        finally:
            lane.users -= 1
            if len(self._lanes) > _LANE_CLEANUP_THRESHOLD:
                self._forget_idle_lanes()

    async def _send(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
        chat_id: int | str | None,
    ) -> Response[TelegramType]:
        # Checked after any wait too: a 403 may have arrived for this chat meanwhile.
        if chat_id is not None and self.blocked is not None and chat_id in self.blocked:
            raise TelegramForbiddenError(method=method, message=BLOCKED_DESCRIPTION)
        with self._counted("_waiting"):
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

    def _forget_idle_lanes(self) -> None:
        now = self._now()
        idle = [key for key, lane in self._lanes.items() if not lane.users and lane.free_at <= now]
        for chat_id in idle:
            del self._lanes[chat_id]

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
