"""The command list: /help and Telegram's command menu both come from here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CommandInfo:
    name: str
    description: str
    admin_only: bool = False


# Order is the order users see in /help and in the menu. Features add their lines here.
COMMANDS: tuple[CommandInfo, ...] = (
    CommandInfo("start", "Start the bot"),
    CommandInfo("help", "What this bot can do"),
    CommandInfo("cancel", "Stop what you are entering"),
    CommandInfo("settings", "Auto-approve and notifications"),
    CommandInfo("signal", "Post a signal (a preview comes first)", admin_only=True),
    CommandInfo("signals", "Open signals: modify, close, cancel", admin_only=True),
)


def commands_for(*, is_admin: bool) -> list[CommandInfo]:
    return [command for command in COMMANDS if is_admin or not command.admin_only]
