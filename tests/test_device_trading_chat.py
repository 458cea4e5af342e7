"""/devices, trade management (protocol v1.1) through the real dispatcher: every setting
typed or pressed and stored, bad input refused with nothing stored, /cancel, forged
presses, the device's reported state on its screen, and Close all down to a device's poll."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.chat import texts
from bot.chat.callbacks import DeviceAction, SettingsCb, SettingsToggle
from bot.container import Container
from bot.domain.devices import DeviceDTO
from bot.domain.errors import ErrorCode
from db.models import Device, DeviceState, Instruction, UserSettings
from tests.conftest import Chat, FakeClock
from tests.devices_support import OTHER_ID, OWNER_ID, EAClient, add_device, buttons
from tests.fake_bot_api import Call, FakeBotAPI
from tests.test_devices_chat import alert, location_update, press_data, shown
from webhook_server import create_app

# Every column a trade-management setting writes: a refusal must leave all of them alone.
TRADE_COLUMNS = (
    "lot_size",
    "sizing_mode",
    "risk_percent",
    "risk_of",
    "risk_money_minor",
    "max_lots",
    "tp_mode",
    "tp_shares",
    "breakeven_after_leg",
    "breakeven_offset_points",
    "trailing_distance_points",
    "trailing_step_points",
    "trailing_start",
    "max_spread_points",
    "max_distance_points",
    "max_open_positions",
    "daily_loss_limit_minor",
    "symbols_allowed",
    "symbols_denied",
    "trading_hours",
)
POSITION = {
    "ticket": 5012345,
    "instruction_id": "ins_abc",
    "leg": 0,
    "symbol": "EURUSD.m",
    "side": "buy",
    "volume": "0.10",
    "open_price": "1.08512",
    "stop_loss": "1.08000",
    "take_profit": "1.09500",
    "profit": "12.50",
}


def shown_call(calls: list[Call]) -> Call:
    return next(c for c in calls if c.method in {"sendMessage", "editMessageText"})


async def row_of(container: Container, device: DeviceDTO) -> Device:
    async with container.sessionmaker() as session:
        row = await session.get(Device, device.pk)
        assert row is not None
        return row


async def trade_columns(container: Container, device: DeviceDTO) -> dict[str, Any]:
    row = await row_of(container, device)
    return {name: getattr(row, name) for name in TRADE_COLUMNS}


async def instructions_of(container: Container, device: DeviceDTO) -> list[Instruction]:
    async with container.sessionmaker() as session:
        query = select(Instruction).where(Instruction.device_id == device.pk)
        return list((await session.scalars(query)).all())


async def report_state(
    container: Container,
    device: DeviceDTO,
    *,
    protocol: str = "1.1",
    positions: list[dict[str, Any]] | None = None,
    ago: timedelta = timedelta(seconds=30),
) -> None:
    """A stored state as POST /api/v1/ea/state leaves it (EA_PROTOCOL 5.1)."""
    async with container.sessionmaker.begin() as session:
        session.add(
            DeviceState(
                device_id=device.pk,
                protocol=protocol,
                ea_name="SignalBridge",
                ea_version="1.1.0",
                platform="mt5",
                build=4620,
                currency="USD",
                balance=Decimal("10000.00"),
                equity=Decimal("10012.50"),
                margin_free=Decimal("9800.00"),
                leverage=100,
                trade_allowed=True,
                positions=[POSITION] if positions is None else positions,
                symbols=[],
                received_at=container.clock() - ago,
            )
        )


# --- typed settings: the happy path stores the columns; bad input stores nothing ---

HOURS_WEEKDAYS = {"days": [0, 1, 2, 3, 4], "start": "07:00", "end": "20:00"}


@pytest.mark.parametrize(
    ("action", "bad", "reason", "good", "columns", "shown_back"),
    [
        (
            DeviceAction.RISK_BALANCE,
            "0",
            ErrorCode.RISK_PERCENT_INVALID,
            "1,5",
            {"sizing_mode": "risk_percent", "risk_of": "balance", "risk_percent": Decimal("1.5")},
            "Size: risk 1.5% of the balance",
        ),
        (
            DeviceAction.RISK_EQUITY,
            "100.5",
            ErrorCode.RISK_PERCENT_INVALID,
            "0.25",
            {"sizing_mode": "risk_percent", "risk_of": "equity", "risk_percent": Decimal("0.25")},
            "Size: risk 0.25% of the equity",
        ),
        (
            DeviceAction.RISK_MONEY,
            "12.345",
            ErrorCode.MONEY_INVALID,
            "50",
            {"sizing_mode": "risk_money", "risk_money_minor": 5000},
            "Size: risk 50.00 of the account currency per trade",
        ),
        (
            DeviceAction.MAX_LOTS,
            "0",
            ErrorCode.MAX_LOTS_INVALID,
            "2",
            {"max_lots": Decimal("2")},
            "Max lot size: 2.00",
        ),
        (
            DeviceAction.TP_SHARES,
            "50 30",
            ErrorCode.TP_SHARES_SUM,
            "50 30 20",
            {"tp_mode": "split", "tp_shares": ["0.5", "0.3", "0.2"]},
            "Take profits: split 50 / 30 / 20 %",
        ),
        (
            DeviceAction.TP_SHARES,
            "100",
            ErrorCode.TP_SHARES_COUNT,
            "33.34 33.33 33.33",
            {"tp_mode": "split", "tp_shares": ["0.3334", "0.3333", "0.3333"]},
            "Take profits: split 33.34 / 33.33 / 33.33 %",
        ),
        (
            DeviceAction.TP_SHARES,
            "50 x 50",
            ErrorCode.TP_SHARE_INVALID,
            "60% 40%",
            {"tp_mode": "split", "tp_shares": ["0.6", "0.4"]},
            "Take profits: split 60 / 40 %",
        ),
        (
            DeviceAction.BREAKEVEN,
            "0 10",
            ErrorCode.BREAKEVEN_INVALID,
            "2 15",
            {"breakeven_after_leg": 1, "breakeven_offset_points": 15},
            "Breakeven: after TP2, 15 points beyond the open",
        ),
        (
            DeviceAction.TRAILING,
            "far",
            ErrorCode.TRAILING_INVALID,
            "200 50",
            {"trailing_distance_points": 200, "trailing_step_points": 50},
            "Trailing: 200 points, step 50, from the open",
        ),
        (
            DeviceAction.MAX_SPREAD,
            "-5",
            ErrorCode.POINTS_INVALID,
            "30",
            {"max_spread_points": 30},
            "Max spread: 30 points",
        ),
        (
            DeviceAction.MAX_DISTANCE,
            "0",
            ErrorCode.POINTS_INVALID,
            "50",
            {"max_distance_points": 50},
            "Max distance: 50 points",
        ),
        (
            DeviceAction.MAX_POSITIONS,
            "1001",
            ErrorCode.POSITIONS_INVALID,
            "3",
            {"max_open_positions": 3},
            "Max open positions: 3",
        ),
        (
            DeviceAction.LOSS_LIMIT,
            "-100",
            ErrorCode.MONEY_INVALID,
            "250,5",
            {"daily_loss_limit_minor": 25050},
            "Daily loss limit: 250.50 of the account currency",
        ),
        (
            DeviceAction.SYMBOLS_ALLOWED,
            "EURUSD, GOLD!",
            ErrorCode.SYMBOL_INVALID,
            "eurusd, GBPUSD xauusd EURUSD",
            {"symbols_allowed": ["EURUSD", "GBPUSD", "XAUUSD"]},
            "Allowed symbols: EURUSD, GBPUSD, XAUUSD",
        ),
        (
            DeviceAction.SYMBOLS_DENIED,
            "X" * 33,
            ErrorCode.SYMBOL_INVALID,
            "US30",
            {"symbols_denied": ["US30"]},
            "Denied symbols: US30",
        ),
        (
            DeviceAction.HOURS,
            "Mon-Fri 08:00-08:00",
            ErrorCode.HOURS_ORDER,
            "Mon-Fri 07:00-20:00",
            {"trading_hours": HOURS_WEEKDAYS},
            "Trading hours: Mon–Fri 07:00–20:00 UTC",
        ),
        (
            DeviceAction.HOURS,
            "Mon-Fri 08:00-08:00",
            ErrorCode.HOURS_ORDER,
            "Sun-Thu 22:00-06:00",
            {"trading_hours": {"days": [0, 1, 2, 3, 6], "start": "22:00", "end": "06:00"}},
            "22:00–06:00 UTC (ends the next day)",
        ),
        (
            DeviceAction.HOURS,
            "Funday 07:00-20:00",
            ErrorCode.HOURS_INVALID,
            "сб,вс 9:00-12:30",
            {"trading_hours": {"days": [5, 6], "start": "09:00", "end": "12:30"}},
            "Trading hours: Sat, Sun 09:00–12:30 UTC",
        ),
        (
            DeviceAction.HOURS,
            "Mon-Fri 07:00-24:00",
            ErrorCode.HOURS_INVALID,
            "Fri-Mon 22:00-23:59",
            {"trading_hours": {"days": [0, 4, 5, 6], "start": "22:00", "end": "23:59"}},
            "Trading hours: Mon, Fri–Sun 22:00–23:59 UTC",
        ),
    ],
)
async def test_typed_setting_refuses_bad_input_then_stores(
    chat: Chat,
    container: Container,
    fake_api: FakeBotAPI,
    action: DeviceAction,
    bad: str,
    reason: ErrorCode,
    good: str,
    columns: dict[str, Any],
    shown_back: str,
) -> None:
    device, _ = await add_device(container, name="Office")
    before = await trade_columns(container, device)
    assert {name: before[name] for name in columns} != columns
    [question] = shown(await chat.press(OWNER_ID, press_data(action, device.pk)))
    assert "/cancel" in question and "<b>Office</b>" in question
    [refusal] = await chat.send(OWNER_ID, bad)
    assert refusal.endswith(f"\n\n{question}")
    assert worded(refusal.removesuffix(f"\n\n{question}"), reason), refusal
    assert await trade_columns(container, device) == before  # nothing stored
    await chat.feed(location_update(OWNER_ID))
    assert fake_api.last("sendMessage").text == f"{texts.HINT_SEND_TEXT}\n\n{question}"
    [saved] = await chat.send(OWNER_ID, good)
    assert saved.startswith(str(texts.DEVICE_UPDATED))
    assert shown_back in saved  # the value read back, on its group's screen
    after = await trade_columns(container, device)
    assert {name: after[name] for name in columns} == columns
    # Nothing else changed, and the step is over.
    assert {k: v for k, v in after.items() if k not in columns} == {
        k: v for k, v in before.items() if k not in columns
    }
    assert await chat.send(OWNER_ID, good) == [str(texts.NOT_A_COMMAND)]


def worded(text: str, code: ErrorCode) -> bool:
    """``text`` is the code's message with its placeholders filled in."""
    pattern = re.sub(r"\\\{[a-z_]+\\\}", ".+?", re.escape(str(texts.MESSAGES[code])))
    return re.fullmatch(pattern, text) is not None


