"""A command message starts its walk at the first router that could take it.

aiogram offers a message to the routers in order, and within a router to each handler,
until one matches; every step copies the update's data and runs filters. A command such
as /devices passed a dozen routers and some thirty handlers before reaching its own.

At start-up ``CommandShortcut`` works out, for every command name the handlers know (and
once for all other names), which routers can be proven unable to take a message with
that command while the chat has no FSM state: every message handler of the router has a
filter that rejects it: a ``Command`` filter for other names only, a state filter for
a state other than none, or ``F.photo``-like magic asking for content a text message
does not have. A router with sub-routers or with outer middlewares of its own
on messages is never skipped, and neither is any router after the first one that might
take the message. Filters are pure checks of the update (bot/fast_filters.py), so a
router whose every handler rejects a message returns "unhandled" whatever its own
root filters decide: skipping it changes nothing but the time spent.

At run time the shortcut is the innermost outer middleware of the dispatcher's message
observer: for a text message starting with "/" and no FSM state it offers the message to
the routers from that start on, exactly as aiogram would; anything else takes aiogram's
walk from the first router.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from aiogram import BaseMiddleware, Dispatcher, Router
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.dispatcher.event.handler import FilterObject, HandlerObject
from aiogram.enums import ContentType
from aiogram.filters import Command, StateFilter
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import Message, TelegramObject
from magic_filter import MagicFilter
from magic_filter.operations import GetAttributeOperation

_UPDATE_TYPE = "message"


def _unwrapped(event_filter: FilterObject) -> Any:
    callback = event_filter.callback
    return getattr(callback, "__wrapped__", callback)


def _state_rejects_none(state: Any) -> bool:
    """True when a state (as a filter argument) cannot match a chat without FSM state."""
    if isinstance(state, State):
        return state.state not in (None, "*")
    if isinstance(state, str):
        return state != "*"
    # A group matches its own named states only.
    return isinstance(state, StatesGroup) or (
        isinstance(state, type) and issubclass(state, StatesGroup)
    )


# A text message carries none of the other kinds of content (photo, document,
# successful_payment, ...): Telegram sends one kind per message.
_OTHER_CONTENT = frozenset(ContentType) - {ContentType.TEXT, ContentType.UNKNOWN, ContentType.ANY}


def _wants_other_content(check: Any) -> bool:
    """A magic filter that is exactly ``F.<kind of content other than text>``."""
    magic = getattr(check, "__self__", None)
    if not isinstance(magic, MagicFilter) or getattr(check, "__name__", "") != "resolve":
        return False
    operations = magic._operations
    return (
        len(operations) == 1
        and isinstance(operations[0], GetAttributeOperation)
        and operations[0].name in _OTHER_CONTENT
    )


def _rejects(check: Any, key: str | None) -> bool:
    """Does this filter provably reject a "/<command>" text message without FSM state?

    ``key`` is the command's casefolded name; None stands for any name no handler knows.
    """
    if isinstance(check, Command):
        names = check.commands
        if not all(isinstance(name, str) for name in names):
            return False  # a pattern may match anything
        if key is None:
            return True  # only its own names pass, and this name is none of them
        return all(str(name).casefold() != key for name in names)
    if isinstance(check, StateFilter):
        return all(_state_rejects_none(state) for state in check.states)
    if isinstance(check, State) or (isinstance(check, type) and issubclass(check, StatesGroup)):
        return _state_rejects_none(check)
    return _wants_other_content(check)


def _handler_rejects(handler: HandlerObject, key: str | None) -> bool:
    return any(_rejects(_unwrapped(f), key) for f in handler.filters or ())


def _skippable(router: Router, key: str | None) -> bool:
    if router.sub_routers:
        return False
    observer = router.observers[_UPDATE_TYPE]
    if len(observer.outer_middleware):
        return False
    return all(_handler_rejects(handler, key) for handler in observer.handlers)


def _known_names(routers: Iterable[Router]) -> set[str]:
    names: set[str] = set()
    for router in routers:
        for handler in router.observers[_UPDATE_TYPE].handlers:
            for event_filter in handler.filters or ():
                check = _unwrapped(event_filter)
                if isinstance(check, Command):
                    names.update(str(n).casefold() for n in check.commands if isinstance(n, str))
    return names


def _start(routers: Sequence[Router], key: str | None) -> int:
    for index, router in enumerate(routers):
        if not _skippable(router, key):
            return index
    return len(routers)


def _shape(dp: Dispatcher | None, routers: Sequence[Router]) -> tuple[int, ...]:
    """What the index was built from: the routers and how many handlers each has."""
    if dp is not None and len(dp.sub_routers) != len(routers):
        return (-1,)
    return tuple(len(r.message.handlers) + len(r.sub_routers) for r in routers)


_COMMAND = re.compile(r"/([^\s@]+)")


class CommandShortcut(BaseMiddleware):
    """Outer middleware of ``dp.message``; see the module docstring."""

    def __init__(self, routers: Sequence[Router], dp: Dispatcher | None = None) -> None:
        self.dp = dp
        self._index(routers)

    def _index(self, routers: Sequence[Router]) -> None:
        self.routers = tuple(routers)
        self.starts = {name: _start(self.routers, name) for name in _known_names(self.routers)}
        self.unknown_start = _start(self.routers, None)
        self.shape = _shape(self.dp, self.routers)

    @classmethod
    def install(cls, dp: Dispatcher) -> CommandShortcut | None:
        """Put the shortcut on ``dp``, after its routers are included and as the last outer
        middleware of its messages; None when the dispatcher has message filters of its
        own (they must see every message first)."""
        if dp.message._handler.filters:
            return None
        shortcut = cls(dp.sub_routers, dp)
        dp.message.outer_middleware(shortcut)
        return shortcut

    def _current(self) -> bool:
        """Re-index when routers or handlers were added since (tests add some); False when
        the dispatcher now takes messages itself."""
        if self.dp is None:
            return True
        if self.dp.message.handlers:
            return False
        if _shape(self.dp, self.routers) != self.shape:
            self._index(self.dp.sub_routers)
        return True

    def start_for(self, text: str) -> int:
        """Index of the first router that might take a message with this text (no state)."""
        match = _COMMAND.match(text)
        if match is None:
            return 0
        return self.starts.get(match.group(1).casefold(), self.unknown_start)

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        text = event.text if isinstance(event, Message) else None
        if not text or data.get("raw_state") is not None or not self._current():
            return await handler(event, data)
        start = self.start_for(text)
        if start == 0:
            return await handler(event, data)
        # What aiogram's walk does (Router._propagate_event), from ``start`` on.
        for router in self.routers[start:]:
            response = await router.propagate_event(update_type=_UPDATE_TYPE, event=event, **data)
            if response is not UNHANDLED:
                return response
        return UNHANDLED
