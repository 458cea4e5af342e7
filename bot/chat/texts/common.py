"""Texts every feature shares: greeting, /help, /cancel, fallbacks, apologies, dates."""

from __future__ import annotations

from datetime import datetime

from aiogram import html

from bot.chat.commands import CommandInfo
from bot.chat.i18n import Text

GREETING = Text(
    "Hi, {name}! I am <b>signalbridge</b>.\n\n"
    "I bring trading signals to your MetaTrader terminals: every signal arrives here "
    "with <b>Approve</b> and <b>Reject</b> buttons, and what you approve is executed by "
    "the Expert Advisors you connect, with each fill reported back in this chat.\n\n"
    "Start here:\n"
    "{commands}\n\n"
    "All commands: /help"
)
HELP_HEADER = Text("<b>Commands</b>")
HELP_ADMIN_HEADER = Text("<b>Admin commands</b>")
UNKNOWN_COMMAND = Text("I don't know that command. /help lists what I can do.")
NOT_A_COMMAND = Text("I answer commands and buttons. /help lists what I can do.")
NOTHING_TO_CANCEL = Text("There is nothing to cancel.")
CANCELLED = Text("Cancelled. Nothing was changed.")
APOLOGY = Text("Sorry, something went wrong on our side. Please try again in a minute.")
APOLOGY_ADMINS_TOLD = Text(
    "Sorry, something went wrong on our side with this request. The admins have been told "
    "and will run it again once it is fixed."
)
NOT_AVAILABLE = Text("This is not available any more.")
ADMIN_ONLY = Text("This command is for admins.")
SLOW_DOWN = Text("Slow down: try again in {seconds} s.")
DATE_FORMAT = "%Y-%m-%d %H:%M UTC"


def when(moment: datetime) -> str:
    return moment.strftime(DATE_FORMAT)


def command_lines(commands: list[CommandInfo]) -> str:
    return "\n".join(
        f"/{command.name} – {html.quote(str(command.description))}" for command in commands
    )


def greeting(first_name: str, commands: list[CommandInfo]) -> str:
    return GREETING.format(name=html.quote(first_name), commands=command_lines(commands))


def help_text(user_commands: list[CommandInfo], admin_commands: list[CommandInfo]) -> str:
    text = f"{HELP_HEADER}\n{command_lines(user_commands)}"
    if admin_commands:
        text += f"\n\n{HELP_ADMIN_HEADER}\n{command_lines(admin_commands)}"
    return text


def slow_down(seconds: int) -> str:
    return SLOW_DOWN.format(seconds=seconds)