async def test_settings_switched_off_with_a_dash(chat: Chat, container: Container) -> None:
    device, _ = await add_device(container, name="Office")
    typed = {
        DeviceAction.MAX_LOTS: "2",
        DeviceAction.BREAKEVEN: "1",
        DeviceAction.TRAILING: "150",
        DeviceAction.MAX_SPREAD: "30",
        DeviceAction.MAX_DISTANCE: "50",
        DeviceAction.MAX_POSITIONS: "3",
        DeviceAction.LOSS_LIMIT: "100",
        DeviceAction.SYMBOLS_ALLOWED: "EURUSD",
        DeviceAction.SYMBOLS_DENIED: "XAUUSD",
        DeviceAction.HOURS: "07:00-20:00",
    }
    for action, text in typed.items():
        await chat.press(OWNER_ID, press_data(action, device.pk))
        [saved] = await chat.send(OWNER_ID, text)
        assert saved.startswith(str(texts.DEVICE_UPDATED)), (action, saved)
    row = await row_of(container, device)
    assert (row.breakeven_after_leg, row.breakeven_offset_points) == (0, 0)
    assert (row.trailing_distance_points, row.trailing_step_points) == (150, 0)
    assert row.trading_hours == {"days": list(range(7)), "start": "07:00", "end": "20:00"}
    [card] = shown(await chat.press(OWNER_ID, press_data(DeviceAction.MENU, device.pk)))
    assert "Protections: at most 3 open positions, daily loss limit 100.00" in card
    assert "only EURUSD, never XAUUSD, hours every day 07:00–20:00 UTC" in card
    assert "Guards: spread at most 30 points, price at most 50 points" in card

    for action in typed:
        await chat.press(OWNER_ID, press_data(action, device.pk))
        await chat.send(OWNER_ID, "-")
    row = await row_of(container, device)
    assert (row.max_lots, row.breakeven_after_leg, row.trailing_distance_points) == (
        None,
        None,
        None,
    )
    assert (row.max_spread_points, row.max_distance_points, row.max_open_positions) == (
        None,
        None,
        None,
    )
    assert (row.daily_loss_limit_minor, row.trading_hours) == (None, None)
    assert (row.symbols_allowed, row.symbols_denied) == ([], [])
    [card] = shown(await chat.press(OWNER_ID, press_data(DeviceAction.MENU, device.pk)))
    assert "Breakeven: off" in card and "Trailing: off" in card
    assert "Guards: off" in card and "Protections: none" in card


