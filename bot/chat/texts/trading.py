"""/devices, trade management (protocol v1.1): the device's state, its settings screens,
their questions, Close all."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from aiogram import html

from bot.chat.i18n import Plural, Text
from bot.chat.texts.devices import (
    NONE_SET,
    SIZE_RISK_BALANCE,
    SIZE_RISK_EQUITY,
    SIZE_RISK_MONEY,
    ago,
    format_lot,
)
from bot.domain.devices import DeviceDTO
from bot.domain.errors import ErrorCode
from bot.domain.trade_settings import (
    DeviceStateDTO,
    PositionLine,
    RiskOf,
    SizingMode,
    TpMode,
    TradeSettings,
    TradeView,
    TradingHours,
    TrailingStart,
    shares_percent,
)

POSITIONS_SHOWN = 5

# --- the device screen: what the EA reported ---

STATE_EA = Text("EA: {ea} {version} · {platform} · protocol {protocol}")
STATE_ACCOUNT = Text("Account: balance {balance} {currency}, equity {equity} {currency} ({ago})")
STATE_POSITIONS = Plural("Open positions: {n}", "Open positions: {n}")
STATE_POSITION = Text("• {symbol} {side} {volume} at {price}, profit {profit} {currency}")
STATE_MORE_POSITIONS = Plural("• … and {n} more", "• … and {n} more")
STATE_NONE = Text("EA: no state reported yet (an EA older than protocol 1.1 never sends it).")
NEEDS_UPDATE = Text(
    "⚠️ Sizing by risk, split take profits, breakeven, trailing and guards need the updated "
    "EA (protocol 1.1): see <code>ea/README.md</code>. You can set them now; they apply "
    "once the EA is updated."
)
BUILD = Text("build {build}")

# --- the settings, one line each ---

SIZE_LINE = Text("Size: {size}")
SIZE_FIXED = Text("fixed lot size")
SIZE_RISK_UNSET = Text("risk (amount not set: the lot size is used)")
SIZE_MAX_LOTS = Text("at most {lots} lots")
ACCOUNT_CURRENCY = Text("of the account currency")
TP_LINE = Text("Take profits: {tps}")
TP_FIRST = Text("first only")
TP_EQUAL = Text("split equally")
TP_SHARES = Text("split {shares} %")
BREAKEVEN_LINE = Text("Breakeven: {breakeven}")
BREAKEVEN_AFTER = Text("after TP{tp}, {offset} points beyond the open")
TRAILING_LINE = Text("Trailing: {trailing}")
TRAILING_ON = Text("{distance} points, step {step}, {start}")
TRAILING_AT_OPEN = Text("from the open")
TRAILING_AFTER_BREAKEVEN = Text("after breakeven")
GUARDS_LINE = Text("Guards: {guards}")
GUARD_SPREAD = Text("spread at most {points} points")
GUARD_DISTANCE = Text("price at most {points} points from the provider's")
PROTECTIONS_LINE = Text("Protections: {protections}")
PROTECT_POSITIONS = Text("at most {n} open positions")
PROTECT_LOSS = Text("daily loss limit {amount}")
PROTECT_ALLOWED = Text("only {symbols}")
PROTECT_DENIED = Text("never {symbols}")
PROTECT_HOURS = Text("hours {hours}")
OFF = Text("off")
POINTS = Text("{n} points")
HOURS_TEXT = Text("{days} {start}–{end} UTC")
HOURS_OVERNIGHT_TEXT = Text("{days} {start}–{end} UTC (ends the next day)")
EVERY_DAY = Text("every day")
DAY_NAMES = (
    Text("Mon"),
    Text("Tue"),
    Text("Wed"),
    Text("Thu"),
    Text("Fri"),
    Text("Sat"),
    Text("Sun"),
)

# --- the screens of each group ---

SIZE_SCREEN = Text(
    "<b>Size of {name}</b>\n"
    "{size}\n"
    "Lot size: {lot}\n"
    "Max lot size: {max_lots}\n\n"
    "Fixed trades the lot size. The risk modes size each trade from its stop loss: a "
    "percentage of the balance or the equity, or an amount of the account currency; a "
    "signal without a stop loss trades the lot size. The max lot size caps every mode."
)
TAKE_PROFITS_SCREEN = Text(
    "<b>Take profits of {name}</b>\n"
    "{tps}\n\n"
    "First only: one position with the signal's first take profit. Split: one position "
    "per take profit, each with its share of the volume (equal, or the shares you type)."
)
STOPS_SCREEN = Text(
    "<b>Breakeven and trailing of {name}</b>\n"
    "{breakeven}\n"
    "{trailing}\n\n"
    "Breakeven: once the position of TP n closes at its take profit, the other positions "
    "of the signal get their stop loss at their open price plus the offset (needs split "
    "take profits). Trailing: the stop loss follows the price at the distance, moving by at "
    "least the step, never back; from the open or only after breakeven. Points are the "
    "symbol's smallest price step."
)
GUARDS_SCREEN = Text(
    "<b>Guards of {name}</b>\n"
    "Max spread: {spread}\n"
    "Max distance: {distance}\n\n"
    "For market orders: the EA does not open when the spread is wider, or when the price "
    "has moved farther from the provider's price, than these points."
)
PROTECTIONS_SCREEN = Text(
    "<b>Protections of {name}</b>\n"
    "Max open positions: {positions}\n"
    "Daily loss limit: {loss}\n"
    "Allowed symbols: {allowed}\n"
    "Denied symbols: {denied}\n"
    "Trading hours: {hours}\n\n"
    "Checked before a trade is sent to this device: signals beyond them are skipped."
)
ANY_TIME = Text("any time")
ALL_SYMBOLS = Text("all")

BUTTON_SIZE = Text("📐 Size")
BUTTON_TAKE_PROFITS = Text("🎯 Take profits")
BUTTON_STOPS = Text("🛡 Breakeven, trailing")
BUTTON_GUARDS = Text("🚧 Guards")
BUTTON_PROTECTIONS = Text("🔒 Protections")
BUTTON_CLOSE_ALL = Text("🧹 Close all")
BUTTON_SIZE_FIXED = Text("Fixed lots")
BUTTON_RISK_BALANCE = Text("Risk % of balance")
BUTTON_RISK_EQUITY = Text("Risk % of equity")
BUTTON_RISK_MONEY = Text("Risk in money")
BUTTON_MAX_LOTS = Text("Max lot size")
BUTTON_TP_FIRST = Text("First only")
BUTTON_TP_EQUAL = Text("Split equally")
BUTTON_TP_SHARES = Text("Split by shares")
BUTTON_BREAKEVEN = Text("Breakeven")
BUTTON_TRAILING = Text("Trailing")
BUTTON_TRAILING_START = Text("Trailing starts: {start}")
BUTTON_MAX_SPREAD = Text("Max spread")
BUTTON_MAX_DISTANCE = Text("Max distance")
BUTTON_MAX_POSITIONS = Text("Max positions")
BUTTON_LOSS_LIMIT = Text("Daily loss limit")
BUTTON_SYMBOLS_ALLOWED = Text("Allowed symbols")
BUTTON_SYMBOLS_DENIED = Text("Denied symbols")
BUTTON_HOURS = Text("Trading hours")
BUTTON_CONFIRM_CLOSE_ALL = Text("Yes, close them all")
BUTTON_KEEP_OPEN = Text("No, keep them")

# --- questions (each ends with how to stop) ---

ASK_RISK_BALANCE = Text(
    "Send the risk per trade of <b>{name}</b> as a percentage of the balance, e.g. "
    "<code>1</code> or <code>0.5</code> (0.01 to 100).\n/cancel to stop."
)
ASK_RISK_EQUITY = Text(
    "Send the risk per trade of <b>{name}</b> as a percentage of the equity, e.g. "
    "<code>1</code> or <code>0.5</code> (0.01 to 100).\n/cancel to stop."
)
ASK_RISK_MONEY = Text(
    "Send the risk per trade of <b>{name}</b> in the account currency{currency}, e.g. "
    "<code>50</code> or <code>12.50</code>.\n/cancel to stop."
)
ASK_MAX_LOTS = Text(
    "Send the largest lot size <b>{name}</b> may trade, from {min} to {max} (now {current}), "
    "or <code>-</code> for no cap.\n/cancel to stop."
)
ASK_TP_SHARES = Text(
    "Send the share of each take profit of <b>{name}</b> in percent, in the signal's order, "
    "e.g. <code>50 30 20</code> (2 to {max} shares, together 100).\n/cancel to stop."
)
ASK_BREAKEVEN = Text(
    "Send after which take profit <b>{name}</b> moves the other stops to breakeven and the "
    "offset in points, e.g. <code>1 10</code> (after TP1, 10 points beyond the open), or "
    "<code>-</code> for off.\n/cancel to stop."
)
ASK_TRAILING = Text(
    "Send the trailing distance and step of <b>{name}</b> in points, e.g. <code>200 50</code>, "
    "or <code>-</code> for off.\n/cancel to stop."
)
ASK_MAX_SPREAD = Text(
    "Send the widest spread in points at which <b>{name}</b> still opens, e.g. "
    "<code>30</code>, or <code>-</code> for off.\n/cancel to stop."
)
ASK_MAX_DISTANCE = Text(
    "Send how many points the price of <b>{name}</b> may lie from the provider's price for "
    "it to open, e.g. <code>50</code>, or <code>-</code> for off.\n/cancel to stop."
)
ASK_MAX_POSITIONS = Text(
    "Send how many positions <b>{name}</b> may hold at once, e.g. <code>5</code>, or "
    "<code>-</code> for no limit.\n/cancel to stop."
)
ASK_LOSS_LIMIT = Text(
    "Send the daily loss limit of <b>{name}</b> in the account currency{currency}, e.g. "
    "<code>200</code>: after that much loss in a day (UTC) no new trades go to it. "
    "<code>-</code> for off.\n/cancel to stop."
)
ASK_SYMBOLS_ALLOWED = Text(
    "Send the only symbols <b>{name}</b> may trade, as the provider names them, separated "
    "by commas or spaces, e.g. <code>EURUSD, GBPUSD, XAUUSD</code>; <code>-</code> allows "
    "all.\n/cancel to stop."
)
ASK_SYMBOLS_DENIED = Text(
    "Send the symbols <b>{name}</b> must never trade, as the provider names them, separated "
    "by commas or spaces, e.g. <code>XAUUSD US30</code>; <code>-</code> denies none.\n"
    "/cancel to stop."
)
ASK_HOURS = Text(
    "Send when <b>{name}</b> may open trades, in UTC, e.g. <code>Mon-Fri 07:00-20:00</code> "
    "or <code>Mon,Wed 08:00-12:00</code> (no days: every day); <code>-</code> for any "
    "time.\n/cancel to stop."
)

# --- Close all ---

CONFIRM_CLOSE_ALL = Plural(
    "Close the {n} position opened by signalbridge on <b>{name}</b>? Other trades on the "
    "account are not touched. Pending orders it placed are deleted too.",
    "Close all {n} positions opened by signalbridge on <b>{name}</b>? Other trades on the "
    "account are not touched. Pending orders it placed are deleted too.",
)
CLOSE_ALL_SENT = Text(
    "🧹 Close all sent to <b>{name}</b>: the EA closes its positions at its next poll."
)
CLOSE_ALL_SENT_TOAST = Text("Close all sent.")
CLOSE_ALL_NEEDS_UPDATE = Text(
    "Close all needs the updated EA (protocol 1.1) on <b>{name}</b>. To update it, copy the "
    "new files of signalbridge's <code>ea</code> folder into the terminal and compile again, "
    "as <code>ea/README.md</code> (Install) describes, then restart the EA."
)


# --- helpers ---


def amount(value: Decimal) -> str:
    """An account figure: at least two decimals, no float noise."""
    return format_lot(value)


def money_minor(minor: int, currency: str | None) -> str:
    figure = amount(Decimal(minor) / 100)
    return f"{figure} {html.quote(currency)}" if currency else f"{figure} {ACCOUNT_CURRENCY}"


def hours_text(hours: TradingHours) -> str:
    template = HOURS_OVERNIGHT_TEXT if hours.end < hours.start else HOURS_TEXT
    return template.format(days=days_text(hours.days), start=hours.start, end=hours.end)


def days_text(days: Sequence[int]) -> str:
    wanted = sorted(set(days))
    if len(wanted) == 7:
        return str(EVERY_DAY)
    runs: list[list[int]] = []
    for day in wanted:
        if runs and runs[-1][-1] == day - 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    parts = []
    for run in runs:
        if len(run) >= 3:
            parts.append(f"{DAY_NAMES[run[0]]}–{DAY_NAMES[run[-1]]}")
        else:
            parts.extend(str(DAY_NAMES[day]) for day in run)
    return ", ".join(parts)


def _currency(view: TradeView) -> str | None:
    return view.state.currency if view.state is not None else None


def size_text(settings: TradeSettings, currency: str | None) -> str:
    if settings.sizing_mode is SizingMode.RISK_PERCENT and settings.risk_percent is not None:
        template = SIZE_RISK_BALANCE if settings.risk_of is RiskOf.BALANCE else SIZE_RISK_EQUITY
        size = template.format(percent=f"{settings.risk_percent.normalize():f}")
    elif settings.sizing_mode is SizingMode.RISK_MONEY and settings.risk_money_minor is not None:
        size = SIZE_RISK_MONEY.format(amount=money_minor(settings.risk_money_minor, currency))
    elif settings.sizing_mode is SizingMode.FIXED:
        size = str(SIZE_FIXED)
    else:
        size = str(SIZE_RISK_UNSET)
    if settings.max_lots is not None:
        size += ", " + SIZE_MAX_LOTS.format(lots=format_lot(settings.max_lots))
    return size


def tps_text(settings: TradeSettings) -> str:
    if settings.tp_mode is TpMode.FIRST:
        return str(TP_FIRST)
    if settings.tp_shares is None:
        return str(TP_EQUAL)
    shares = " / ".join(f"{share:f}" for share in shares_percent(settings.tp_shares))
    return TP_SHARES.format(shares=shares)


def breakeven_text(settings: TradeSettings) -> str:
    if settings.breakeven_after_leg is None:
        return str(OFF)
    return BREAKEVEN_AFTER.format(
        tp=settings.breakeven_after_leg + 1, offset=settings.breakeven_offset_points
    )


def trailing_start_text(settings: TradeSettings) -> str:
    if settings.trailing_start is TrailingStart.AFTER_BREAKEVEN:
        return str(TRAILING_AFTER_BREAKEVEN)
    return str(TRAILING_AT_OPEN)


def trailing_text(settings: TradeSettings) -> str:
    if settings.trailing_distance_points is None:
        return str(OFF)
    return TRAILING_ON.format(
        distance=settings.trailing_distance_points,
        step=settings.trailing_step_points,
        start=trailing_start_text(settings),
    )


def _points(value: int | None) -> str:
    return str(OFF) if value is None else POINTS.format(n=value)


def guards_text(settings: TradeSettings) -> str:
    parts = []
    if settings.max_spread_points is not None:
        parts.append(GUARD_SPREAD.format(points=settings.max_spread_points))
    if settings.max_distance_points is not None:
        parts.append(GUARD_DISTANCE.format(points=settings.max_distance_points))
    return ", ".join(parts) or str(OFF)


def _symbols(symbols: Sequence[str]) -> str:
    return ", ".join(html.quote(symbol) for symbol in symbols)


def protections_text(settings: TradeSettings, currency: str | None) -> str:
    parts = []
    if settings.max_open_positions is not None:
        parts.append(PROTECT_POSITIONS.format(n=settings.max_open_positions))
    if settings.daily_loss_limit_minor is not None:
        parts.append(
            PROTECT_LOSS.format(amount=money_minor(settings.daily_loss_limit_minor, currency))
        )
    if settings.symbols_allowed:
        parts.append(PROTECT_ALLOWED.format(symbols=_symbols(settings.symbols_allowed)))
    if settings.symbols_denied:
        parts.append(PROTECT_DENIED.format(symbols=_symbols(settings.symbols_denied)))
    if settings.trading_hours is not None:
        parts.append(PROTECT_HOURS.format(hours=hours_text(settings.trading_hours)))
    return ", ".join(parts) or str(NONE_SET)


def _position(position: PositionLine, currency: str) -> str:
    return STATE_POSITION.format(
        symbol=html.quote(position.symbol),
        side=html.quote(position.side),
        volume=html.quote(position.volume),
        price=html.quote(position.open_price),
        profit=html.quote(position.profit),
        currency=html.quote(currency),
    )


def state_lines(state: DeviceStateDTO | None, now: datetime) -> list[str]:
    """The EA, the account and the open positions, as the device last reported them."""
    if state is None:
        return [str(STATE_NONE)]
    platform = html.quote(state.platform.upper())
    if state.build is not None:
        platform += " " + BUILD.format(build=state.build)
    currency = html.quote(state.currency)
    lines = [
        STATE_EA.format(
            ea=html.quote(state.ea_name),
            version=html.quote(state.ea_version),
            platform=platform,
            protocol=html.quote(state.protocol),
        ),
        STATE_ACCOUNT.format(
            balance=amount(state.balance),
            equity=amount(state.equity),
            currency=currency,
            ago=ago(now - state.received_at),
        ),
        STATE_POSITIONS.format(len(state.positions)),
    ]
    lines.extend(_position(p, state.currency) for p in state.positions[:POSITIONS_SHOWN])
    if len(state.positions) > POSITIONS_SHOWN:
        lines.append(STATE_MORE_POSITIONS.format(len(state.positions) - POSITIONS_SHOWN))
    return lines


def trade_lines(view: TradeView, now: datetime) -> str:
    """The device screen's part about trade management: state, then one line per group."""
    settings, currency = view.settings, _currency(view)
    lines = state_lines(view.state, now)
    if not view.is_v11:
        lines.append(str(NEEDS_UPDATE))
    lines += [
        SIZE_LINE.format(size=size_text(settings, currency)),
        TP_LINE.format(tps=tps_text(settings)),
        BREAKEVEN_LINE.format(breakeven=breakeven_text(settings)),
        TRAILING_LINE.format(trailing=trailing_text(settings)),
        GUARDS_LINE.format(guards=guards_text(settings)),
        PROTECTIONS_LINE.format(protections=protections_text(settings, currency)),
    ]
    return "\n".join(lines)


