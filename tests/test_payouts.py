"""/payout: the flow in the chat, admin review, history, and no overdraw under concurrency."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.domain.errors import AppError, InvalidInputError
from bot.domain.payouts import request_payout
from db.models import Payout
from tests.affiliates_support import (
    TRON_ADDRESS,
    account,
    assert_books_balance,
    credit_fill,
    pay_out,
    refer,
    rows,
)
from tests.conftest import ADMIN_ID, Chat, FakeClock
from tests.fake_bot_api import FakeBotAPI, button, buttons

AFFILIATE = 1234
TRADER = 4321
IBAN = "GB82 WEST 1234 5698 7654 32"


async def earn(
    chat: Chat,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: FakeClock,
    lots: str = "100",
) -> None:
    """AFFILIATE gets lots * 1.00 USD available (the hold is over)."""
    await refer(chat, sessionmaker, AFFILIATE, TRADER, clock.now)
    await credit_fill(sessionmaker, settings, TRADER, f"fill-{lots}-{clock.now}", lots, clock.now)
    clock.advance(days=15)


async def start_usdt_payout(chat: Chat, fake_api: FakeBotAPI) -> None:
    """/payout, choose USDT, give a valid address: the bot then asks for the amount."""
    await chat.send(AFFILIATE, "/payout")
    await chat.press(AFFILIATE, button(fake_api.last("sendMessage", AFFILIATE), "USDT"))
    await chat.send(AFFILIATE, TRON_ADDRESS)


async def test_below_minimum_says_what_is_missing(
    chat: Chat,
    settings: Settings,
    clock: FakeClock,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await earn(chat, sessionmaker, settings, clock, lots="20")
    await credit_fill(sessionmaker, settings, TRADER, "fresh", "3", clock.now)
    [text] = await chat.send(AFFILIATE, "/payout")
    assert "Your available balance is 20.00 USD" in text
    assert "Payouts start at 50.00 USD: 30.00 USD more to go" in text
    assert "3.00 USD is still on hold" in text


async def test_full_flow_request_approve_mark_paid(
    chat: Chat,
    fake_api: FakeBotAPI,
    settings: Settings,
    clock: FakeClock,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await earn(chat, sessionmaker, settings, clock)
    [text] = await chat.send(AFFILIATE, "/payout")
    assert "100.00 USD" in text
    methods = fake_api.last("sendMessage", AFFILIATE)
    assert [b["text"] for b in buttons(methods)] == ["USDT (TRC-20)", "Bank transfer (IBAN)"]
    await chat.press(AFFILIATE, button(methods, "Bank"))
    assert "IBAN" in fake_api.texts(AFFILIATE)[-1]
    # A typo in the IBAN is caught; a command mid-flow still works.
    [error] = await chat.send(AFFILIATE, "GB82 WEST 1234 5698 7654 33")
    assert "check digits do not match" in error
    [stats] = await chat.send(AFFILIATE, "/stats")
    assert "affiliate stats" in stats
    [ask] = await chat.send(AFFILIATE, IBAN)
    assert "between 50.00 USD and 100.00 USD" in ask
    assert "All: 100.00 USD" in buttons(fake_api.last("sendMessage", AFFILIATE))[0]["text"]
    assert "more than your available balance" in (await chat.send(AFFILIATE, "100.01"))[0]
    assert "Payouts start at 50.00 USD" in (await chat.send(AFFILIATE, "49.99"))[0]
    [confirm] = await chat.send(AFFILIATE, "60")
    assert "60.00 USD" in confirm and "GB82 WEST 1234 5698 7654 32" in confirm
    assert await rows(sessionmaker, Payout) == []  # nothing filed before confirming
    confirm_call = fake_api.last("sendMessage", AFFILIATE)
    await chat.press(
        AFFILIATE, button(confirm_call, "Confirm"), message_id=confirm_call.result["message_id"]
    )
    [payout] = await rows(sessionmaker, Payout)
    assert (payout.amount_minor, payout.method, payout.destination, payout.state) == (
        6000, "bank_transfer", "GB82WEST12345698765432", "requested",
    )  # fmt: skip
    money = await account(sessionmaker, AFFILIATE)
    assert (money.balance_minor, money.reserved_minor) == (4000, 6000)
    assert f"Request #{payout.id} sent" in fake_api.texts(AFFILIATE)[-1]
    card = fake_api.last("sendMessage", ADMIN_ID)
    assert f"Payout request #{payout.id}" in str(card.text) and "60.00 USD" in str(card.text)
    # A second press of the same Confirm button files nothing more.
    calls = await chat.press(AFFILIATE, button(confirm_call, "Confirm"))
    assert (
        "out of date" in next(c for c in calls if c.method == "answerCallbackQuery").params["text"]
    )
    assert len(await rows(sessionmaker, Payout)) == 1

    # The user cannot press admin buttons.
    calls = await chat.press(AFFILIATE, button(card, "Approve"))
    assert (await rows(sessionmaker, Payout))[0].state == "requested"
    calls = await chat.press(
        ADMIN_ID, button(card, "Approve"), message_id=card.result["message_id"]
    )
    [payout] = await rows(sessionmaker, Payout)
    assert payout.state == "approved" and payout.decided_by == ADMIN_ID
    edited = next(c for c in calls if c.method == "editMessageText")
    assert "approved" in str(edited.text) and button(edited, "Mark paid")
    assert "was approved" in fake_api.texts(AFFILIATE)[-1]
    # Approving twice is refused with the reason.
    calls = await chat.press(ADMIN_ID, button(card, "Approve"))
    answer = next(c for c in calls if c.method == "answerCallbackQuery")
    assert "approved now" in answer.params["text"]

    await chat.press(ADMIN_ID, button(edited, "Mark paid"), message_id=card.result["message_id"])
    assert "transaction reference" in fake_api.texts(ADMIN_ID)[-1]
    replies = await chat.send(ADMIN_ID, "tx <0xabc>")
    assert any("is now paid" in r for r in replies)
    [payout] = await rows(sessionmaker, Payout)
    assert (payout.state, payout.tx_reference, payout.paid_at) == ("paid", "tx <0xabc>", clock.now)
    money = await account(sessionmaker, AFFILIATE)
    assert (money.balance_minor, money.reserved_minor, money.paid_minor) == (4000, 0, 6000)
    told = fake_api.texts(AFFILIATE)[-1]
    assert "was sent to" in told and "tx &lt;0xabc&gt;" in told
    await assert_books_balance(sessionmaker, AFFILIATE)


async def test_reject_asks_reason_and_frees_amount(
    chat: Chat,
    fake_api: FakeBotAPI,
    settings: Settings,
    clock: FakeClock,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await earn(chat, sessionmaker, settings, clock)
    await start_usdt_payout(chat, fake_api)
    await chat.press(AFFILIATE, button(fake_api.last("sendMessage", AFFILIATE), "All"))
    await chat.press(AFFILIATE, button(fake_api.last("sendMessage", AFFILIATE), "Confirm"))
    [payout] = await rows(sessionmaker, Payout)
    assert payout.amount_minor == 10000 and payout.destination == TRON_ADDRESS
    assert (await account(sessionmaker, AFFILIATE)).balance_minor == 0

    [listing] = await chat.send(ADMIN_ID, "/payouts")
    assert "Open payout requests" in listing
    await chat.press(ADMIN_ID, button(fake_api.last("sendMessage", ADMIN_ID), f"#{payout.id}"))
    card = fake_api.last("sendMessage", ADMIN_ID)
    await chat.press(ADMIN_ID, button(card, "Reject"), message_id=card.result["message_id"])
    assert "reason" in fake_api.texts(ADMIN_ID)[-1]
    await chat.send(ADMIN_ID, "Wrong <network>")
    [payout] = await rows(sessionmaker, Payout)
    assert (payout.state, payout.reject_reason) == ("rejected", "Wrong <network>")
    money = await account(sessionmaker, AFFILIATE)
    assert (money.balance_minor, money.reserved_minor) == (10000, 0)
    assert "rejected: Wrong &lt;network&gt;" in fake_api.texts(AFFILIATE)[-1]
    redrawn = fake_api.last("editMessageText", ADMIN_ID)
    assert "rejected" in str(redrawn.text) and buttons(redrawn) == []
    assert await chat.send(ADMIN_ID, "/payouts") == ["No payout requests are waiting."]
    await assert_books_balance(sessionmaker, AFFILIATE)


async def test_history_is_paged(
    chat: Chat,
    fake_api: FakeBotAPI,
    settings: Settings,
    clock: FakeClock,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    assert await chat.send(AFFILIATE, "/payout history") == [
        "You have not requested a payout yet. /payout starts one."
    ]
    await earn(chat, sessionmaker, settings, clock, lots="7")
    for _ in range(7):
        await pay_out(sessionmaker, settings, AFFILIATE, 100, clock.now)
        clock.advance(minutes=1)
    [page1] = await chat.send(AFFILIATE, "/payout history")
    assert "(page 1 of 2)" in page1 and page1.count("#") == 5 and "#7 " in page1
    first = fake_api.last("sendMessage", AFFILIATE)
    assert [b["text"] for b in buttons(first)] == ["Next ›"]
    calls = await chat.press(AFFILIATE, button(first, "Next"))
    [page2] = [c for c in calls if c.method == "editMessageText"]
    assert "(page 2 of 2)" in str(page2.text) and "#1 " in str(page2.text)
    assert [b["text"] for b in buttons(page2)] == ["‹ Prev"]


@pytest.mark.parametrize("amounts", [(6000, 6000), (10000, 10000), (7000, 3001)])
async def test_two_requests_at_once_never_overdraw(
    chat: Chat,
    settings: Settings,
    clock: FakeClock,
    sessionmaker: async_sessionmaker[AsyncSession],
    amounts: tuple[int, int],
) -> None:
    await earn(chat, sessionmaker, settings, clock)  # 100.00 USD available

    async def request(key: str, amount: int) -> object:
        # Separate sessions and transactions, as two updates or two instances would have.
        try:
            async with sessionmaker.begin() as session:
                return await request_payout(
                    session,
                    settings,
                    user_id=AFFILIATE,
                    request_key=key,
                    method="usdt_trc20",
                    destination=TRON_ADDRESS,
                    amount_minor=amount,
                    now=clock.now,
                )
        except AppError as exc:
            return exc

    results = await asyncio.gather(request("a", amounts[0]), request("b", amounts[1]))
    failures = [r for r in results if isinstance(r, InvalidInputError)]
    assert len(failures) == 1, results
    filed = await rows(sessionmaker, Payout)
    assert len(filed) == 1
    money = await account(sessionmaker, AFFILIATE)
    assert money.balance_minor == 10000 - filed[0].amount_minor >= 0
    assert money.reserved_minor == filed[0].amount_minor
    await assert_books_balance(sessionmaker, AFFILIATE)


async def test_double_confirm_through_the_dispatcher_files_once(
    chat: Chat,
    fake_api: FakeBotAPI,
    settings: Settings,
    clock: FakeClock,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await earn(chat, sessionmaker, settings, clock)
    await start_usdt_payout(chat, fake_api)
    await chat.send(AFFILIATE, "80")
    data = button(fake_api.last("sendMessage", AFFILIATE), "Confirm")
    await asyncio.gather(chat.press(AFFILIATE, data), chat.press(AFFILIATE, data))
    [payout] = await rows(sessionmaker, Payout)
    assert payout.amount_minor == 8000
    money = await account(sessionmaker, AFFILIATE)
    assert (money.balance_minor, money.reserved_minor) == (2000, 8000)