async def test_typed_in_russian(chat: Chat, container: Container) -> None:
    device, _ = await add_device(container, name="Office")
    await chat.press(OWNER_ID, press_data(DeviceAction.HOURS, device.pk))
    [refusal] = await chat.send(OWNER_ID, "Пн-Пт 20:00-20:00", language_code="ru")
    assert refusal.startswith("Начало и конец должны различаться")
    assert (await row_of(container, device)).trading_hours is None
    [saved] = await chat.send(OWNER_ID, "пн - пт 07:00 - 20:00", language_code="ru")
    assert saved.startswith("Сохранено.") and "Часы торговли: Пн–Пт 07:00–20:00 UTC" in saved
    assert (await row_of(container, device)).trading_hours == HOURS_WEEKDAYS


# --- modes chosen with a button ---


async def test_mode_buttons(chat: Chat, container: Container) -> None:
    device, _ = await add_device(container, name="Office")
    [size] = shown(await chat.press(OWNER_ID, press_data(DeviceAction.SIZE, device.pk)))
    assert "Size: fixed lot size" in size and "Lot size: 0.01" in size
    await chat.press(OWNER_ID, press_data(DeviceAction.RISK_EQUITY, device.pk))
    await chat.send(OWNER_ID, "2")
    assert (await row_of(container, device)).sizing_mode == "risk_percent"
    calls = await chat.press(OWNER_ID, press_data(DeviceAction.SIZE_FIXED, device.pk))
    assert alert(calls) == str(texts.DEVICE_UPDATED)
    labels = buttons(shown_call(calls))
    assert f"✅ {texts.BUTTON_SIZE_FIXED}" in labels
    row = await row_of(container, device)
    assert (row.sizing_mode, row.risk_percent, row.risk_of) == ("fixed", Decimal("2"), "equity")

    await chat.press(OWNER_ID, press_data(DeviceAction.TP_SHARES, device.pk))
    await chat.send(OWNER_ID, "70 30")
    calls = await chat.press(OWNER_ID, press_data(DeviceAction.TP_EQUAL, device.pk))
    assert "Take profits: split equally" in shown(calls)[0]
    assert f"✅ {texts.BUTTON_TP_EQUAL}" in buttons(shown_call(calls))
    row = await row_of(container, device)
    assert (row.tp_mode, row.tp_shares) == ("split", None)
    calls = await chat.press(OWNER_ID, press_data(DeviceAction.TP_FIRST, device.pk))
    assert "Take profits: first only" in shown(calls)[0]
    row = await row_of(container, device)
    assert (row.tp_mode, row.tp_shares) == ("first", None)

    calls = await chat.press(OWNER_ID, press_data(DeviceAction.TRAILING_START, device.pk))
    assert (await row_of(container, device)).trailing_start == "after_breakeven"
    assert texts.BUTTON_TRAILING_START.format(start=texts.TRAILING_AFTER_BREAKEVEN) in buttons(
        shown_call(calls)
    )
    await chat.press(OWNER_ID, press_data(DeviceAction.TRAILING_START, device.pk))
    assert (await row_of(container, device)).trailing_start == "at_open"


