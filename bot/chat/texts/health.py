"""Device health alerts (bot/execution/device_health.py): each says what is wrong and the fix."""

from __future__ import annotations

from aiogram import html

from bot.chat.i18n import Plural, Text

HEALTH_NEVER_SEEN = Text(
    "⚠️ <b>{device}</b> has not connected yet, {minutes} min after you added it.\n\n"
    "Most often MetaTrader blocks the EA's requests. In {platform}: Tools → Options → Expert "
    "Advisors: tick <i>Allow WebRequest for listed URL</i> and add <code>{server_url}</code> "
    "exactly. The EA's Server URL input must be <code>{server_url}</code> too, and "
    "{algo_button} must be on. The EA's log (Experts tab) names what else is wrong."
)
HEALTH_OFFLINE = Plural(
    "📴 <b>{device}</b> is offline: its EA has sent nothing for {minutes} min, and {n} signal "
    "is waiting for it.\n\n"
    "Check that the terminal is running and connected, the EA is on its chart and "
    "{algo_button} is on. What waits goes out as soon as the EA polls again (unless it "
    "expires first).",
    "📴 <b>{device}</b> is offline: its EA has sent nothing for {minutes} min, and {n} signals "
    "are waiting for it.\n\n"
    "Check that the terminal is running and connected, the EA is on its chart and "
    "{algo_button} is on. What waits goes out as soon as the EA polls again (unless it "
    "expires first).",
)
HEALTH_BACK_ONLINE = Text("✅ <b>{device}</b> is back online: its EA polls again.")
HEALTH_BAD_SIGNATURE = Text(
    "🔑 <b>{device}</b>: requests with its Device ID keep arriving with a wrong signature "
    "({count} in {minutes} min), and the server refuses them.\n\n"
    "Wrong Secret in the EA's inputs? Rotate the key in /devices and paste the new Secret "
    "exactly as shown (the Device ID stays the same). If no terminal of yours uses an old "
    "secret, rotate it anyway: someone else is trying this Device ID."
)
HEALTH_CLOCK_BEHIND = Text(
    "🕒 <b>{device}</b>: your terminal's clock is {seconds} s behind the server's, so its "
    "requests are refused (more than {limit} s off).\n\n"
    "Set the computer's clock right (turn on automatic time sync); an EA must sign with "
    "TimeGMT(), never TimeCurrent()."
)
HEALTH_CLOCK_AHEAD = Text(
    "🕒 <b>{device}</b>: your terminal's clock is {seconds} s ahead of the server's, so its "
    "requests are refused (more than {limit} s off).\n\n"
    "Set the computer's clock right (turn on automatic time sync); an EA must sign with "
    "TimeGMT(), never TimeCurrent()."
)
HEALTH_TRADE_DISABLED = Text(
    "⛔ <b>{device}</b>: algo trading is off in your terminal, so the EA cannot trade.\n\n"
    "Turn on the {algo_button} button in {platform}, and tick <i>{allow_box}</i> on the EA's "
    "Common tab. If both are on, the account does not allow trading (an investor password, "
    "or the broker)."
)


def _platform(platform: str) -> tuple[str, str, str]:
    """The platform's label, its algo trading button and the EA's permission box."""
    if platform == "mt4":
        return "MT4", "AutoTrading", "Allow live trading"
    return platform.upper(), "Algo Trading", "Allow Algo Trading"


def never_seen_alert(device: str, platform: str, server_url: str, minutes: int) -> str:
    label, button, _box = _platform(platform)
    return HEALTH_NEVER_SEEN.format(
        device=html.quote(device),
        platform=label,
        server_url=html.quote(server_url),
        minutes=minutes,
        algo_button=button,
    )


def offline_alert(device: str, platform: str, minutes: int, waiting: int) -> str:
    _label, button, _box = _platform(platform)
    return HEALTH_OFFLINE.format(
        waiting, device=html.quote(device), minutes=minutes, algo_button=button
    )


def back_online_alert(device: str) -> str:
    return HEALTH_BACK_ONLINE.format(device=html.quote(device))


def bad_signature_alert(device: str, count: int, minutes: int) -> str:
    return HEALTH_BAD_SIGNATURE.format(device=html.quote(device), count=count, minutes=minutes)


def clock_skew_alert(device: str, skew: int, limit: int) -> str:
    """``skew``: the server's time minus the terminal's, in seconds (positive: behind)."""
    template = HEALTH_CLOCK_BEHIND if skew > 0 else HEALTH_CLOCK_AHEAD
    return template.format(device=html.quote(device), seconds=abs(skew), limit=limit)


def trade_disabled_alert(device: str, platform: str) -> str:
    label, button, box = _platform(platform)
    return HEALTH_TRADE_DISABLED.format(
        device=html.quote(device), platform=label, algo_button=button, allow_box=box
    )
