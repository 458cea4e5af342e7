"""Polling mode: getUpdates in a loop of ours, every batch stored in the inbox first.

aiogram's ``start_polling`` confirms a batch (the next call's ``offset``) as soon as it
has handed the updates to their handlers, so a crash mid-processing loses them. Here a
batch is claimed in ``processed_updates`` (bot/intake/inbox.py, the same claim as webhook
deliveries) before the offset moves past it, and processed by the same per-chat queues
with the same marks, retries, recovery and pruning: a paid ``successful_payment`` is
stored before it is processed, in both modes.
"""

from __future__ import annotations

import asyncio
import logging

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramRetryAfter, TelegramUnauthorizedError
from aiogram.types import Update
from aiogram.utils.backoff import Backoff, BackoffConfig

from bot.intake.inbox import Inbox

logger = logging.getLogger(__name__)

# Waits after a failed getUpdates (network, 5xx, 409, ...) or a claim the database refused.
DEFAULT_BACKOFF = BackoffConfig(min_delay=1.0, max_delay=5.0, factor=1.3, jitter=0.1)


class Poller:
    """Fetches updates until cancelled (shutdown cancels the long poll at once)."""

    def __init__(
        self,
        inbox: Inbox,
        bot: Bot,
        *,
        timeout: int,
        allowed_updates: list[str],
        backoff: BackoffConfig = DEFAULT_BACKOFF,
    ) -> None:
        self.inbox = inbox
        self.bot = bot
        self.timeout = timeout
        self.allowed_updates = allowed_updates
        self.backoff = backoff
        # The first update id not yet stored; sent as ``offset``, it confirms the rest.
        self.offset: int | None = None

    async def run(self) -> None:
        backoff = Backoff(self.backoff)
        # The request may take the long poll's time plus the session's own timeout.
        request_timeout = int(self.bot.session.timeout + self.timeout)
        while True:
            await self.inbox.wait_for_room()
            try:
                updates = await self.bot.get_updates(
                    offset=self.offset,
                    timeout=self.timeout,
                    allowed_updates=self.allowed_updates,
                    request_timeout=request_timeout,
                )
            except TelegramRetryAfter as exc:
                logger.warning("getUpdates: 429, waiting %s s", exc.retry_after)
                await asyncio.sleep(exc.retry_after)
                continue
            except TelegramUnauthorizedError:
                raise  # the token is wrong or revoked: nothing to retry
            except TelegramAPIError as exc:
                # Network errors, 5xx, 409 (another getUpdates or a webhook), anything odd.
                delay = next(backoff)
                logger.warning(
                    "getUpdates failed (%s); retrying in %.1f s", type(exc).__name__, delay
                )
                await asyncio.sleep(delay)
                continue
            backoff.reset()
            if updates:
                await self._store(updates, backoff)
                self.offset = updates[-1].update_id + 1

    async def _store(self, updates: list[Update], backoff: Backoff) -> None:
        """Claim the batch; until the database takes it the offset stays where it was."""
        while True:
            try:
                await self.inbox.accept_batch(updates)
            except Exception as exc:
                delay = next(backoff)
                logger.warning(
                    "%d updates not stored (%s); retrying in %.1f s",
                    len(updates),
                    type(exc).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
            else:
                backoff.reset()
                return