async def test_the_device_list_says_how_each_device_sizes(chat: Chat, container: Container) -> None:
    fixed, _ = await add_device(container, name="Office")
    risky, _ = await add_device(container, name="Laptop")
    await chat.press(OWNER_ID, press_data(DeviceAction.RISK_EQUITY, risky.pk))
    await chat.send(OWNER_ID, "1.5")
    [listing] = await chat.send(OWNER_ID, "/devices")
    office, laptop = (line for line in listing.splitlines() if " · " in line)
    assert office.startswith("<b>Office</b>") and office.endswith("lot 0.01")
    assert laptop.startswith("<b>Laptop</b>") and laptop.endswith("risk 1.5% of the equity")
    await chat.press(OWNER_ID, press_data(DeviceAction.RISK_MONEY, fixed.pk))
    await chat.send(OWNER_ID, "50")
    [listing] = await chat.send(OWNER_ID, "/devices", language_code="ru")
    assert "риск 50.00 на сделку" in listing and "риск 1.5% от средств" in listing


async def test_device_screen_groups_the_settings(chat: Chat, container: Container) -> None:
    device, _ = await add_device(container, name="Office")
    calls = await chat.press(OWNER_ID, press_data(DeviceAction.MENU, device.pk))
    menu = buttons(shown_call(calls))
    assert len(menu) <= 13  # a phone screen: groups open their own screens
    for label, action in [
        (texts.BUTTON_SIZE, DeviceAction.SIZE),
        (texts.BUTTON_TAKE_PROFITS, DeviceAction.TAKE_PROFITS),
        (texts.BUTTON_STOPS, DeviceAction.STOPS),
        (texts.BUTTON_GUARDS, DeviceAction.GUARDS),
        (texts.BUTTON_PROTECTIONS, DeviceAction.PROTECTIONS),
        (texts.BUTTON_CLOSE_ALL, DeviceAction.CLOSE_ALL),
    ]:
        assert menu[str(label)] == press_data(action, device.pk)
    for action in (DeviceAction.STOPS, DeviceAction.GUARDS, DeviceAction.PROTECTIONS):
        calls = await chat.press(OWNER_ID, press_data(action, device.pk))
        [text] = shown(calls)
        assert text.startswith("<b>") and "Office" in text
        assert buttons(shown_call(calls))[str(texts.BUTTON_BACK)] == press_data(
            DeviceAction.MENU, device.pk
        )


