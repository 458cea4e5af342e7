"""The requests the fake received, and the queries tests ask about them.

Every request becomes a :class:`Call`; :class:`CallLog` keeps them in arrival order and
answers ``sent``, ``texts``, ``last`` and ``wait_for``, whose failure messages list what was
recorded so a failing flow test says what the bot did instead. :func:`buttons` and
:func:`button` read the inline keyboard a call sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# The methods whose text a user reads: what ``CallLog.texts`` returns.
_TEXT_METHODS = frozenset({"sendmessage", "editmessagetext", "sendphoto"})


@dataclass
class Call:
    """One request the fake server received.

    ``params`` are decoded: JSON-looking form values become Python objects (``reply_markup`` a
    dict, a numeric ``chat_id`` an int, ...), well-known string parameters (``text``,
    ``callback_query_id``, ``payload``, ...) stay strings, and uploaded files become
    ``{"filename", "content_type", "size", "data"}`` dicts placed where the request referenced
    them (``photo``, ``document``, or inside ``media``).
    """

    method: str
    """Method name exactly as it appeared in the URL path, e.g. ``"sendMessage"``."""
    token: str
    params: dict[str, Any]
    at: float
    """``time.monotonic()`` when the request arrived."""
    failed: int | None = None
    """Error code when the call was answered with an error (injected or validation), else None."""
    description: str | None = None
    """Error description when ``failed`` is set."""
    content_type: str = ""
    """The request's Content-Type without parameters (``application/json``, ...)."""
    result: Any = None
    """The ``result`` the server answered with (None for failed or still-pending calls)."""

    @property
    def ok(self) -> bool:
        """True when the call was answered successfully."""
        return self.failed is None

    @property
    def chat_id(self) -> Any:
        """The ``chat_id`` parameter (None when absent)."""
        return self.params.get("chat_id")

    @property
    def text(self) -> str | None:
        """The ``text`` parameter, or ``caption`` when there is no text."""
        value = self.params.get("text", self.params.get("caption"))
        return value if isinstance(value, str) else None

    def matches(self, method: str | None = None, chat_id: int | str | None = None) -> bool:
        """Whether the call is for ``method`` (case-insensitive) and ``chat_id`` (when given)."""
        if method is not None and self.method.lower() != method.lower():
            return False
        return chat_id is None or self.params.get("chat_id") == chat_id

    def summary(self) -> str:
        """A one-line human-readable description, used in assertion messages."""
        parts = [self.method]
        if "chat_id" in self.params:
            parts.append(f"chat_id={self.params['chat_id']!r}")
        if self.text is not None:
            text = self.text if len(self.text) <= 60 else self.text[:57] + "..."
            parts.append(f"text={text!r}")
        if self.failed is not None:
            parts.append(f"-> {self.failed} {self.description!r}")
        return " ".join(parts)


def buttons(call: Call) -> list[dict[str, Any]]:
    """The buttons of the inline keyboard sent with ``call``, row after row."""
    markup = call.params.get("reply_markup") or {"inline_keyboard": []}
    return [button for row in markup.get("inline_keyboard", []) for button in row]


def button(call: Call, text_part: str) -> str:
    """The callback data of the first button whose text contains ``text_part``."""
    for item in buttons(call):
        if text_part in item["text"]:
            return str(item["callback_data"])
    raise AssertionError(f"no button with {text_part!r} in {buttons(call)}")


class CallLog:
    """Recorded calls in arrival order, and the queries on them."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._call_event = asyncio.Event()

    def record(self, call: Call) -> None:
        """Append ``call`` and wake every :meth:`wait_for`."""
        self.calls.append(call)
        event, self._call_event = self._call_event, asyncio.Event()
        event.set()

    def sent(self, method: str | None = None, chat_id: int | None = None) -> list[Call]:
        """Recorded calls (failed ones included) for ``method`` (case-insensitive) and/or
        ``chat_id``. With ``method=None`` every method except getUpdates is returned."""
        return [
            call
            for call in self.calls
            if call.matches(method, chat_id)
            and (method is not None or call.method.lower() != "getupdates")
        ]

    def texts(self, chat_id: int | None = None, *, include_failed: bool = False) -> list[str]:
        """``text`` (or ``caption``) of sendMessage / editMessageText / sendPhoto calls, in order.

        Calls answered with an error are left out unless ``include_failed`` (a 429 followed by a
        successful retry therefore shows the text once, as the user saw it).
        """
        return [
            call.text
            for call in self.calls
            if call.method.lower() in _TEXT_METHODS
            and call.matches(None, chat_id)
            and call.text is not None
            and (include_failed or call.ok)
        ]

    def last(self, method: str | None = None, chat_id: int | None = None) -> Call:
        """The most recent matching call (see :meth:`sent`); AssertionError when there is none."""
        found = self.sent(method, chat_id)
        if not found:
            msg = f"no {method or 'call'} recorded (chat_id={chat_id}); {self.describe()}"
            raise AssertionError(msg)
        return found[-1]

    async def wait_for(
        self,
        method: str,
        predicate: Callable[[Call], bool] | None = None,
        *,
        timeout: float = 5.0,
        count: int = 1,
    ) -> list[Call]:
        """Wait until ``count`` calls of ``method`` matching ``predicate`` are recorded.

        Calls recorded before this was called count too; failed calls count as well (filter on
        ``call.ok`` in the predicate if needed). Returns the first ``count`` matches. On timeout
        raises AssertionError listing what was recorded.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            matches = [
                call
                for call in self.calls
                if call.matches(method) and (predicate is None or predicate(call))
            ]
            if len(matches) >= count:
                return matches[:count]
            remaining = deadline - loop.time()
            if remaining <= 0:
                same_method = len(self.sent(method))
                msg = (
                    f"timed out after {timeout}s waiting for {count} {method} call(s)"
                    f"{' matching the predicate' if predicate else ''}: got {len(matches)}"
                    f" ({same_method} {method} call(s) in total). {self.describe()}"
                )
                raise AssertionError(msg)
            event = self._call_event
            try:
                async with asyncio.timeout(remaining):
                    await event.wait()
            except TimeoutError:
                pass

    def clear(self) -> None:
        """Forget recorded calls (queued updates, failure rules and blocks are kept)."""
        self.calls.clear()

    def describe(self, limit: int = 40) -> str:
        """The recorded calls other than getUpdates, one a line, for assertion messages."""
        polls = sum(1 for call in self.calls if call.method.lower() == "getupdates")
        others = [call.summary() for call in self.calls if call.method.lower() != "getupdates"]
        if not others:
            return f"Recorded calls ({polls} getUpdates): no calls other than getUpdates"
        shown = others[-limit:]
        hidden = len(others) - len(shown)
        listing = "\n  - " + "\n  - ".join(shown)
        if hidden:
            listing = f"\n  ... {hidden} earlier call(s)" + listing
        return f"Recorded calls ({polls} getUpdates): {listing}"
