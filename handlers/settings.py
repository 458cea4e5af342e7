"""/settings: auto-approve, fill, error and close notifications, each a toggle button."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer
from sqlalchemy.ext.asyncio import AsyncSession

from bot.chat import keyboards, texts
from bot.chat.callbacks import SettingsCb, SettingsToggle
from bot.chat.tell import Tell
from bot.domain.user_settings import SettingName, get_prefs, toggle
from bot.domain.users import UserDTO
from bot.infra.clock import Clock

_NAMES: dict[SettingsToggle, SettingName] = {
    SettingsToggle.AUTO_APPROVE: "auto_approve",
    SettingsToggle.NOTIFY_FILLS: "notify_fills",
    SettingsToggle.NOTIFY_ERRORS: "notify_errors",
    SettingsToggle.NOTIFY_CLOSES: "notify_closes",
}


async def cmd_settings(message: Message, user: UserDTO, session: AsyncSession) -> None:
    values = (await get_prefs(session, user.id)).as_dict()
    await message.answer(
        texts.settings_text(values), reply_markup=keyboards.settings_keyboard(values)
    )


async def switch(
    query: CallbackQuery,
    callback_data: SettingsCb,
    user: UserDTO,
    session: AsyncSession,
    clock: Clock,
    tell: Tell,
    callback_answer: CallbackAnswer,
) -> None:
    name = _NAMES[callback_data.toggle]
    values = (await toggle(session, user.id, name, clock())).as_dict()
    callback_answer.text = texts.setting_switched(name, values[name])
    if isinstance(query.message, Message):
        await tell.edit(
            session,
            query.message,
            texts.settings_text(values),
            keyboards.settings_keyboard(values),
        )


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.register(cmd_settings, Command("settings"))
    router.callback_query.register(switch, SettingsCb.filter())
    return router
