"""The one send path: every Bot API call that sends or edits a message passes through here.

Installed as an aiogram session request middleware by ``create_bot``, so it covers the
notifier, broadcasts, edits and ``message.answer`` in handlers alike. For a message to a
chat it:

- keeps each chat's messages in order: they go one at a time, each after the previous
  one was answered; every chat has its own lane, so a busy chat never delays another;
- keeps each chat's pace and the deployment's send limit through the send gate
  (bot/infra/send_gate.py): ``per_chat_burst`` messages in a row, then one per
  ``per_chat_interval_seconds``, and never more than ``global_per_second`` in any one
  second, shared by all instances through Redis when ``redis.url`` is set. Messages
  waiting for the limit queue in order behind one of them (only the first asks the gate);
- on ``429`` pauses all sending (on every instance) for ``retry_after`` seconds
  (Telegram's answer is for the bot, so the other messages would only collect 429s too)
  and retries, at most ``max_retries`` times and never for a wait above
  ``max_retry_after_seconds``;
- retries a connection that could not be opened (the request never left, so nothing can
  arrive twice); any other failure is raised as it is, never retried, so no message is
  ever delivered twice;
- on ``403`` marks the user as blocked (``BlockedUsers`` of the notifier) and refuses
  further messages to them without calling Telegram, until they write to the bot again.

Everything else (getUpdates, answerCallbackQuery, ...) passes through untouched.

The path also holds ``Response[T]`` for each return type it has seen: aiogram parses every
answer with ``Response[method.__returning__]``, and pydantic keeps parametrised models
only weakly, so after a garbage collection the next answer would build the class again
(schema generation, several times the cost of the send itself under a broadcast's
allocations). Holding one reference per type keeps pydantic's own cache warm.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
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

from bot.config import RedisSettings, SendingSettings
from bot.infra.send_gate import ChatKey, SendGate, create_send_gate

logger = logging.getLogger(__name__)

# Bot API methods that put a message into a chat or change one; sendChatAction only shows
# "typing…" and is not a message.
_PACED_PREFIXES = ("send", "edit", "copy", "forward")
_NOT_PACED = frozenset({"sendChatAction"})
BLOCKED_DESCRIPTION = "Forbidden: bot was blocked by the user"


class _Lane:
    """One chat's queue: its messages go one at a time, in order."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class BlockedRegistry(Protocol):
    """Who blocked the bot (implemented by ``bot.infra.notifier.BlockedUsers``)."""

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
        gate: SendGate | None = None,
    ) -> None:
        self.settings = settings
        self.blocked: BlockedRegistry | None = None
        self._time = time
        self.gate = gate if gate is not None else create_send_gate(settings, self._now)
        # Held by the message at the head of the queue while it waits for the send limit
        # (or a pause): the others wait behind it in order, without asking the gate.
        self._turn = asyncio.Lock()
        self._lanes: dict[ChatKey, _Lane] = {}
        self._paused_until = 0.0
        self._waiting = 0
        self._in_flight = 0
        self._response_types: dict[Any, type[Response[Any]]] = {}

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

    async def close(self) -> None:
        """Disconnect the gate (from Redis)."""
        await self.gate.close()

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        returning = method.__returning__
        if returning not in self._response_types:
            self._response_types[returning] = Response[returning]  # type: ignore[valid-type]
        if not is_paced(method):
            return await make_request(bot, method)
        chat_id = _chat_id(method)
        if chat_id is None or self.settings.per_chat_interval_seconds <= 0:
            return await self._send(make_request, bot, method, chat_id, None)
        lane = self._lanes.get(chat_id)
        if lane is None:
            lane = self._lanes[chat_id] = _Lane()
        lane.users += 1
        try:
            self._waiting += 1
            try:
                await lane.lock.acquire()
            finally:
                self._waiting -= 1
            try:
                return await self._send(make_request, bot, method, chat_id, chat_id)
            finally:
                lane.lock.release()
        finally:
            lane.users -= 1
            if not lane.users:  # the chat's pace is the gate's; an idle lane holds nothing
                del self._lanes[chat_id]

    async def _send(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
        chat_id: int | str | None,
        paced_chat: ChatKey | None,
    ) -> Response[TelegramType]:
        attempt = 0
        while True:
            self._refuse_if_blocked(method, chat_id)
            ticket = await self._admit(paced_chat)
            try:
                # Checked after any wait too: a 403 may have arrived for this chat meanwhile.
                self._refuse_if_blocked(method, chat_id)
            except TelegramForbiddenError:
                await self.gate.leave(paced_chat, ticket)
                raise
            self._in_flight += 1
            try:
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
                await self.gate.pause(exc.retry_after)
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
                # This instance's network: the other instances may still reach Telegram.
                self._pause(self.settings.connect_retry_delay_seconds)
            except TelegramForbiddenError:
                if isinstance(chat_id, int) and self.blocked is not None:
                    self.blocked.mark(chat_id)
                raise
            finally:
                self._in_flight -= 1
                # Counted from the answer: the window and the chat's pace run from now.
                await self.gate.leave(paced_chat, ticket)

    def _refuse_if_blocked(self, method: TelegramMethod[Any], chat_id: int | str | None) -> None:
        if chat_id is not None and self.blocked is not None and chat_id in self.blocked:
            raise TelegramForbiddenError(method=method, message=BLOCKED_DESCRIPTION)

    async def _admit(self, chat: ChatKey | None) -> str:
        """Wait until the gate lets this message go; its ticket for ``leave``."""
        self._waiting += 1
        try:
            while True:
                async with self._turn:
                    while True:
                        # Another 429 may extend the pause while this one sleeps.
                        if (delay := self._paused_until - self._now()) > 0:
                            await asyncio.sleep(delay)
                            continue
                        admission = await self.gate.enter(chat)
                        if admission.wait <= 0:
                            return admission.ticket
                        if not admission.everyone:
                            break
                        await asyncio.sleep(admission.wait)
                # Only this chat must wait: the messages behind it go meanwhile.
                await asyncio.sleep(admission.wait)
        finally:
            self._waiting -= 1

    def _pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, self._now() + seconds)


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


def install_send_path(
    bot: Bot, settings: SendingSettings, redis: RedisSettings | None = None
) -> SendPath:
    """Put the send path on ``bot`` (once) and return it; with ``redis.url`` set its limit
    and the chats' pace are shared with every instance using the same ``redis.prefix``."""
    existing = SendPath.of(bot)
    if existing is not None:
        return existing
    gate = None
    if redis is not None and redis.url:
        gate = create_send_gate(settings, _loop_time, redis_url=redis.url, prefix=redis.prefix)
    path = SendPath(settings, gate=gate)
    bot.session.middleware(path)
    return path
