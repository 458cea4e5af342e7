"""The update log: one structured line and one metrics sample per update.

The line is logfmt on the ``bot.updates`` logger::

    update id=1234 type=message user=42 command=/help handler=handlers.start:cmd_help
    outcome=handled ms=3.1

Only the command word (``/start``, never its arguments or other text) or the callback data
prefix (``dev`` of ``dev:pause:17``) is logged; tokens and secrets never reach this line.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from enum import StrEnum
from time import perf_counter

from aiogram.dispatcher.middlewares.user_context import UserContextMiddleware
from aiogram.types import Update
from aiogram.types.update import UpdateTypeLookupError

from bot.infra.metrics import Metrics

logger = logging.getLogger("bot.updates")

_COMMAND_RE = re.compile(r"^/([A-Za-z0-9_]{1,64})(?:@[A-Za-z0-9_]{1,64})?$")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
NONE = "-"


class Outcome(StrEnum):
    HANDLED = "handled"
    UNHANDLED = "unhandled"
    ERROR = "error"
    THROTTLED = "throttled"
    DUPLICATE = "duplicate"
    CANCELLED = "cancelled"


@dataclass(slots=True)
class UpdateTrace:
    """What the log line says about one update; middlewares fill it in as it travels."""

    update_id: int
    type: str
    user_id: int | None
    command: str
    handler: str = NONE
    outcome: Outcome | None = None
    started: float = field(default_factory=perf_counter)

    @classmethod
    def of(cls, update: Update) -> UpdateTrace:
        try:
            kind = update.event_type
        except UpdateTypeLookupError:
            kind = "unknown"
        user = UserContextMiddleware.resolve_event_context(update).user
        return cls(
            update_id=update.update_id,
            type=kind,
            user_id=user.id if user is not None else None,
            command=_command_of(update),
        )


def _command_of(update: Update) -> str:
    """``/name`` of a command message, ``cb:<prefix>`` of a button press, else ``-``."""
    message = update.message or update.edited_message
    if message is not None and message.text and message.text.startswith("/"):
        match = _COMMAND_RE.match(message.text.split(maxsplit=1)[0])
        return f"/{match.group(1)}" if match else "/?"
    query = update.callback_query
    if query is not None and query.data:
        prefix = query.data.split(":", 1)[0]
        return f"cb:{prefix}" if _PREFIX_RE.match(prefix) else "cb:?"
    return NONE


class UpdateLog:
    def __init__(self, metrics: Metrics) -> None:
        self.updates = metrics.updates
        self.seconds = metrics.update_seconds

    def record(self, trace: UpdateTrace, *, timed: bool = True) -> None:
        """Write the line and count the outcome; ``timed`` also feeds the latency histogram."""
        outcome = trace.outcome or Outcome.UNHANDLED
        elapsed = perf_counter() - trace.started
        self.updates.labels(trace.type, outcome.value).inc()
        if timed:
            self.seconds.labels(trace.handler).observe(elapsed)
        if logger.isEnabledFor(logging.INFO):
            logger.info(
                "update id=%d type=%s user=%s command=%s handler=%s outcome=%s ms=%.1f",
                trace.update_id,
                trace.type,
                trace.user_id if trace.user_id is not None else NONE,
                trace.command,
                trace.handler,
                outcome.value,
                elapsed * 1000,
            )