def size_screen(device: DeviceDTO, view: TradeView) -> str:
    settings = view.settings
    return SIZE_SCREEN.format(
        name=html.quote(device.name),
        size=SIZE_LINE.format(size=size_text(settings, _currency(view))),
        lot=format_lot(device.lot_size),
        max_lots=str(NONE_SET) if settings.max_lots is None else format_lot(settings.max_lots),
    )


def take_profits_screen(device: DeviceDTO, view: TradeView) -> str:
    return TAKE_PROFITS_SCREEN.format(
        name=html.quote(device.name), tps=TP_LINE.format(tps=tps_text(view.settings))
    )


def stops_screen(device: DeviceDTO, view: TradeView) -> str:
    return STOPS_SCREEN.format(
        name=html.quote(device.name),
        breakeven=BREAKEVEN_LINE.format(breakeven=breakeven_text(view.settings)),
        trailing=TRAILING_LINE.format(trailing=trailing_text(view.settings)),
    )


def guards_screen(device: DeviceDTO, view: TradeView) -> str:
    return GUARDS_SCREEN.format(
        name=html.quote(device.name),
        spread=_points(view.settings.max_spread_points),
        distance=_points(view.settings.max_distance_points),
    )


def protections_screen(device: DeviceDTO, view: TradeView) -> str:
    settings = view.settings
    return PROTECTIONS_SCREEN.format(
        name=html.quote(device.name),
        positions=str(OFF)
        if settings.max_open_positions is None
        else str(settings.max_open_positions),
        loss=str(OFF)
        if settings.daily_loss_limit_minor is None
        else money_minor(settings.daily_loss_limit_minor, _currency(view)),
        allowed=_symbols(settings.symbols_allowed) or str(ALL_SYMBOLS),
        denied=_symbols(settings.symbols_denied) or str(NONE_SET),
        hours=str(ANY_TIME)
        if settings.trading_hours is None
        else hours_text(settings.trading_hours),
    )


