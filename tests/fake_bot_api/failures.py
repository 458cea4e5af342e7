"""Telegram-shaped errors, and the failures a test injects: 429/5xx/4xx, blocked chats, holds.

:class:`FakeApiError` is what a method handler raises to answer an error (a validation error,
an injected one, or one a test's own handler raises). :class:`FailureInjection` keeps the rules
a test set with :meth:`~FailureInjection.fail_next`, :meth:`~FailureInjection.block_chat` and
:meth:`~FailureInjection.hold`; the server asks it before answering each call.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal, get_args

from tests.fake_bot_api.calls import Call

ErrorKind = Literal["429", "403", "400_not_modified", "400", "500"]
"""Kinds of injected failures accepted by :meth:`FailureInjection.fail_next`."""

NOT_MODIFIED_DESCRIPTION = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
BLOCKED_DESCRIPTION = "Forbidden: bot was blocked by the user"
# Methods that "send to a chat" besides send*, and so fail for a chat that blocked the bot.
_SEND_LIKE = frozenset({"copymessage", "copymessages", "forwardmessage", "forwardmessages"})


class FakeApiError(Exception):
    """Raise from a method handler (or one set with ``set_handler``) to answer an error."""

    def __init__(
        self, error_code: int, description: str, parameters: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{error_code} {description}")
        self.error_code = error_code
        self.description = description
        self.parameters = parameters

    def to_json(self) -> dict[str, Any]:
        """The Telegram-shaped error body."""
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.error_code,
            "description": self.description,
        }
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def _prefixed(prefix: str, description: str) -> str:
    return description if description.startswith(prefix) else f"{prefix}: {description}"


def make_error(
    error: ErrorKind, *, retry_after: int = 1, description: str | None = None
) -> FakeApiError:
    """The Telegram-shaped error for an :data:`ErrorKind`.

    ``description`` replaces the default text; the standard prefix ("Bad Request", "Forbidden",
    ...) is added when it is missing. It is ignored for ``"400_not_modified"``.
    """
    if error == "429":
        text = description or f"retry after {retry_after}"
        return FakeApiError(429, _prefixed("Too Many Requests", text), {"retry_after": retry_after})
    if error == "403":
        return FakeApiError(403, _prefixed("Forbidden", description or BLOCKED_DESCRIPTION))
    if error == "400_not_modified":
        return FakeApiError(400, NOT_MODIFIED_DESCRIPTION)
    if error == "400":
        return FakeApiError(400, _prefixed("Bad Request", description or "bad request"))
    if error == "500":
        if description is None:
            return FakeApiError(500, "Internal Server Error")
        return FakeApiError(500, _prefixed("Internal Server Error", description))
    msg = f"unknown error kind {error!r}; expected one of {get_args(ErrorKind)}"
    raise ValueError(msg)


@dataclass
class _FailRule:
    method: str
    error: FakeApiError
    remaining: int
    chat_id: int | None


class FailureInjection:
    """The failures a test asked for, consulted before each call is answered."""

    def __init__(self) -> None:
        self.blocked_chats: set[int] = set()
        self._fail_rules: list[_FailRule] = []
        self._holds: dict[str, asyncio.Event] = {}

    def fail_next(
        self,
        method: str,
        *,
        error: ErrorKind,
        times: int = 1,
        chat_id: int | None = None,
        retry_after: int = 1,
        description: str | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` (only those for ``chat_id`` when given)
        with ``error`` instead of succeeding. The calls are still recorded, with ``Call.failed``
        set to the error code. Rules are consumed in the order they were added."""
        if times < 1:
            msg = "times must be >= 1"
            raise ValueError(msg)
        rule_error = make_error(error, retry_after=retry_after, description=description)
        self._fail_rules.append(_FailRule(method.lower(), rule_error, times, chat_id))

    def recover(self) -> None:
        """Telegram is back: injected failures not consumed yet are dropped and held
        answers released (a held call that was cut off stays unanswered)."""
        self._fail_rules.clear()
        for gate in self._holds.values():
            gate.set()
        self._holds.clear()

    def block_chat(self, chat_id: int) -> None:
        """Every send (send*, copyMessage, forwardMessage) to ``chat_id`` answers 403
        "Forbidden: bot was blocked by the user" until :meth:`unblock_chat`."""
        self.blocked_chats.add(chat_id)

    def unblock_chat(self, chat_id: int) -> None:
        """Undo :meth:`block_chat`."""
        self.blocked_chats.discard(chat_id)

    def hold(self, method: str) -> asyncio.Event:
        """Answers to ``method`` wait (the call already recorded) until the returned event
        is set; then they are answered as usual. A slow Telegram, on demand."""
        gate = self._holds[method.lower()] = asyncio.Event()
        return gate

    async def wait_if_held(self, call: Call) -> None:
        """Return once the answer to ``call`` may go out (at once unless its method is held)."""
        gate = self._holds.get(call.method.lower())
        if gate is not None:
            await gate.wait()

    def injected_failure(self, call: Call) -> FakeApiError | None:
        """The error ``call`` must be answered with (consuming a rule), or None."""
        key = call.method.lower()
        for rule in self._fail_rules:
            if rule.method == key and (rule.chat_id is None or call.chat_id == rule.chat_id):
                rule.remaining -= 1
                if rule.remaining <= 0:
                    self._fail_rules.remove(rule)
                return rule.error
        is_send = key.startswith("send") or key in _SEND_LIKE
        if is_send and isinstance(call.chat_id, int) and call.chat_id in self.blocked_chats:
            return FakeApiError(403, BLOCKED_DESCRIPTION)
        return None
