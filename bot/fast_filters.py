"""Synchronous filters run on the event loop, not on aiogram's thread pool.

An update visits the routers in order and each handler's filters until one matches.
aiogram calls a filter that is not a coroutine (a magic filter such as ``F.text``, a
``State`` used as a filter) through ``asyncio.to_thread``: a round trip to the thread
pool for an attribute lookup, paid by every message that passes such a handler.
``run_filters_inline`` wraps each, once, when the dispatcher is built (bot/factory.py),
in a coroutine that calls it directly. A filter must therefore never block; ours are
pure checks of the update (tests/test_routing.py keeps it that way).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from aiogram import Router
from aiogram.dispatcher.event.handler import FilterObject, HandlerObject


def _inline(callback: Callable[..., Any]) -> Callable[..., Any]:
    async def call_inline(*args: Any, **kwargs: Any) -> Any:
        return callback(*args, **kwargs)

    call_inline.__wrapped__ = callback  # type: ignore[attr-defined]  # what it runs
    return call_inline


def handler_objects(router: Router) -> Iterator[HandlerObject]:
    """Every handler of ``router`` and its sub-routers, and each observer's own filters."""
    for observer in router.observers.values():
        root = getattr(observer, "_handler", None)  # router.message.filter(...) lives here
        if isinstance(root, HandlerObject):
            yield root
        yield from observer.handlers
    for sub_router in router.sub_routers:
        yield from handler_objects(sub_router)


def sync_filters(router: Router) -> list[FilterObject]:
    """The filters aiogram would run in a thread."""
    return [
        event_filter
        for handler in handler_objects(router)
        for event_filter in handler.filters or ()
        if not event_filter.awaitable
    ]


def run_filters_inline(router: Router) -> int:
    """Make every synchronous filter of ``router`` (recursively) run inline; return how many."""
    changed = sync_filters(router)
    for event_filter in changed:
        # The parameters aiogram passes were read from the original signature.
        event_filter.callback = _inline(event_filter.callback)
        event_filter.awaitable = True
    return len(changed)
