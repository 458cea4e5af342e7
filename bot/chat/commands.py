"""The command list: /help and Telegram's command menu both come from here."""

from __future__ import annotations

from dataclasses import dataclass

from bot.chat.i18n import Text


@dataclass(frozen=True, slots=True)
class CommandInfo:
    name: str
    description: Text
    admin_only: bool = False


# Order is the order users see in /help and in the menu. Features add their lines here.
COMMANDS: tuple[CommandInfo, ...] = (
    CommandInfo("start", Text("Start the bot")),
    CommandInfo("help", Text("What this bot can do")),
    CommandInfo("devices", Text("Your MetaTrader terminals: add, set up, pause, revoke")),
    CommandInfo("cancel", Text("Stop what you are entering")),
    CommandInfo("subscribe", Text("Plans and your subscription")),
    CommandInfo("link", Text("Your referral link, tier and rates")),
    CommandInfo("stats", Text("Referrals, commissions and balance")),
    CommandInfo("payout", Text("Request a payout (/payout history: your requests)")),
    CommandInfo("paysupport", Text("Help with payments")),
    CommandInfo("refund", Text("Refund a Stars payment: /refund <charge id>"), admin_only=True),
    CommandInfo("payouts", Text("Payout requests waiting for review"), admin_only=True),
    CommandInfo("settings", Text("Auto-approve and notifications")),
    CommandInfo("signal", Text("Post a signal (a preview comes first)"), admin_only=True),
    CommandInfo("signals", Text("Open signals: modify, close, cancel"), admin_only=True),
    CommandInfo("deadletters", Text("Updates that kept failing (dead letters)"), admin_only=True),
    CommandInfo("retry", Text("Run a dead letter again: /retry <update id>"), admin_only=True),
)


def is_admin_command(name: str) -> bool:
    return any(command.name == name and command.admin_only for command in COMMANDS)


def commands_for(*, is_admin: bool) -> list[CommandInfo]:
    return [command for command in COMMANDS if is_admin or not command.admin_only]
