"""Admins in the chat: /signal syntax, preview, Send / Discard; /signals management."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.chat import texts
from bot.chat.callbacks import ManageAction, SignalManageCb
from bot.container import Container
from bot.domain.signal_syntax import parse_duration, parse_levels, parse_signal_command
from db.models import Signal
from tests.conftest import ADMIN_ID, Chat, FakeClock
from tests.fake_bot_api import Call, FakeBotAPI
from tests.fake_bot_api import buttons as keyboard
from tests.signals_support import add_users

USER = 9001


@pytest.fixture
async def users(sessionmaker: async_sessionmaker[AsyncSession], clock: FakeClock) -> None:
    await add_users(sessionmaker, [USER], clock.now)


async def count_signals(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(Signal)) or 0)


def buttons(call: Call) -> list[tuple[str, str]]:
    return [(b["text"], b["callback_data"]) for b in keyboard(call)]


def answer_of(calls: list[Call]) -> str | None:
    [answer] = [c for c in calls if c.method == "answerCallbackQuery"]
    return answer.params.get("text")


# ---------------------------------------------------------------- the short syntax


def test_parse_signal_command() -> None:
    assert parse_signal_command("EURUSD buy sl 1.0800 tp 1.0950 tp 1.1000") == {
        "symbol": "EURUSD",
        "side": "buy",
        "stop_loss": "1.0800",
        "take_profit": ["1.0950", "1.1000"],
    }
    assert parse_signal_command("XAUUSD SELL stop 2350.5 exp 2h TP 2300  Gold  rejection ") == {
        "symbol": "XAUUSD",
        "side": "SELL",
        "order_type": "stop",
        "entry": "2350.5",
        "expires_in": 7200,
        "take_profit": ["2300"],
        "comment": "Gold  rejection",
    }
    assert parse_signal_command("EURUSD buy limit 1.0850 exp 90s")["expires_in"] == 90
    assert parse_signal_command("EURUSD buy market")["order_type"] == "market"
    assert [parse_duration(t) for t in ("90s", "15m", "2h", "1d", "15M")] == [
        90,
        900,
        7200,
        86400,
        900,
    ]
    assert parse_levels("sl 1.07 tp 1.2 tp 1.3") == {
        "stop_loss": "1.07",
        "take_profit": ["1.2", "1.3"],
    }
    assert parse_levels("SL none") == {"stop_loss": None}
    assert parse_levels("tp none") == {"take_profit": []}


@pytest.mark.parametrize(
    ("command", "problem"),
    [
        ("/signal", "Write the symbol and the side after /signal."),
        ("/signal EURUSD", "After the symbol comes the side: buy or sell."),
        ("/signal EURUSD long sl 1.08", "“long” is not a side: write buy or sell."),
        ("/signal EURUSD buy sl", "“sl” needs a price after it."),
        ("/signal EURUSD buy exp", "“exp” needs a duration such as 15m after it."),
        ("/signal EURUSD buy exp 15", "“15” after exp is not a duration"),
        ("/signal EURUSD buy sl 1.08 sl 1.07", "sl is given twice."),
        ("/signal EURUSD buy limit 1.08 stop 1.09", "order type is given twice."),
        ("/signal EURUSD buy sl 1.o8", "sl: must be a decimal number"),
        ("/signal EURUSD buy limit 1.0850 sl 1.09", "sl: must be below the entry 1.085 for a buy"),
        ("/signal EURUSD sell limit 1.0850 tp 1.09", "tp: 1.09 must be below the entry 1.085"),
        ("/signal EUR/USD buy", "symbol: must be 1-32 characters"),
        ("/signal EURUSD buy exp 1d tp 1.1 " + "x" * 501, "comment: must be at most 500"),
        ("/signal EURUSD buy exp 30d", "exp: must be between 30 and 604800 seconds"),
    ],
)
async def test_syntax_errors_say_what_and_show_an_example(
    chat: Chat, sessionmaker: async_sessionmaker[AsyncSession], command: str, problem: str
) -> None:
    [reply] = await chat.send(ADMIN_ID, command)
    assert problem in reply
    assert "Write it like this:\n<code>/signal EURUSD buy sl 1.0800 tp 1.0950" in reply
    assert await count_signals(sessionmaker) == 0


async def test_non_admins_are_refused(
    chat: Chat, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    for command in ("/signal EURUSD buy", "/signals"):
        assert await chat.send(USER, command) == [str(texts.ADMIN_ONLY)]
    assert await chat.send(USER, "/nonsense") == [
        "I don't know that command. /help lists what I can do."
    ]
    assert await count_signals(sessionmaker) == 0


# ---------------------------------------------------------------- preview, send, discard


@pytest.mark.usefixtures("users")
async def test_preview_then_send(
    chat: Chat,
    container: Container,
    fake_api: FakeBotAPI,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    [preview] = await chat.send(
        ADMIN_ID, "/signal EURUSD buy limit 1.0850 sl 1.0800 tp 1.0950 tp 1.1 exp 2h Retest"
    )
    assert "Preview" in preview and "BUY EURUSD" in preview and "Retest" in preview
    assert "Valid 2 h" in preview
    assert "It goes to 2 users when you press Send." in preview  # the admin and USER
    call = fake_api.last("sendMessage", ADMIN_ID)
    [(send_text, send_data), (discard_text, _)] = buttons(call)
    assert (send_text, discard_text) == ("📤 Send", "🗑 Discard")
    assert await count_signals(sessionmaker) == 0
    assert fake_api.sent("sendMessage", USER) == []

    mid = call.result["message_id"]
    calls = await chat.press(ADMIN_ID, send_data, message_id=mid)
    [edit] = [c for c in calls if c.method == "editMessageText"]
    assert "Sent BUY EURUSD" in edit.params["text"] and "to 2 users" in edit.params["text"]
    assert "reply_markup" not in edit.params
    await container.outbox_worker.drain()
    async with sessionmaker() as session:
        signal = (await session.scalars(select(Signal))).one()
    assert (signal.source, signal.created_by_id, signal.order_type) == ("admin", ADMIN_ID, "limit")
    assert signal.entry == Decimal("1.085") and signal.take_profit == ["1.095", "1.1"]
    assert signal.comment == "Retest"
    assert "BUY EURUSD" in fake_api.last("sendMessage", USER).params["text"]

    # The same Send again posts nothing twice.
    calls = await chat.press(ADMIN_ID, send_data, message_id=mid)
    assert answer_of(calls) == "This preview is gone; send /signal again."
    assert await count_signals(sessionmaker) == 1


@pytest.mark.usefixtures("users")
async def test_discard(
    chat: Chat, fake_api: FakeBotAPI, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await chat.send(ADMIN_ID, "/signal EURUSD sell")
    call = fake_api.last("sendMessage", ADMIN_ID)
    [(_, send_data), (_, discard_data)] = buttons(call)
    calls = await chat.press(ADMIN_ID, discard_data, message_id=call.result["message_id"])
    [edit] = [c for c in calls if c.method == "editMessageText"]
    assert edit.params["text"] == "Discarded. Nothing was sent."
    calls = await chat.press(ADMIN_ID, send_data)
    assert answer_of(calls) == "This preview is gone; send /signal again."
    assert await count_signals(sessionmaker) == 0
    assert fake_api.sent("sendMessage", USER) == []


# ---------------------------------------------------------------- /signals


async def settle(container: Container) -> None:
    """Let broadcasts and message edits finish, so they don't land in the next exchange."""
    await container.outbox_worker.drain()