async def test_cancel_leaves_trade_settings_alone(chat: Chat, container: Container) -> None:
    device, _ = await add_device(container, name="Office")
    before = await trade_columns(container, device)
    for action in (DeviceAction.RISK_MONEY, DeviceAction.TP_SHARES, DeviceAction.HOURS):
        await chat.press(OWNER_ID, press_data(action, device.pk))
        assert await chat.send(OWNER_ID, "/cancel") == [str(texts.CANCELLED)]
    assert await chat.send(OWNER_ID, "50") == [str(texts.NOT_A_COMMAND)]
    assert await trade_columns(container, device) == before


FORGED = [
    DeviceAction.SIZE,
    DeviceAction.SIZE_FIXED,
    DeviceAction.RISK_BALANCE,
    DeviceAction.MAX_LOTS,
    DeviceAction.TAKE_PROFITS,
    DeviceAction.TP_FIRST,
    DeviceAction.TP_EQUAL,
    DeviceAction.TP_SHARES,
    DeviceAction.STOPS,
    DeviceAction.BREAKEVEN,
    DeviceAction.TRAILING_START,
    DeviceAction.GUARDS,
    DeviceAction.MAX_SPREAD,
    DeviceAction.PROTECTIONS,
    DeviceAction.HOURS,
    DeviceAction.CLOSE_ALL,
    DeviceAction.CLOSE_ALL_CONFIRM,
]


