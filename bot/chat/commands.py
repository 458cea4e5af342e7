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
    CommandInfo("devices", "Your MetaTrader terminals: add, set up, pause, revoke"),
    CommandInfo("cancel", "Stop what you are entering"),
    CommandInfo("subscribe", "Plans and your subscription"),
    CommandInfo("link", "Your referral link, tier and rates"),
    CommandInfo("stats", "Referrals, commissions and balance"),
    CommandInfo("payout", "Request a payout (/payout history: your requests)"),
    CommandInfo("paysupport", "Help with payments"),
    CommandInfo("refund", "Refund a Stars payment: /refund <charge id>", admin_only=True),
    CommandInfo("payouts", "Payout requests waiting for review", admin_only=True),
    CommandInfo("settings", "Auto-approve and notifications"),
    CommandInfo("signal", "Post a signal (a preview comes first)", admin_only=True),
    CommandInfo("signals", "Open signals: modify, close, cancel", admin_only=True),
    CommandInfo("deadletters", "Updates that kept failing (dead letters)", admin_only=True),
    CommandInfo("retry", "Run a dead letter again: /retry <update id>", admin_only=True),
)


def is_admin_command(name: str) -> bool:
    return any(command.name == name and command.admin_only for command in COMMANDS)


def commands_for(*, is_admin: bool) -> list[CommandInfo]:
    return [command for command in COMMANDS if is_admin or not command.admin_only]
