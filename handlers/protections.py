"""Protections' buttons: Resume under a tripped daily loss limit's notice (protocol v1.1).

Every press re-checks that the device is the presser's (and active): a forged or stale
button changes nothing.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer
from sqlalchemy.ext.asyncio import AsyncSession

from bot.chat import texts
from bot.chat.callbacks import ProtectionAction, ProtectionCb
from bot.chat.tell import Tell
from bot.domain.users import UserDTO
from bot.execution.protections import resume_loss_limit
from bot.infra.clock import Clock


async def resume(
    query: CallbackQuery,
    callback_data: ProtectionCb,
    user: UserDTO,
    session: AsyncSession,
    clock: Clock,
    tell: Tell,
    callback_answer: CallbackAnswer,
) -> None:
    device = await resume_loss_limit(session, user.id, callback_data.device_pk, clock())
    done = texts.loss_limit_resumed(device.name)
    callback_answer.text = str(texts.BUTTON_RESUME_TODAY)
    if isinstance(query.message, Message):
        await tell.edit(session, query.message, done)
    else:
        await tell.reply(session, query, done)


def create_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(resume, ProtectionCb.filter(F.action == ProtectionAction.RESUME))
    return router