@pytest.mark.parametrize("action", FORGED)
async def test_forged_press_on_another_users_device(
    chat: Chat, container: Container, action: DeviceAction
) -> None:
    victim, _ = await add_device(container, owner_id=OTHER_ID, name="Victim")
    await report_state(container, victim)
    before = await trade_columns(container, victim)
    await chat.send(OWNER_ID, "/start")
    calls = await chat.press(OWNER_ID, press_data(action, victim.pk))
    assert alert(calls) == str(texts.NOT_AVAILABLE)
    assert shown(calls) == []
    assert await trade_columns(container, victim) == before
    assert await instructions_of(container, victim) == []
    assert await chat.send(OWNER_ID, "1") == [str(texts.NOT_A_COMMAND)]  # no step opened


# --- the state the device reported ---


async def test_screen_shows_the_reported_state(chat: Chat, container: Container) -> None:
    device, _ = await add_device(container, name="Office")
    positions = [dict(POSITION, ticket=5012345 + i, symbol=f"SYM{i}") for i in range(7)]
    positions[0] = POSITION
    await report_state(container, device, positions=positions, ago=timedelta(minutes=3))
    [card] = shown(await chat.press(OWNER_ID, press_data(DeviceAction.MENU, device.pk)))
    assert "EA: SignalBridge 1.1.0 · MT5 build 4620 · protocol 1.1" in card
    assert "Account: balance 10000.00 USD, equity 10012.50 USD (3 min ago)" in card
    assert "Open positions: 7" in card
    assert "• EURUSD.m buy 0.10 at 1.08512, profit 12.50 USD" in card
    assert "• SYM4 buy" in card and "SYM5" not in card
    assert "• … and 2 more" in card
    assert str(texts.NEEDS_UPDATE) not in card
    # The account currency is named where the owner types money.
    [question] = shown(await chat.press(OWNER_ID, press_data(DeviceAction.RISK_MONEY, device.pk)))
    assert "in the account currency (USD)" in question
    [saved] = await chat.send(OWNER_ID, "12.5")
    assert "Size: risk 12.50 USD per trade" in saved


async def test_v1_device_is_told_to_update_the_ea(chat: Chat, container: Container) -> None:
    never, _ = await add_device(container, name="Never")
    old, _ = await add_device(container, name="Old")
    await report_state(container, old, protocol="1.0")
    [card] = shown(await chat.press(OWNER_ID, press_data(DeviceAction.MENU, never.pk)))
    assert str(texts.STATE_NONE) in card and str(texts.NEEDS_UPDATE) in card
    [card] = shown(await chat.press(OWNER_ID, press_data(DeviceAction.MENU, old.pk)))
    assert "protocol 1.0" in card and str(texts.NEEDS_UPDATE) in card
    # The settings can still be set.
    await chat.press(OWNER_ID, press_data(DeviceAction.RISK_BALANCE, old.pk))
    [saved] = await chat.send(OWNER_ID, "1")
    assert saved.startswith(str(texts.DEVICE_UPDATED))
    assert (await row_of(container, old)).risk_percent == Decimal("1")
    # Close all explains instead of asking.
    for device in (never, old):
        calls = await chat.press(OWNER_ID, press_data(DeviceAction.CLOSE_ALL, device.pk))
        [text] = shown(calls)
        assert text == texts.CLOSE_ALL_NEEDS_UPDATE.format(name=device.name)
        assert "<code>ea/README.md</code>" in text
        assert set(buttons(shown_call(calls))) == {str(texts.BUTTON_BACK)}
        # A confirmation forged for it issues nothing either.
        calls = await chat.press(OWNER_ID, press_data(DeviceAction.CLOSE_ALL_CONFIRM, device.pk))
        assert alert(calls) == str(texts.MESSAGES[ErrorCode.CLOSE_ALL_NEEDS_UPDATE])
        assert await instructions_of(container, device) == []