async def _post(chat: Chat, fake_api: FakeBotAPI, container: Container, text: str) -> None:
    await chat.send(ADMIN_ID, text)
    [(_, send_data), _] = buttons(fake_api.last("sendMessage", ADMIN_ID))
    await chat.press(ADMIN_ID, send_data)
    await settle(container)


@pytest.mark.usefixtures("users")
async def test_signals_list_close_cancel_modify(
    chat: Chat,
    container: Container,
    fake_api: FakeBotAPI,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    assert await chat.send(ADMIN_ID, "/signals") == [
        "There are no open signals. Post one with /signal."
    ]
    await _post(chat, fake_api, container, "/signal EURUSD buy sl 1.08 tp 1.1")
    await _post(chat, fake_api, container, "/signal GBPUSD sell sl 1.3 tp 1.2")
    async with sessionmaker() as session:
        eur = (await session.scalars(select(Signal).where(Signal.symbol == "EURUSD"))).one()

    [listing] = await chat.send(ADMIN_ID, "/signals")
    assert "Open signals</b> (2)" in listing
    labels = [text for text, _ in buttons(fake_api.last("sendMessage", ADMIN_ID))]
    assert labels[0].startswith("SELL GBPUSD") and labels[1].startswith("BUY EURUSD")

    view = SignalManageCb(action=ManageAction.VIEW, signal=eur.id).pack()
    calls = await chat.press(ADMIN_ID, view)
    [edit] = [c for c in calls if c.method == "editMessageText"]
    assert eur.public_id in edit.params["text"] and "2 recipients" in edit.params["text"]
    assert [t for t, _ in buttons(edit)] == [
        "✏️ Modify SL/TP",
        "Close 25%",
        "Close 50%",
        "Close 100%",
        "🚫 Cancel signal",
        "« All open signals",
    ]

    close = SignalManageCb(action=ManageAction.CLOSE, signal=eur.id, percent=50).pack()
    calls = await chat.press(ADMIN_ID, close)
    assert answer_of(calls) == "Closed 50% of what remained."
    calls = await chat.press(ADMIN_ID, close)
    assert answer_of(calls) == "Closed 50% of what remained."
    await settle(container)
    forged = SignalManageCb(action=ManageAction.CLOSE, signal=eur.id, percent=70).pack()
    assert answer_of(await chat.press(ADMIN_ID, forged)) == "This is not available any more."
    async with sessionmaker() as session:
        row = await session.get(Signal, eur.id)
        assert row is not None and row.closed_fraction == Decimal("0.75")

    # Modify through the levels input.
    modify = SignalManageCb(action=ManageAction.MODIFY, signal=eur.id).pack()
    calls = await chat.press(ADMIN_ID, modify)
    [prompt] = [c for c in calls if c.method == "sendMessage"]
    assert "Send the new levels for BUY EURUSD" in prompt.params["text"]
    [reply] = await chat.send(ADMIN_ID, "sl 1.2")
    assert "tp: 1.1 must be above the stop loss 1.2 for a buy" in reply
    [reply] = await chat.send(ADMIN_ID, "sl")
    assert "“sl” needs a price (or none) after it." in reply
    answers = await chat.send(ADMIN_ID, "sl 1.0825 tp 1.11 tp 1.12")
    [reply] = [text for text in answers if "Levels updated" in text]
    assert "<code>1.0825</code>" in reply
    # The admin's own copy of the signal was edited to the new levels as well.
    assert any("<code>1.0825</code>" in text and text != reply for text in answers)
    await settle(container)
    async with sessionmaker() as session:
        row = await session.get(Signal, eur.id)
        assert row is not None
        assert (row.stop_loss, row.take_profit) == (Decimal("1.0825"), ["1.11", "1.12"])
    # The input mode is over: text is just text again.
    assert await chat.send(ADMIN_ID, "sl 1.07") == [
        "I answer commands and buttons. /help lists what I can do."
    ]
    assert "<code>1.0825</code>" in fake_api.texts(USER)[-1]

    cancel = SignalManageCb(action=ManageAction.CANCEL, signal=eur.id).pack()
    calls = await chat.press(ADMIN_ID, cancel)
    assert answer_of(calls) == "Signal cancelled."
    await settle(container)
    calls = await chat.press(ADMIN_ID, cancel)
    [answer] = [c for c in calls if c.method == "answerCallbackQuery"]
    assert answer.params["text"] == "This signal is cancelled; it cannot be changed any more."
    assert answer.params.get("show_alert") is True
    calls = await chat.press(ADMIN_ID, close)
    assert "cannot be changed" in str(answer_of(calls))

    [listing] = await chat.send(ADMIN_ID, "/signals")
    assert "Open signals</b> (1)" in listing
    close_all = SignalManageCb(action=ManageAction.CLOSE, signal=eur.id + 1, percent=100)
    calls = await chat.press(ADMIN_ID, close_all.pack())
    assert answer_of(calls) == "Signal closed."
    await settle(container)
    back = SignalManageCb(action=ManageAction.LIST).pack()
    calls = await chat.press(ADMIN_ID, back)
    [edit] = [c for c in calls if c.method == "editMessageText"]
    assert edit.params["text"] == "There are no open signals. Post one with /signal."


@pytest.mark.usefixtures("users")
async def test_modify_input_can_be_cancelled(
    chat: Chat, container: Container, fake_api: FakeBotAPI, sessionmaker: Any
) -> None:
    await _post(chat, fake_api, container, "/signal EURUSD buy sl 1.08")
    async with sessionmaker() as session:
        signal = (await session.scalars(select(Signal))).one()
    await chat.press(ADMIN_ID, SignalManageCb(action=ManageAction.MODIFY, signal=signal.id).pack())
    assert await chat.send(ADMIN_ID, "/cancel") == ["Cancelled. Nothing was changed."]
    assert await chat.send(ADMIN_ID, "sl 1.07") == [
        "I answer commands and buttons. /help lists what I can do."
    ]
    async with sessionmaker() as session:
        row = await session.get(Signal, signal.id)
        assert row is not None and row.stop_loss == Decimal("1.08")
