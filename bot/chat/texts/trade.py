"""Trade management (protocol v1.1): closed positions, per-device results on a signal's
message, skipped opens, size previews, the daily loss limit and Close all."""

from __future__ import annotations

from decimal import Decimal

from aiogram import html

from bot.chat.i18n import Text
from bot.domain.signal_dto import SizePreview
from bot.domain.signal_rules import format_decimal

CLOSE_REASONS = {
    "tp": Text("take profit"),
    "sl": Text("stop loss"),
    "stop_out": Text("stop-out"),
    "manual": Text("closed by you"),
    "close_all": Text("Close all"),
    "expert": Text("closed by the EA"),
}
CLOSED_NOTICE = Text(
    "📕 <b>{device}</b>: {symbol} {side} closed ({reason}), {volume} @ <code>{price}</code>, "
    "result {profit}"
)
# One device's results on a signal's message.
RESULT_TP = Text("TP{n} hit {profit}")
RESULT_TP_ANY = Text("take profit hit {profit}")
RESULT_SL = Text("stopped out {profit}")
RESULT_STOP_OUT = Text("stop-out {profit}")
RESULT_MANUAL = Text("closed by you {profit}")
RESULT_CLOSE_ALL = Text("closed by Close all {profit}")
RESULT_EXPERT = Text("closed by the EA {profit}")
RESULT_SL_BREAKEVEN = Text("SL → breakeven")
RESULT_SL_MOVED = Text("SL → {price}")
RESULT_SL_REMOVED = Text("SL removed")
RESULT_TP_MOVED = Text("TP → {price}")
RESULT_TP_REMOVED = Text("TP removed")
SKIPPED = Text("skipped: {reason}")
SKIP_REASONS = {
    "max_open_positions": Text("too many open positions"),
    "daily_loss_limit": Text("daily loss limit"),
    "symbol_not_allowed": Text("symbol not allowed"),
    "outside_trading_hours": Text("outside trading hours"),
}
# The size preview of a device on a signal's message, before the owner decides.
PREVIEW_RISK_PERCENT = Text("{percent} % of {base} {currency}")
PREVIEW_RISK_MONEY = Text("{amount} {currency} at risk")
PREVIEW_ABOUT = Text("{risk} → about {lots} lots")
PREVIEW_NO_ESTIMATE = Text("{risk}, lots computed by the EA")
PREVIEW_FIXED = Text("fixed {lots} lots")
PREVIEW_FIXED_NO_SL = Text("fixed {lots} lots: no stop loss")
PREVIEW_LEGS = Text(", {n} take profits split")
LOSS_LIMIT_NOTICE = Text(
    "🛑 <b>{device}</b>: today's loss {loss} {currency} reached the daily limit of "
    "{limit} {currency}. New signals are skipped on this device until 00:00 UTC.\n"
    "Press Resume to trade again today anyway."
)
BUTTON_RESUME_TODAY = Text("▶️ Resume today")
LOSS_LIMIT_RESUMED = Text(
    "▶️ <b>{device}</b>: the daily loss limit is lifted until 00:00 UTC; new signals go "
    "to this device again."
)


def money(amount: Decimal) -> str:
    """An account-currency amount with thousands separators and cents: 10,000.00."""
    return f"{amount:,.2f}"


def signed_money(amount: Decimal, currency: str | None) -> str:
    """A result with its sign: +12.50 USD, −8.20 USD."""
    sign = "+" if amount >= 0 else "−"
    unit = f" {html.quote(currency)}" if currency else ""
    return f"{sign}{money(abs(amount))}{unit}"


def close_reason(reason: str | None) -> str:
    word = CLOSE_REASONS.get(reason or "")
    return str(word) if word is not None else html.quote(reason or "?")


def closed_notice(
    device: str,
    symbol: str | None,
    side: str | None,
    reason: str | None,
    price: Decimal,
    volume: Decimal,
    profit: Decimal,
    currency: str | None,
) -> str:
    return CLOSED_NOTICE.format(
        device=html.quote(device),
        symbol=html.quote(symbol or ""),
        side=html.quote(side or ""),
        reason=close_reason(reason),
        volume=format_decimal(volume),
        price=format_decimal(price),
        profit=signed_money(profit, currency),
    )


def close_result(
    reason: str | None, leg: int | None, profit: Decimal | None, currency: str | None
) -> str:
    """One closed position on a signal's message: TP1 hit +12.50 USD, stopped out −8.20 USD."""
    shown = signed_money(profit, currency) if profit is not None else ""
    if reason == "tp":
        if leg is None:
            return RESULT_TP_ANY.format(profit=shown).strip()
        return RESULT_TP.format(n=leg + 1, profit=shown).strip()
    template = {
        "sl": RESULT_SL,
        "stop_out": RESULT_STOP_OUT,
        "manual": RESULT_MANUAL,
        "close_all": RESULT_CLOSE_ALL,
    }.get(reason or "", RESULT_EXPERT)
    return template.format(profit=shown).strip()


def stop_moved(level: Decimal | None, *, breakeven: bool) -> str:
    if level is None:
        return str(RESULT_SL_REMOVED)
    if breakeven:
        return str(RESULT_SL_BREAKEVEN)
    return RESULT_SL_MOVED.format(price=f"<code>{format_decimal(level)}</code>")


def take_profit_moved(level: Decimal | None) -> str:
    if level is None:
        return str(RESULT_TP_REMOVED)
    return RESULT_TP_MOVED.format(price=f"<code>{format_decimal(level)}</code>")


def skipped(reason: str | None) -> str:
    word = SKIP_REASONS.get(reason or "")
    return SKIPPED.format(reason=word if word is not None else html.quote(reason or "?"))


def loss_limit_notice(device: str, loss: Decimal, limit: Decimal, currency: str | None) -> str:
    return LOSS_LIMIT_NOTICE.format(
        device=html.quote(device),
        loss=money(loss),
        limit=money(limit),
        currency=html.quote(currency or ""),
    )


def loss_limit_resumed(device: str) -> str:
    return LOSS_LIMIT_RESUMED.format(device=html.quote(device))


def _percent(value: Decimal) -> str:
    return format_decimal(value)


def size_preview(preview: SizePreview) -> str:
    """How a v1.1 device would size the signal: "1 % of 10,000.00 USD → about 0.23 lots",
    "fixed 0.10 lots: no stop loss"."""
    currency = html.quote(preview.currency or "")
    if preview.mode == "fixed":
        lots = format_decimal(preview.lots) if preview.lots is not None else "?"
        template = PREVIEW_FIXED_NO_SL if preview.no_stop_loss else PREVIEW_FIXED
        text = template.format(lots=lots)
    else:
        if preview.mode == "risk_percent" and preview.percent is not None:
            risk = PREVIEW_RISK_PERCENT.format(
                percent=_percent(preview.percent),
                base=money(preview.base if preview.base is not None else Decimal(0)),
                currency=currency,
            )
        else:
            amount = preview.amount if preview.amount is not None else Decimal(0)
            risk = PREVIEW_RISK_MONEY.format(amount=money(amount), currency=currency)
        if preview.lots is not None:
            text = PREVIEW_ABOUT.format(risk=risk, lots=format_decimal(preview.lots))
        else:
            text = PREVIEW_NO_ESTIMATE.format(risk=risk)
    if preview.legs:
        text += PREVIEW_LEGS.format(n=preview.legs)
    return text