def currency_hint(view: TradeView) -> str:
    """`` (USD)`` after "the account currency" when the device reported it."""
    currency = _currency(view)
    return f" ({html.quote(currency)})" if currency else ""


def confirm_close_all(device: DeviceDTO, view: TradeView) -> str:
    count = len(view.state.positions) if view.state is not None else 0
    return CONFIRM_CLOSE_ALL.format(count, name=html.quote(device.name))


# What each trade-management error code says (bot/chat/texts/errors.py merges them).
TRADE_MESSAGES: dict[ErrorCode, Text] = {
    ErrorCode.RISK_PERCENT_INVALID: Text(
        "Send a percentage such as 1 or 0.5, from 0.01 to {max}, at most two decimals."
    ),
    ErrorCode.MONEY_INVALID: Text(
        "Send a positive amount such as 50 or 12.50, at most two decimals."
    ),
    ErrorCode.MAX_LOTS_INVALID: Text(
        "Send a lot size such as 2.00, from {min} to {max}, or <code>-</code> for no cap."
    ),
    ErrorCode.TP_SHARES_COUNT: Text(
        "Send 2 to {max} shares separated by spaces, e.g. <code>50 30 20</code>."
    ),
    ErrorCode.TP_SHARE_INVALID: Text(
        "<code>{item}</code> is not a share: each is a positive percentage such as 50 or 33.5."
    ),
    ErrorCode.TP_SHARES_SUM: Text("The shares add up to {total}, not 100."),
    ErrorCode.BREAKEVEN_INVALID: Text(
        "Send the take profit (1 to {max_tp}) and the offset in points (0 to {max}), e.g. "
        "<code>1 10</code>, or <code>-</code> for off."
    ),
    ErrorCode.TRAILING_INVALID: Text(
        "Send the distance (1 to {max} points) and the step (0 to {max}), e.g. "
        "<code>200 50</code>, or <code>-</code> for off."
    ),
    ErrorCode.POINTS_INVALID: Text(
        "Send whole points from 1 to {max}, e.g. <code>30</code>, or <code>-</code> for off."
    ),
    ErrorCode.POSITIONS_INVALID: Text(
        "Send a whole number from 1 to {max}, or <code>-</code> for no limit."
    ),
    ErrorCode.SYMBOL_INVALID: Text(
        "<code>{item}</code> is not a symbol: use 1-32 letters, digits or . _ # -"
    ),
    ErrorCode.SYMBOLS_TOO_MANY: Text("At most {limit} symbols, please."),
    ErrorCode.HOURS_INVALID: Text(
        "Write the days and the hours in UTC like <code>Mon-Fri 07:00-20:00</code> or "
        "<code>Mon,Wed 08:00-12:00</code>."
    ),
    ErrorCode.HOURS_ORDER: Text(
        "The start and the end must differ (UTC), e.g. <code>07:00-20:00</code>, or "
        "<code>22:00-06:00</code> for a window that runs past midnight."
    ),
    ErrorCode.CLOSE_ALL_NEEDS_UPDATE: Text(
        "Close all needs the updated EA (protocol 1.1) on this device: see ea/README.md."
    ),
}