# --- Close all ---


@pytest.fixture
async def server(container: Container, aiohttp_client: Any) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(container))


async def test_close_all_confirmed_reaches_the_device(
    chat: Chat, container: Container, clock: FakeClock, server: TestClient[Any, Any]
) -> None:
    device, credentials = await add_device(container, name="Office")
    await report_state(container, device, positions=[POSITION, dict(POSITION, ticket=2)])
    ea = EAClient(server, clock, credentials.device_id, credentials.secret)
    response = await ea.get("/api/v1/ea/instructions?wait=0")
    assert (await response.json())["instructions"] == []  # the hub knows it is idle now

    calls = await chat.press(OWNER_ID, press_data(DeviceAction.CLOSE_ALL, device.pk))
    [question] = shown(calls)
    assert question == texts.CONFIRM_CLOSE_ALL.format(2, name="Office")
    assert question.startswith(
        "Close all 2 positions opened by signalbridge on <b>Office</b>? Other trades on the "
        "account are not touched."
    )
    assert await instructions_of(container, device) == []  # nothing before the confirmation
    no = buttons(shown_call(calls))[str(texts.BUTTON_KEEP_OPEN)]
    assert shown(await chat.press(OWNER_ID, no))[0].startswith("<b>Office</b>")
    assert await instructions_of(container, device) == []

    generation = container.device_hub.generation(device.pk)
    calls = await chat.press(OWNER_ID, press_data(DeviceAction.CLOSE_ALL_CONFIRM, device.pk))
    assert alert(calls) == str(texts.CLOSE_ALL_SENT_TOAST)
    assert shown(calls)[0].startswith(texts.CLOSE_ALL_SENT.format(name="Office"))
    [instruction] = await instructions_of(container, device)
    assert (instruction.action, instruction.state) == ("close_all", "pending")
    assert (instruction.signal_id, instruction.symbol) == (None, None)
    assert instruction.public_id.startswith("ins_") and instruction.issued_at == clock.now
    assert container.device_hub.generation(device.pk) != generation  # its polls were woken

    # A second press of the same confirmation issues nothing more.
    await chat.press(OWNER_ID, press_data(DeviceAction.CLOSE_ALL_CONFIRM, device.pk))
    assert len(await instructions_of(container, device)) == 1

    response = await ea.get("/api/v1/ea/instructions?wait=0")
    assert response.status == 200
    [served] = (await response.json())["instructions"]
    assert (served["id"], served["action"]) == (instruction.public_id, "close_all")


# --- /settings ---


async def test_close_notifications_toggle(chat: Chat, container: Container) -> None:
    [text] = await chat.send(OWNER_ID, "/settings")
    assert "Close notifications</b>: on" in text
    calls = await chat.press(OWNER_ID, SettingsCb(toggle=SettingsToggle.NOTIFY_CLOSES).pack())
    assert alert(calls) == "Close notifications: off."
    [edit] = [c for c in calls if c.method == "editMessageText"]
    assert "Close notifications</b>: off" in edit.params["text"]
    async with container.sessionmaker() as session:
        row = await session.get(UserSettings, OWNER_ID)
        assert row is not None
        assert (row.notify_closes, row.notify_fills, row.notify_errors) == (False, True, True)
