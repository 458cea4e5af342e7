"""Tracks the updates being handled, so shutdown can let them finish."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject


class InFlightMiddleware(BaseMiddleware):
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def count(self) -> int:
        return len(self._tasks)

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - always inside a task under asyncio
            return await handler(event, data)
        self._tasks.add(task)
        try:
            return await handler(event, data)
        finally:
            self._tasks.discard(task)

    async def drain(self, within: float) -> int:
        """Wait up to ``within`` s for running updates; return how many were still running."""
        current = asyncio.current_task()
        pending = {task for task in self._tasks if task is not current}
        if not pending:
            return 0
        _done, still = await asyncio.wait(pending, timeout=within)
        return len(still)
