"""/subscribe, the Stars invoice, pre-checkout, successful payments, /paysupport."""

from __future__ import annotations

from aiogram import F, Router, html
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, LabeledPrice, Message, PreCheckoutQuery
from aiogram.utils.callback_answer import CallbackAnswer
from sqlalchemy.ext.asyncio import AsyncSession

from bot.chat import keyboards, texts
from bot.chat.callbacks import PlanCallback
from bot.chat.filters import Is
from bot.chat.tell import Tell
from bot.config import Settings
from bot.domain.checkout import (
    STARS_CURRENCY,
    SoldPlan,
    pre_checkout_error,
    recent_payments,
    record_payment,
)
from bot.domain.money import Money
from bot.domain.notices import NoticeCode
from bot.domain.subscriptions import subscription_status
from bot.domain.users import UserDTO
from bot.infra.clock import Clock


async def cmd_subscribe(
    message: Message, user: UserDTO, session: AsyncSession, settings: Settings, clock: Clock
) -> None:
    status = await subscription_status(session, user.id, clock())
    if status.expires_at is None:
        line = str(texts.SUBSCRIPTION_NONE)
    else:
        plan = settings.checkout.plan(status.plan_code or "")
        template = texts.SUBSCRIPTION_ACTIVE if status.active else texts.SUBSCRIPTION_EXPIRED
        line = template.format(
            plan=plan.name if plan else status.plan_code, expires=texts.when(status.expires_at)
        )
    if not settings.checkout.plans:
        await message.answer(f"{line}\n\n{texts.NO_PLANS}")
        return
    await message.answer(
        texts.SUBSCRIBE.format(status=line), reply_markup=keyboards.plans(settings.checkout.plans)
    )


async def plan_pressed(
    query: CallbackQuery,
    callback_data: PlanCallback,
    settings: Settings,
    callback_answer: CallbackAnswer,
) -> None:
    plan = settings.checkout.plan(callback_data.code)
    if plan is None or query.message is None:
        callback_answer.text = str(texts.PLAN_GONE)
        callback_answer.show_alert = True
        return
    await query.message.answer_invoice(
        title=plan.name,
        description=texts.INVOICE_DESCRIPTION.format(days=plan.days),
        payload=SoldPlan.of(plan).payload,
        currency=STARS_CURRENCY,
        prices=[LabeledPrice(label=plan.name, amount=plan.stars)],
        provider_token="",
    )


async def pre_checkout(query: PreCheckoutQuery, settings: Settings) -> None:
    # Telegram waits 10 s for this answer: no database, no network besides the answer.
    error = pre_checkout_error(settings, query.invoice_payload, query.currency, query.total_amount)
    await query.answer(
        ok=error is None, error_message=texts.code_text(error) if error is not None else None
    )


async def successful_payment(
    message: Message,
    user: UserDTO,
    session: AsyncSession,
    settings: Settings,
    clock: Clock,
    tell: Tell,
) -> None:
    payment = message.successful_payment
    assert payment is not None
    charge_id = payment.telegram_payment_charge_id
    result = await record_payment(
        session,
        settings,
        user_id=user.id,
        charge_id=charge_id,
        payload=payment.invoice_payload,
        total_amount=payment.total_amount,
        now=clock(),
    )
    if not result.created:
        return  # a repeated update: credited before, nothing more to say
    plan = settings.checkout.plan(result.plan_code)
    if result.days == 0:
        text = texts.PAYMENT_UNMATCHED.format(stars=result.stars, charge_id=html.quote(charge_id))
    else:
        text = texts.PAYMENT_CONFIRMED.format(
            stars=result.stars,
            plan=html.quote(plan.name if plan else result.plan_code),
            expires=texts.when(result.expires_at),
            charge_id=html.quote(charge_id),
        )
    await tell.reply(session, message, text)
    commission = result.commission
    if commission is not None:
        money = Money.from_settings(settings.affiliates)
        await tell.notice(
            session,
            commission.affiliate_id,
            NoticeCode.COMMISSION_EARNED,
            name=user.first_name,
            amount=money.format(commission.amount_minor),
            available=texts.when(commission.available_at),
        )


async def cmd_paysupport(
    message: Message,
    command: CommandObject,
    user: UserDTO,
    session: AsyncSession,
    settings: Settings,
    admin_ids: frozenset[int],
    tell: Tell,
) -> None:
    question = (command.args or "").strip()
    if question:
        # Questions go to the admins, who answer the user directly.
        asked = {
            "user_id": user.id,
            "name": user.first_name,
            "username": user.username,
            "question": question,
        }
        await tell.notice_many(
            session,
            [(admin, NoticeCode.PAYSUPPORT_QUESTION, asked) for admin in sorted(admin_ids)],
        )
        await tell.reply(session, message, str(texts.PAYSUPPORT_SENT))
        return
    contact = settings.checkout.support_contact
    how = texts.PAYSUPPORT_CONTACT.format(contact=html.quote(contact)) if contact else ""
    text = texts.PAYSUPPORT.format(contact=how)
    payments = await recent_payments(session, user.id)
    if payments:
        lines = [
            texts.PAYSUPPORT_PAYMENT_LINE.format(
                paid=texts.when(p.paid_at),
                stars=p.stars,
                plan=html.quote(p.plan_code),
                charge_id=html.quote(p.charge_id),
                refunded=texts.REFUNDED_MARK if p.refunded_at else "",
            )
            for p in payments
        ]
        text += texts.PAYSUPPORT_PAYMENTS.format(lines="\n".join(lines))
    await message.answer(text)


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.register(cmd_subscribe, Command("subscribe"))
    router.callback_query.register(plan_pressed, PlanCallback.filter())
    router.pre_checkout_query.register(pre_checkout)
    router.message.register(successful_payment, Is(F.successful_payment))
    router.message.register(cmd_paysupport, Command("paysupport"))
    return router
