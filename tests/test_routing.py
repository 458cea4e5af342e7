"""Which handler takes a message: aiogram's own walk over our routers, in their order."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import Message, Update

from bot.chat.filters import Is
from bot.infra.updatelog import UpdateTrace
from handlers.device_settings import EditDevice
from handlers.devices import AddDevice
from handlers.payouts import PayoutForm
from tests.fake_bot_api import message_update


@pytest.mark.parametrize(
    ("text", "module"),
    [
        ("/devices", "handlers.devices"),
        ("/stats", "handlers.stats"),
        ("/cancel", "handlers.common"),
        ("/help", "handlers.start"),
        ("/no_such_command", "handlers.fallback"),
    ],
)
async def test_a_command_reaches_its_own_router(
    dp: Dispatcher, bot: Bot, text: str, module: str
) -> None:
    update = Update.model_validate({"update_id": 1, **message_update(4242, text)})
    trace = UpdateTrace.of(update)
    await dp.feed_update(bot, update, trace=trace)
    assert trace.handler.partition(":")[0] == module


@pytest.mark.parametrize(
    ("state", "text", "module"),
    [
        # A command sent mid-flow reaches its own router, wherever the flow's router is.
        (AddDevice.name, "/stats", "handlers.stats"),
        (AddDevice.name, "/payout", "handlers.payouts"),
        (AddDevice.platform, "/settings", "handlers.settings"),
        (EditDevice.lot_size, "/stats", "handlers.stats"),
        (PayoutForm.amount, "/devices", "handlers.devices"),
        (AddDevice.name, "/devices", "handlers.devices"),
        (AddDevice.name, "/cancel", "handlers.common"),
        # What is typed in a flow's state is the flow's.
        (AddDevice.name, "Office MT5", "handlers.devices"),
        (AddDevice.name, "/no_such_command", "handlers.devices"),
        (EditDevice.lot_size, "0.2", "handlers.device_settings"),
        (PayoutForm.amount, "12", "handlers.payouts"),
    ],
)
async def test_in_a_flow_a_command_still_reaches_its_router(
    dp: Dispatcher, bot: Bot, state: State, text: str, module: str
) -> None:
    await dp.fsm.get_context(bot, chat_id=4242, user_id=4242).set_state(state)
    update = Update.model_validate({"update_id": 1, **message_update(4242, text)})
    trace = UpdateTrace.of(update)
    await dp.feed_update(bot, update, trace=trace)
    assert trace.handler.partition(":")[0] == module


class Form(StatesGroup):
    name = State()


async def test_filters_decide_which_handler_takes_a_message(bot: Bot) -> None:
    seen: list[tuple[str, int]] = []
    router = Router()

    def plain_check(message: Message) -> bool:
        return True

    @router.message(Form.name, F.text)
    async def in_form(message: Message) -> None:
        seen.append(("form", message.message_id))

    @router.message(F.text.startswith("/"), plain_check)
    async def command(message: Message) -> None:
        seen.append(("command", message.message_id))

    @router.message(F.photo)
    async def photo(message: Message) -> None:
        seen.append(("photo", message.message_id))

    dp = Dispatcher()
    dp.include_router(router)

    async def feed(update: dict[str, Any]) -> None:
        await dp.feed_raw_update(bot, update)

    await feed({"update_id": 1, **message_update(5, "/go", message_id=11)})
    await feed({"update_id": 2, **message_update(5, "plain text", message_id=12)})
    state = dp.fsm.get_context(bot, chat_id=5, user_id=5)
    await state.set_state(Form.name)
    await feed({"update_id": 3, **message_update(5, "Alice", message_id=13)})
    assert seen == [("command", 11), ("form", 13)]  # 12 matched nothing


def test_every_filter_of_ours_is_awaited_on_the_loop(dp: Dispatcher) -> None:
    """aiogram runs a filter that is a plain callable (a bare ``F...``, a ``State``) on its
    thread pool, a hop per update and handler that costs more than the check: ours are
    ``Is(F...)``, ``StateFilter(...)`` or other ``Filter`` classes (bot/chat/filters.py)."""
    hopping: list[str] = []
    checked = 0
    routers: list[Router] = [dp]
    while routers:
        router = routers.pop()
        routers.extend(router.sub_routers)
        for name, observer in router.observers.items():
            for handler in observer.handlers:
                for item in handler.filters or ():
                    checked += 1
                    if not item.awaitable:
                        hopping.append(f"{router.name}.{name}: {item.callback!r}")
    assert checked > 50
    assert hopping == []


def test_a_bare_magic_filter_would_be_found() -> None:
    router = Router(name="sample")
    router.message.register(lambda message: None, F.text)
    router.message.register(lambda message: None, Is(F.text))
    [bare, wrapped] = router.message.handlers
    assert [f.awaitable for f in bare.filters or ()] == [False]
    assert [f.awaitable for f in wrapped.filters or ()] == [True]
