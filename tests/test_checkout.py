"""/subscribe, Stars invoices, pre-checkout, payments credited once, /paysupport, /refund."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.domain.checkout import SoldPlan
from bot.domain.subscriptions import has_active_subscription
from db.models import Commission, Payment
from tests.affiliates_support import (
    account,
    assert_books_balance,
    pay,
    pay_out,
    refer,
    rows,
    subscription,
)
from tests.conftest import ADMIN_ID, Chat, FakeClock
from tests.fake_bot_api import FakeApiError, FakeBotAPI, pre_checkout_update

USER = 5005
REFERRER = 6006


async def test_subscribe_lists_plans_and_sends_stars_invoice(
    chat: Chat, fake_api: FakeBotAPI, settings: Settings
) -> None:
    [text] = await chat.send(USER, "/subscribe")
    assert "no subscription yet" in text
    markup = fake_api.last("sendMessage", USER).params["reply_markup"]
    labels = [row[0]["text"] for row in markup["inline_keyboard"]]
    assert labels == ["1 month · 250 ⭐ · 30 days", "3 months · 650 ⭐ · 90 days",
                      "12 months · 2300 ⭐ · 365 days"]  # fmt: skip
    await chat.press(USER, markup["inline_keyboard"][1][0]["callback_data"])
    invoice = fake_api.last("sendInvoice", USER)
    assert invoice.params["currency"] == "XTR"
    assert invoice.params.get("provider_token", "") == ""
    assert invoice.params["prices"] == [{"label": "3 months", "amount": 650}]
    assert invoice.params["payload"] == "sub:quarter:650:90"


async def test_removed_plan_button_refused(chat: Chat, fake_api: FakeBotAPI) -> None:
    calls = await chat.press(USER, "plan:gone")
    [answer] = [c for c in calls if c.method == "answerCallbackQuery"]
    assert "not on sale" in answer.params["text"]
    assert fake_api.sent("sendInvoice") == []


@pytest.mark.parametrize(
    ("payload", "amount", "currency", "error"),
    [
        ("sub:month:250:30", 250, "XTR", None),
        ("sub:month:200:30", 200, "XTR", "price of this plan has changed"),
        ("sub:month:250:30", 200, "XTR", "price of this plan has changed"),
        ("sub:month:250:31", 250, "XTR", "price of this plan has changed"),
        ("sub:weekly:50:7", 50, "XTR", "not on sale any more"),
        ("garbage", 250, "XTR", "not valid"),
        ("sub:month:250:30", 250, "USD", "not valid"),
    ],
)
async def test_pre_checkout_checks_plan_and_price(
    chat: Chat, fake_api: FakeBotAPI, payload: str, amount: int, currency: str, error: str | None
) -> None:
    await chat.feed(
        pre_checkout_update(USER, payload=payload, total_amount=amount, currency=currency)
    )
    answer = fake_api.last("answerPreCheckoutQuery")
    assert answer.params["ok"] is (error is None)
    if error is None:
        assert "error_message" not in answer.params
    else:
        assert error in answer.params["error_message"]


async def test_payment_delivered_twice_and_out_of_order(
    chat: Chat,
    fake_api: FakeBotAPI,
    settings: Settings,
    clock: FakeClock,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await refer(chat, sessionmaker, REFERRER, USER, clock.now)
    # The later purchase arrives first, then the earlier one, then both again.
    first = await pay(chat, settings, USER, "charge-B", "quarter")
    assert len(first) == 1 and "Payment received: 650 ⭐" in first[0]
    assert "2026-04-01 12:00 UTC" in first[0]  # 90 days from 2026-01-01 12:00
    clock.advance(hours=1)
    second = await pay(chat, settings, USER, "charge-A", "month")
    assert "2026-05-01 12:00 UTC" in second[0]  # +30 days after the current expiry
    assert await pay(chat, settings, USER, "charge-B", "quarter") == []
    assert await pay(chat, settings, USER, "charge-A", "month") == []
    payments = await rows(sessionmaker, Payment)
    assert sorted(p.charge_id for p in payments) == ["charge-A", "charge-B"]
    sub = await subscription(sessionmaker, USER)
    assert sub is not None and sub.expires_at == clock.now - timedelta(hours=1) + timedelta(
        days=120
    )
    # One commission per payment: 650 Stars * 13.00 USD/1000 * 10% = 84.5 -> 84 cents.
    commissions = await rows(sessionmaker, Commission)
    assert sorted((c.source_id, c.amount_minor, c.state) for c in commissions) == [
        ("charge-A", 32, "pending"), ("charge-B", 84, "pending"),
    ]  # fmt: skip
    earned = [t for t in fake_api.texts(REFERRER) if "you earned" in t]
    assert len(earned) == 2 and "0.84 USD" in earned[0]
    async with sessionmaker() as session:
        assert await has_active_subscription(session, USER, clock.now)
        assert not await has_active_subscription(session, USER, clock.now + timedelta(days=121))
        assert not await has_active_subscription(session, REFERRER, clock.now)


async def test_subscribe_shows_current_plan(
    chat: Chat, settings: Settings, clock: FakeClock
) -> None:
    await pay(chat, settings, USER, "charge-1")
    [text] = await chat.send(USER, "/subscribe")
    assert "Your plan: <b>1 month</b>, active until 2026-01-31 12:00 UTC" in text
    clock.advance(days=31)
    [text] = await chat.send(USER, "/subscribe")
    assert "ended on 2026-01-31 12:00 UTC" in text


async def test_paysupport_lists_payments_and_forwards_questions(
    chat: Chat, fake_api: FakeBotAPI, settings: Settings
) -> None:
    await pay(chat, settings, USER, "charge-xyz")
    [text] = await chat.send(USER, "/paysupport")
    assert "charge-xyz" in text and "250 ⭐" in text
    await chat.send(USER, "/paysupport I was charged <twice>", first_name="Ann")
    assert "sent to the admins" in fake_api.texts(USER)[-1]
    question = fake_api.texts(ADMIN_ID)[-1]
    assert "I was charged &lt;twice&gt;" in question and str(USER) in question


async def test_refund_is_admin_only(chat: Chat, fake_api: FakeBotAPI, settings: Settings) -> None:
    await pay(chat, settings, USER, "charge-1")
    assert await chat.send(USER, "/refund charge-1") == ["This command is for admins."]
    assert fake_api.sent("refundStarPayment") == []
    assert await chat.send(USER, "/payouts") == ["This command is for admins."]


async def test_refund_after_commission_paid_out_leaves_negative_balance(
    chat: Chat,
    fake_api: FakeBotAPI,
    settings: Settings,
    clock: FakeClock,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await refer(chat, sessionmaker, REFERRER, USER, clock.now)
    await pay(chat, settings, USER, "charge-1", "year")  # 2300 * 1.3 * 10% = 299 cents
    clock.advance(days=15)
    # The hold is over: the commission is available, then paid out.
    await pay_out(sessionmaker, settings, REFERRER, 299, clock.now)
    [commission] = await rows(sessionmaker, Commission)
    assert commission.state == "paid"
    replies = await chat.send(ADMIN_ID, "/refund charge-1")
    assert "Refunded 2300 ⭐" in replies[0] and "reversed (it was paid)" in replies[0]
    refund = fake_api.last("refundStarPayment")
    assert refund.params["user_id"] == USER
    assert refund.params["telegram_payment_charge_id"] == "charge-1"
    [payment] = await rows(sessionmaker, Payment)
    assert payment.refunded_at == clock.now and payment.refunded_by == ADMIN_ID
    [commission] = await rows(sessionmaker, Commission)
    assert commission.state == "reversed"
    money = await account(sessionmaker, REFERRER)
    assert (money.balance_minor, money.reserved_minor, money.paid_minor) == (-299, 0, 299)
    sub = await subscription(sessionmaker, USER)
    assert sub is not None and sub.expires_at == clock.now  # 365 days taken back: ends now
    assert "was refunded" in fake_api.texts(USER)[-1]
    assert "-2.99 USD" in fake_api.texts(REFERRER)[-1]
    # Twice: refused, Telegram not asked again.
    assert await chat.send(ADMIN_ID, "/refund charge-1") == ["That payment was refunded already."]
    assert len(fake_api.sent("refundStarPayment")) == 1
    # Future earnings are netted against the debt.
    await pay(chat, settings, USER, "charge-2", "year")
    clock.advance(days=15)
    [stats] = await chat.send(REFERRER, "/stats")
    assert "Balance available for /payout: 0.00 USD" in stats
    await assert_books_balance(sessionmaker, REFERRER)


async def test_refund_pending_commission_and_subscription_shortened(
    chat: Chat,
    fake_api: FakeBotAPI,
    settings: Settings,
    clock: FakeClock,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await refer(chat, sessionmaker, REFERRER, USER, clock.now)
    await pay(chat, settings, USER, "c-month", "month")
    await pay(chat, settings, USER, "c-quarter", "quarter")
    await chat.send(ADMIN_ID, "/refund c-month")
    sub = await subscription(sessionmaker, USER)
    assert sub is not None and sub.expires_at == clock.now + timedelta(days=90)
    states = {c.source_id: c.state for c in await rows(sessionmaker, Commission)}
    assert states == {"c-month": "reversed", "c-quarter": "pending"}
    money = await account(sessionmaker, REFERRER)
    assert money.balance_minor == 0  # it never reached the balance


async def test_refund_errors(
    chat: Chat,
    fake_api: FakeBotAPI,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    assert "Usage: /refund" in (await chat.send(ADMIN_ID, "/refund"))[0]
    assert await chat.send(ADMIN_ID, "/refund nope") == ["No payment has that charge id."]
    await pay(chat, settings, USER, "charge-1")

    def refuse(call: object) -> None:
        raise FakeApiError(400, "Bad Request: CHARGE_NOT_FOUND")

    fake_api.set_handler("refundStarPayment", refuse)
    [reply] = await chat.send(ADMIN_ID, "/refund charge-1")
    assert "Telegram refused the refund: Bad Request: CHARGE_NOT_FOUND" in reply
    [payment] = await rows(sessionmaker, Payment)
    assert payment.refunded_at is None

    def already(call: object) -> None:
        raise FakeApiError(400, "Bad Request: CHARGE_ALREADY_REFUNDED")

    # Refunded at Telegram before (our commit failed last time): recorded now.
    fake_api.set_handler("refundStarPayment", already)
    reply, to_user = await chat.send(ADMIN_ID, "/refund charge-1")
    assert reply.startswith("Refunded 250 ⭐") and "was refunded" in to_user
    [payment] = await rows(sessionmaker, Payment)
    assert payment.refunded_at is not None


async def test_unknown_payload_payment_is_kept(
    chat: Chat, fake_api: FakeBotAPI, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    from tests.fake_bot_api import successful_payment_update

    await chat.feed(
        successful_payment_update(USER, payload="???", total_amount=99, charge_id="odd-1")
    )
    assert "could not match it to a plan" in fake_api.texts(USER)[-1]
    [payment] = await rows(sessionmaker, Payment)
    assert (payment.stars, payment.days, payment.plan_code) == (99, 0, "unknown")


def test_payload_round_trip() -> None:
    sold = SoldPlan("month", 250, 30)
    assert SoldPlan.parse(sold.payload) == sold
    assert SoldPlan.parse("sub:month:x:30") is None
