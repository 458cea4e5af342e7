"""No filter or handler of ours runs on aiogram's thread pool (bot/fast_filters.py)."""

from __future__ import annotations

import threading
from typing import Any

from aiogram import Bot, Dispatcher, F, Router
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import Message

from bot.fast_filters import handler_objects, run_filters_inline, sync_filters
from tests.fake_bot_api import message_update


def test_the_dispatcher_has_no_filter_or_handler_left_for_a_thread(dp: Dispatcher) -> None:
    assert sync_filters(dp) == []
    handlers = [h for h in handler_objects(dp) if h.callback.__name__ != "<lambda>"]
    assert len(handlers) > 50  # every handler of every router was looked at
    assert [h.callback for h in handlers if not h.awaitable] == []


class Form(StatesGroup):
    name = State()


async def test_inline_filters_decide_as_before_on_the_loops_thread(bot: Bot) -> None:
    seen: list[tuple[str, int]] = []
    threads: set[int] = set()
    router = Router()

    def on_loop(message: Message) -> bool:
        threads.add(threading.get_ident())
        return True

    @router.message(Form.name, F.text)
    async def in_form(message: Message) -> None:
        seen.append(("form", message.message_id))

    @router.message(F.text.startswith("/"), on_loop)
    async def command(message: Message) -> None:
        seen.append(("command", message.message_id))

    @router.message(F.photo)
    async def photo(message: Message) -> None:
        seen.append(("photo", message.message_id))

    dp = Dispatcher()
    dp.include_router(router)
    before = sync_filters(dp)
    assert len(before) == 5  # the State, four plain callables: all would go to a thread
    assert run_filters_inline(dp) == 5
    assert sync_filters(dp) == []

    async def feed(update: dict[str, Any]) -> None:
        await dp.feed_raw_update(bot, update)

    await feed({"update_id": 1, **message_update(5, "/go", message_id=11)})
    await feed({"update_id": 2, **message_update(5, "plain text", message_id=12)})
    state = dp.fsm.get_context(bot, chat_id=5, user_id=5)
    await state.set_state(Form.name)
    await feed({"update_id": 3, **message_update(5, "Alice", message_id=13)})
    assert seen == [("command", 11), ("form", 13)]  # 12 matched nothing
    assert threads == {threading.get_ident()}
