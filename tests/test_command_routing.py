"""A command message starts its walk at the first router that could take it
(bot/command_routing.py), and lands on exactly the handler aiogram's full walk picks."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from aiogram import BaseMiddleware, Bot, Dispatcher, F, Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.state import State, StatesGroup, default_state
from aiogram.types import Message, TelegramObject

from bot.command_routing import CommandShortcut
from bot.fast_filters import run_filters_inline
from tests.fake_bot_api import message_update


class Form(StatesGroup):
    name = State()
    amount = State()


Seen = list[str]


def _routers(seen: Seen) -> list[Router]:
    """Routers shaped like ours: state steps, commands, content handlers, fallbacks."""

    def record(name: str) -> Callable[..., Any]:
        async def handler(message: Message) -> None:
            seen.append(name)

        handler.__name__ = name
        return handler

    forms = Router(name="forms")
    forms.message(Form.name, F.text)(record("forms.name"))
    forms.message(StateFilter(Form), F.text)(record("forms.any_step"))
    forms.message(Command("cancel"))(record("forms.cancel"))

    payments = Router(name="payments")
    payments.message(F.successful_payment)(record("payments.paid"))
    payments.message(Command("pay", "Refund", ignore_case=True))(record("payments.pay"))

    admin = Router(name="admin")
    admin.message.filter(F.from_user.id == 1)  # a root filter: the handlers still decide
    admin.message(Command("ban"))(record("admin.ban"))

    idle = Router(name="idle")  # only without a state: it must never be skipped then
    idle.message(default_state, F.text.startswith("/dev"))(record("idle.dev"))

    late = Router(name="late")
    late.message(Command("devices"))(record("late.devices"))
    late.message(Command(re.compile(r"dev\w+")))(record("late.pattern"))

    echo = Router(name="echo")
    echo.message(F.text)(record("echo.text"))

    tail = Router(name="tail")
    tail.message(Command("tail"))(record("tail.tail"))
    return [forms, payments, admin, idle, late, echo, tail]


def _dispatcher(seen: Seen, *, shortcut: bool) -> Dispatcher:
    dp = Dispatcher()
    dp.include_routers(*_routers(seen))
    run_filters_inline(dp)
    if shortcut:
        assert CommandShortcut.install(dp) is not None
    return dp


def test_each_command_starts_at_the_first_router_that_could_take_it() -> None:
    dp = _dispatcher([], shortcut=True)
    shortcut = dp.message.outer_middleware[-1]
    assert isinstance(shortcut, CommandShortcut)
    # forms' state handlers never match without a state, and /cancel is theirs;
    # payments asks for a payment or other commands; admin's handlers want /ban only.
    assert shortcut.start_for("/pay now") == 1
    assert shortcut.start_for("/REFUND") == 1  # ignore_case: casefolded names
    assert shortcut.start_for("/ban 42") == 2
    assert shortcut.start_for("/cancel") == 0
    # A handler for "no state" with a text filter may take any command.
    assert shortcut.start_for("/devices@some_bot") == 3
    assert shortcut.start_for("/tail") == 3
    assert shortcut.start_for("/nobody_knows") == 3
    # Without it, a pattern command may match any name: its router is the latest start.
    routers = _routers([])
    without_idle = CommandShortcut([r for r in routers if r.name != "idle"])
    assert without_idle.start_for("/tail") == 3
    assert without_idle.start_for("/ban") == 2
    assert shortcut.start_for("plain text") == 0
    assert shortcut.start_for("/") == 0


def test_a_router_with_sub_routers_or_its_own_outer_middleware_is_never_skipped() -> None:
    class Passing(BaseMiddleware):
        async def __call__(
            self,
            handler: Callable[[TelegramObject, dict[str, Any]], Any],
            event: TelegramObject,
            data: dict[str, Any],
        ) -> Any:
            return await handler(event, data)

    first, nested, watched, target = (Router(name=n) for n in ("a", "b", "c", "d"))
    first.include_router(nested)
    watched.message.outer_middleware(Passing())
    target.message(Command("go"))(lambda message: None)
    assert CommandShortcut([first, target]).start_for("/go") == 0
    assert CommandShortcut([watched, target]).start_for("/go") == 0
    assert CommandShortcut([Router(), target]).start_for("/go") == 1
    # Magic that asks for another kind of content is provably false for a text message;
    # anything else about the message is not.
    photos, texts, captions = Router(), Router(), Router()
    photos.message(F.photo)(lambda message: None)
    texts.message(F.text)(lambda message: None)
    captions.message(F.caption.startswith("/"))(lambda message: None)
    for router in (photos, texts, captions):
        run_filters_inline(router)
    assert CommandShortcut([photos, target]).start_for("/go") == 1
    assert CommandShortcut([texts, target]).start_for("/go") == 0
    assert CommandShortcut([captions, target]).start_for("/go") == 0


async def test_handlers_and_routers_added_after_the_shortcut_are_seen(bot: Bot) -> None:
    seen: Seen = []
    dp = Dispatcher()
    dp.include_routers(*(r for r in _routers(seen) if r.name in {"forms", "payments", "tail"}))
    assert CommandShortcut.install(dp) is not None
    late_router = Router(name="added")

    @late_router.message(Command("added"))
    async def added(message: Message) -> None:
        seen.append("added")

    dp.include_router(late_router)
    await dp.feed_raw_update(bot, {"update_id": 1, **message_update(1, "/added")})

    @dp.message(Command("ban"))
    async def own(message: Message) -> None:
        seen.append("dispatcher.ban")

    await dp.feed_raw_update(bot, {"update_id": 2, **message_update(1, "/ban")})
    assert seen == ["added", "dispatcher.ban"]

    filtered = Dispatcher()
    filtered.message.filter(F.chat.type == "private")
    assert CommandShortcut.install(filtered) is None


TEXTS = [
    "/pay",
    "/Refund 5",
    "/refund",
    "/ban 7",
    "/cancel",
    "/devices",
    "/Devices",
    "/devicesx",
    "/tail",
    "/tail@other_bot",
    "/unknown",
    "hello",
    "/",
]


@pytest.mark.parametrize("state", [None, Form.name, Form.amount])
async def test_the_shortcut_picks_the_same_handler_as_the_full_walk(
    bot: Bot, state: State | None
) -> None:
    picked: dict[bool, Seen] = {}
    for shortcut in (False, True):
        seen: Seen = []
        dp = _dispatcher(seen, shortcut=shortcut)
        for n, text in enumerate(TEXTS, start=1):
            context = dp.fsm.get_context(bot, chat_id=1, user_id=1)
            await context.set_state(state)
            before = len(seen)
            await dp.feed_raw_update(bot, {"update_id": n, **message_update(1, text)})
            if len(seen) == before:
                seen.append("unhandled")
        picked[shortcut] = seen
    assert picked[True] == picked[False]
    assert len(picked[True]) == len(TEXTS)
    if state is None:
        assert picked[True][:6] == [
            "payments.pay",
            "payments.pay",
            "payments.pay",
            "admin.ban",
            "forms.cancel",
            "idle.dev",
        ]
        assert picked[True][TEXTS.index("/Devices")] == "echo.text"
        assert picked[True][TEXTS.index("/tail")] == "echo.text"


def test_our_dispatcher_sends_devices_straight_to_its_router(dp: Dispatcher) -> None:
    shortcut = dp.message.outer_middleware[-1]
    assert isinstance(shortcut, CommandShortcut)
    names = [router.name for router in shortcut.routers]
    assert names[shortcut.start_for("/devices")] == "handlers.devices"
    assert names[shortcut.start_for("/stats")] == "handlers.stats"
    assert names[shortcut.start_for("/cancel")] == "handlers.common"
    assert names[shortcut.start_for("/no_such_command")] == "handlers.fallback"
