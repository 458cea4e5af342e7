"""Every text the bot sends, in one place. HTML parse mode; user values are quoted."""

from __future__ import annotations

from aiogram import html

from bot.commands import CommandInfo

GREETING = (
    "Hi, {name}! I am <b>signalbridge</b>.\n\n"
    "I bring trading signals to your MetaTrader terminals: every signal arrives here "
    "with <b>Approve</b> and <b>Reject</b> buttons, and what you approve is executed by "
    "the Expert Advisors you connect, with each fill reported back in this chat.\n\n"
    "Start here:\n"
    "{commands}\n\n"
    "All commands: /help"
)
HELP_HEADER = "<b>Commands</b>"
HELP_ADMIN_HEADER = "<b>Admin commands</b>"
UNKNOWN_COMMAND = "I don't know that command. /help lists what I can do."
NOT_A_COMMAND = "I answer commands and buttons. /help lists what I can do."
NOTHING_TO_CANCEL = "There is nothing to cancel."
CANCELLED = "Cancelled. Nothing was changed."
APOLOGY = "Sorry, something went wrong on our side. Please try again in a minute."
NOT_AVAILABLE = "This is not available any more."


def command_lines(commands: list[CommandInfo]) -> str:
    return "\n".join(f"/{command.name} – {html.quote(command.description)}" for command in commands)


def greeting(first_name: str, commands: list[CommandInfo]) -> str:
    return GREETING.format(name=html.quote(first_name), commands=command_lines(commands))


def help_text(user_commands: list[CommandInfo], admin_commands: list[CommandInfo]) -> str:
    text = f"{HELP_HEADER}\n{command_lines(user_commands)}"
    if admin_commands:
        text += f"\n\n{HELP_ADMIN_HEADER}\n{command_lines(admin_commands)}"
    return text


# --- webhook and protection ---
SLOW_DOWN = "Slow down: try again in {seconds} s."


def slow_down(seconds: int) -> str:
    return SLOW_DOWN.format(seconds=seconds)
