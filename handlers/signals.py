"""Approve / Reject on a signal's message."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer
from sqlalchemy.ext.asyncio import AsyncSession

from bot.chat import texts
from bot.chat.callbacks import SignalVote, Vote
from bot.domain.signals import SignalService
from bot.domain.users import UserDTO


async def vote(
    query: CallbackQuery,
    callback_data: SignalVote,
    user: UserDTO,
    signals: SignalService,
    session: AsyncSession,
    callback_answer: CallbackAnswer,
) -> None:
    # The press names a signal; decide() checks the presser was sent it, and records once.
    message_id = query.message.message_id if isinstance(query.message, Message) else None
    outcome = await signals.decide(
        session,
        signal_id=callback_data.signal,
        user_id=user.id,
        approve=callback_data.action == Vote.APPROVE,
        message_id=message_id,
    )
    callback_answer.text = texts.vote_answer(outcome.recorded, outcome.decision, outcome.ended)


def create_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(vote, SignalVote.filter())
    return router
