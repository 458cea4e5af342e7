"""Notices worded when the outbox sends them, in each recipient's language.

A notice row carries a code and its params (bot/domain/notices.py); ``NoticeRenderer``
looks up the recipients' ``language_code`` in one query and words each row through the
catalogs (bot/chat/texts/). The outbox worker calls it for the notices it is about to send,
so a notice reads in the language the user has then, whoever queued it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from aiogram import html
from aiogram.types import InlineKeyboardMarkup
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.chat import keyboards, texts, views
from bot.chat.i18n import in_locale
from bot.domain.notices import NoticeCode
from db.models import User
from db.repositories.outbox import OutboxRow

logger = logging.getLogger(__name__)

Worded = tuple[str, InlineKeyboardMarkup | None]
Params = Mapping[str, Any]


def _decimal(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _fill(p: Params) -> str:
    price, volume = Decimal(p["price"]), Decimal(p["volume"])
    return texts.fill_notice(
        p["device"], p["symbol"], p["side"], p["action"], price, volume, _decimal(p["profit"])
    )


def _device_error(p: Params) -> str:
    return texts.error_notice(
        p["device"], p["symbol"], p["side"], p["action"], p["code"], p["message"]
    )


def _position_closed(p: Params) -> str:
    return texts.closed_notice(
        p["device"],
        p["symbol"],
        p["side"],
        p["reason"],
        Decimal(p["price"]),
        Decimal(p["volume"]),
        Decimal(p["profit"]),
        p["currency"],
    )


def _loss_limit(p: Params) -> str:
    return texts.loss_limit_notice(
        p["device"], Decimal(p["loss"]), Decimal(p["limit"]), p["currency"]
    )


def _refund_done(p: Params) -> str:
    commission = p["commission"]
    line = (
        texts.REFUND_COMMISSION.format(**commission)
        if commission is not None
        else str(texts.REFUND_NO_COMMISSION)
    )
    return texts.REFUND_DONE.format(
        stars=p["stars"],
        user_id=p["user_id"],
        charge_id=html.quote(p["charge_id"]),
        expires=p["expires"],
        commission=line,
    )


def _payout_paid(p: Params) -> str:
    reference = p["reference"]
    return texts.PAYOUT_PAID_USER.format(
        id=p["id"],
        amount=p["amount"],
        destination=html.quote(p["destination"]),
        reference=texts.PAYOUT_REFERENCE.format(reference=html.quote(reference))
        if reference
        else "",
    )


TEXTS: dict[NoticeCode, Callable[[Params], str]] = {
    NoticeCode.FILL: _fill,
    NoticeCode.DEVICE_ERROR: _device_error,
    NoticeCode.POSITION_CLOSED: _position_closed,
    NoticeCode.LOSS_LIMIT_TRIPPED: _loss_limit,
    NoticeCode.DEAD_LETTER: lambda p: texts.dead_letter_notice(
        p["update_id"], p["user_id"], p["error"], p["attempts"], again=p["again"]
    ),
    NoticeCode.DEAD_LETTER_DONE: lambda p: texts.dead_letter_done(p["update_id"]),
    NoticeCode.REFERRAL_JOINED: lambda p: texts.referral_joined(p["name"]),
    NoticeCode.COMMISSION_EARNED: lambda p: texts.COMMISSION_EARNED.format(
        name=html.quote(p["name"]), amount=p["amount"], available=p["available"]
    ),
    NoticeCode.REFUND_DONE: _refund_done,
    NoticeCode.REFUND_USER: lambda p: texts.REFUND_USER.format(
        charge_id=html.quote(p["charge_id"]), stars=p["stars"], expires=p["expires"]
    ),
    NoticeCode.REFUND_AFFILIATE: lambda p: texts.REFUND_AFFILIATE.format(
        amount=p["amount"], balance=p["balance"]
    ),
    NoticeCode.PAYSUPPORT_QUESTION: lambda p: texts.paysupport_question(
        p["user_id"], p["name"], p["username"], p["question"]
    ),
    NoticeCode.PAYOUT_APPROVED: lambda p: texts.PAYOUT_APPROVED_USER.format(
        id=p["id"], amount=p["amount"]
    ),
    NoticeCode.PAYOUT_REJECTED: lambda p: texts.PAYOUT_REJECTED_USER.format(
        id=p["id"], amount=p["amount"], reason=html.quote(p["reason"])
    ),
    NoticeCode.PAYOUT_PAID: _payout_paid,
    NoticeCode.PAYOUT_CARD: views.payout_card_text,
}


async def user_languages(session: AsyncSession, user_ids: Iterable[int]) -> dict[int, str | None]:
    """Each user's ``language_code`` as Telegram last sent it (absent: not a user yet)."""
    ids = sorted(set(user_ids))
    if not ids:
        return {}
    query = select(User.id, User.language_code).where(User.id.in_(ids))
    return {user_id: language for user_id, language in await session.execute(query)}


def word(code: NoticeCode, params: Params) -> Worded:
    """A notice's text and buttons, in the current language."""
    markup = None
    if code is NoticeCode.PAYOUT_CARD:
        markup = keyboards.payout_review(params["id"], params["state"])
    elif code is NoticeCode.LOSS_LIMIT_TRIPPED:
        markup = keyboards.loss_limit_resume(params["device_pk"])
    return TEXTS[code](params), markup


class NoticeRenderer:
    """The outbox worker's ``render_notices``."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker

    async def render(self, rows: Sequence[OutboxRow]) -> dict[int, Worded]:
        async with self.sessionmaker() as session:
            languages = await user_languages(session, {row.chat_id for row in rows})
        worded: dict[int, Worded] = {}
        for row in rows:
            try:
                notice = json.loads(row.text or "")
                code = NoticeCode(notice["code"])
                with in_locale(languages.get(row.chat_id)):
                    worded[row.id] = word(code, notice["params"])
            except (ValueError, KeyError, TypeError):
                logger.exception("outbox: notice %s cannot be worded", row.id)
        return worded
