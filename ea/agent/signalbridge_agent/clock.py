"""The server's clock, as the agent sees it: local UTC time plus the offset learned from
every ``X-Server-Time`` header, so a computer whose clock is off still signs fresh
timestamps and judges instructions' ages by the server's time."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

logger = logging.getLogger(__name__)

WallClock = Callable[[], float]

# X-Server-Time is in whole seconds: differences below this are its rounding, not drift.
_JITTER_S = 1.5
# An offset this large is worth telling the owner about (the server refuses 300 s).
_WARN_S = 60.0


class ServerClock:
    def __init__(self, wall: WallClock = time.time) -> None:
        self._wall = wall
        self.offset = 0.0
        self.observed = False

    def observe(self, header: str | None) -> None:
        """Learn the offset from one response's ``X-Server-Time`` (ignored when malformed)."""
        if header is None or not header.isdigit():
            return
        # The header truncates to the second: its middle is half a second later.
        offset = int(header) + 0.5 - self._wall()
        if self.observed and abs(offset - self.offset) < _JITTER_S:
            return
        if abs(offset) >= _WARN_S:
            logger.warning(
                "this computer's clock is %.0f s %s the server's; signing with the server's time",
                abs(offset),
                "behind" if offset > 0 else "ahead of",
            )
        self.offset = offset
        self.observed = True

    def unix(self) -> int:
        """Whole seconds of the server's time: the ``X-Timestamp`` to sign with."""
        return int(self._wall() + self.offset)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._wall() + self.offset, UTC)
