"""Admins: /deadletters lists the updates that kept failing, /retry <update_id> runs one again."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.chat import texts
from bot.chat.filters import AdminFilter
from bot.chat.tell import Tell
from bot.domain.users import UserDTO
from bot.infra.clock import Clock
from bot.intake.inbox import Inbox
from db.hooks import after_commit
from db.repositories.dead_letters import DeadLetterRepository
from db.repositories.processed_updates import ProcessedUpdateRepository

LISTED = 20


async def cmd_dead_letters(message: Message, session: AsyncSession) -> None:
    repo = DeadLetterRepository(session)
    letters = await repo.oldest(LISTED)
    if not letters:
        await message.answer(str(texts.DEAD_LETTERS_NONE))
        return
    lines = [
        texts.dead_letter_line(
            letter.update_id,
            letter.user_id,
            letter.last_error,
            letter.attempts,
            letter.last_failed_at,
        )
        for letter in letters
    ]
    await message.answer(texts.dead_letters_list(lines, await repo.count()))


async def cmd_retry(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    user: UserDTO,
    clock: Clock,
    inbox: Inbox,
    tell: Tell,
) -> None:
    arg = (command.args or "").strip()
    if not arg.isdigit():
        await message.answer(str(texts.DEAD_LETTER_RETRY_USAGE))
        return
    update_id = int(arg)
    letters = DeadLetterRepository(session)
    letter = await letters.get(update_id)
    if letter is None:
        await message.answer(texts.dead_letter_unknown(update_id))
        return
    now = clock()
    # One more failure sends it back to the dead letters (and tells the admins again).
    attempts = inbox.retries.max_attempts - 1
    await ProcessedUpdateRepository(session).requeue(update_id, letter.payload, attempts, now)
    await letters.mark_retried(update_id, user.id, now)
    admin_id = user.id

    # Told, and run, once the retry is stored.
    await tell.reply(session, message, texts.dead_letter_retrying(update_id))
    after_commit(session, lambda: inbox.run_stored(update_id, retried_by=admin_id))


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(AdminFilter())
    router.message.register(cmd_dead_letters, Command("deadletters"))
    router.message.register(cmd_retry, Command("retry"))
    return router
