"""When a group commit should start: the shared rule of the writers that batch requests.

A writer that stores whatever is queued in one transaction (device reports, webhook
claims) answers each request after the commit. Under load the requests its last commit
answered come back a moment later (the client sends the next one on the same
connection); starting the next transaction with the one or two that arrived meanwhile
would split every round into a large batch and a small one, and the small one pays a
whole transaction. :class:`Gathering` lets them come back first, within limits that keep
an idle server as fast as before:

- while the queue keeps growing from one loop tick to the next, it yields (the handlers
  that are ready run; no timer);
- right after a commit (within ``linger`` s), it waits up to ``linger`` s for the queue to
  reach the size of the last batch;
- a request after a quiet moment never waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable

# One event-loop tick of the selector (its timeouts are whole milliseconds).
LINGER_S = 0.001


class Gathering:
    """The start rule of one writer; call :meth:`committed` after each batch."""

    def __init__(self, linger: float = LINGER_S) -> None:
        self.linger = linger
        self._last_size = 0
        self._last_commit = -math.inf

    async def wait(self, queued: Callable[[], int], arrived: asyncio.Event, limit: int) -> None:
        """Return when the batch should start: ``queued()`` is the queue's length,
        ``arrived`` is set by every new request, ``limit`` the largest batch."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.linger
        while True:
            before = queued()
            if before >= limit:
                return
            await asyncio.sleep(0)
            now_queued = queued()
            if now_queued > before:
                continue
            now = loop.time()
            if (
                now_queued >= self._last_size
                or now >= deadline
                or now - self._last_commit > self.linger
            ):
                return
            arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), deadline - now)

    def committed(self, size: int) -> None:
        """A batch of ``size`` requests was stored (or failed) just now."""
        self._last_size = size
        self._last_commit = asyncio.get_running_loop().time()
