"""/devices through the real dispatcher: list, add flow, menu, rotate, revoke, forged presses."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from bot.chat import texts
from bot.chat.callbacks import DeviceAction, DeviceCb, DevicePlatformCb, DevicesAction, DevicesCb
from bot.container import Container
from bot.domain.errors import ErrorCode
from bot.execution.device_keys import derive_secret
from db.models import Device
from tests.conftest import Chat, FakeClock
from tests.devices_support import OTHER_ID, OWNER_ID, add_device, buttons
from tests.fake_bot_api import Call, FakeBotAPI, message_update

ADD = DevicesCb(action=DevicesAction.ADD).pack()
MT5 = DevicePlatformCb(platform="mt5").pack()
CREDENTIALS_RE = re.compile(
    r"Device ID: <code>(dev_[A-Za-z0-9]{16,32})</code>\nSecret: <code>([A-Za-z0-9_-]{32,64})</code>"
)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"devices": {"max_per_user": 2}}


def press_data(action: DeviceAction, device: int, version: int = 0) -> str:
    return DeviceCb(action=action, device=device, version=version).pack()


def alert(calls: list[Call]) -> str | None:
    answers = [c for c in calls if c.method == "answerCallbackQuery"]
    assert len(answers) == 1, "every press is answered exactly once"
    text = answers[0].params.get("text")
    return str(text) if text is not None else None


def shown(calls: list[Call]) -> list[str]:
    return [str(c.text) for c in calls if c.method in {"sendMessage", "editMessageText"}]


def first_shown(calls: list[Call]) -> Call:
    """The first message sent or edited (the callback answer may come before it)."""
    return next(c for c in calls if c.method in {"sendMessage", "editMessageText"})


async def stored(container: Container, owner_id: int = OWNER_ID) -> list[Device]:
    async with container.sessionmaker() as session:
        query = select(Device).where(Device.owner_id == owner_id).order_by(Device.id)
        return list((await session.scalars(query)).all())


async def add_via_chat(chat: Chat, name: str = "Office MT5") -> tuple[str, str]:
    """Walk the add flow; return the (device_id, secret) of the credentials message."""
    await chat.press(OWNER_ID, ADD)
    await chat.send(OWNER_ID, name)
    calls = await chat.press(OWNER_ID, MT5)
    [credentials] = [c for c in calls if c.method == "sendMessage"]
    match = CREDENTIALS_RE.search(str(credentials.text))
    assert match, credentials.text
    return match.group(1), match.group(2)


def location_update(user_id: int) -> dict[str, Any]:
    update = message_update(user_id, "x")
    del update["message"]["text"]
    update["message"]["location"] = {"latitude": 52.5, "longitude": 13.4}
    return update


# --- the list ---


async def test_empty_list_offers_to_add(chat: Chat, fake_api: FakeBotAPI) -> None:
    assert await chat.send(OWNER_ID, "/devices") == [str(texts.DEVICES_EMPTY)]
    assert buttons(fake_api.last("sendMessage")) == {str(texts.BUTTON_ADD_DEVICE): ADD}


async def test_devices_only_in_a_private_chat(chat: Chat, container: Container) -> None:
    await add_device(container, name="Secretive")
    [answer] = await chat.send(OWNER_ID, "/devices", chat_id=-100200300)
    assert answer == str(texts.DEVICES_PRIVATE_ONLY)


async def test_list_shows_state_of_each_device(
    chat: Chat, container: Container, clock: FakeClock
) -> None:
    online, _ = await add_device(container, name="Online <one>")
    earlier, _ = await add_device(container, name="Earlier")
    container.device_activity.seen(online.pk, clock.now - timedelta(seconds=30))
    container.device_activity.seen(earlier.pk, clock.now - timedelta(hours=3))
    await container.device_activity.flush()
    [text] = await chat.send(OWNER_ID, "/devices")
    assert "(2 of 2)" in text
    assert "<b>Online &lt;one&gt;</b> · MT5 · 🟢 online · lot 0.01" in text
    assert "<b>Earlier</b> · MT5 · ⚪ last seen 3 h ago · lot 0.01" in text


async def test_list_shows_never_connected_and_paused(
    chat: Chat, container: Container, fake_api: FakeBotAPI
) -> None:
    device, _ = await add_device(container, name="Quiet")
    await chat.press(OWNER_ID, press_data(DeviceAction.PAUSE, device.pk))
    [text] = await chat.send(OWNER_ID, "/devices")
    assert str(texts.NEVER_SEEN) in text and str(texts.DEVICE_PAUSED) in text
    assert buttons(fake_api.last("sendMessage"))["Quiet"] == press_data(
        DeviceAction.MENU, device.pk
    )


# --- adding ---


async def test_add_flow_with_bad_input(
    chat: Chat, container: Container, fake_api: FakeBotAPI
) -> None:
    calls = await chat.press(OWNER_ID, ADD)
    assert shown(calls) == [str(texts.ASK_DEVICE_NAME)]
    for bad, reason in [
        ("x" * 33, str(texts.MESSAGES[ErrorCode.NAME_LENGTH])),
        ("   ", str(texts.MESSAGES[ErrorCode.NAME_LENGTH])),
        ("/weird", str(texts.MESSAGES[ErrorCode.NAME_SLASH])),
        ("tab\there", str(texts.MESSAGES[ErrorCode.NAME_ONE_LINE])),
    ]:
        assert await chat.send(OWNER_ID, bad) == [f"{reason}\n\n{texts.ASK_DEVICE_NAME}"]
    await chat.feed(location_update(OWNER_ID))
    assert fake_api.last("sendMessage").text == f"{texts.HINT_SEND_TEXT}\n\n{texts.ASK_DEVICE_NAME}"

    [question] = await chat.send(OWNER_ID, "  Office <MT5>  ")
    assert question == texts.ASK_DEVICE_PLATFORM.format(name="Office &lt;MT5&gt;")
    assert set(buttons(fake_api.last("sendMessage"))) == {"MT4", "MT5"}
    [hint] = await chat.send(OWNER_ID, "MT5 please")
    assert hint.startswith(str(texts.HINT_USE_BUTTONS))
    assert set(buttons(fake_api.last("sendMessage"))) == {"MT4", "MT5"}

    calls = await chat.press(OWNER_ID, DevicePlatformCb(platform="mt4").pack())
    [credentials] = [c for c in calls if c.method == "sendMessage"]
    text = str(credentials.text)
    match = CREDENTIALS_RE.search(text)
    assert match
    device_id, secret = match.groups()
    assert "http://127.0.0.1:8080" in text and "Allow WebRequest for listed URL" in text
    assert "add <code>http://127.0.0.1:8080</code> exactly" in text  # server.public_url
    assert "AutoTrading" in text  # MT4's button
    assert "<code>ea/mql4/SignalBridge.mq4</code>" in text and "<code>MQL4/Experts</code>" in text
    assert "mq5" not in text
    # The Python agent as the alternative, with the same URL and values.
    assert "SIGNALBRIDGE_SERVER_URL to <code>http://127.0.0.1:8080</code>" in text
    assert "<code>signalbridge-agent --executor paper</code>" in text

    [device] = await stored(container)
    assert (device.public_id, device.name, device.platform) == (device_id, "Office <MT5>", "mt4")
    assert device.lot_size == Decimal("0.01") and device.max_signal_age == 300
    master = container.settings.require_secret("master_key").encode()
    assert derive_secret(master, device_id, 1) == secret
    # The flow is over: text is just text again.
    assert await chat.send(OWNER_ID, "hello") == [str(texts.NOT_A_COMMAND)]


async def test_mt5_credentials_name_the_mt5_ea(
    chat: Chat, container: Container, fake_api: FakeBotAPI
) -> None:
    await chat.press(OWNER_ID, ADD)
    await chat.send(OWNER_ID, "Laptop")
    calls = await chat.press(OWNER_ID, MT5)
    [credentials] = [c for c in calls if c.method == "sendMessage"]
    text = str(credentials.text)
    assert CREDENTIALS_RE.search(text)
    assert "<code>ea/mql5/SignalBridge.mq5</code>" in text and "<code>MQL5/Experts</code>" in text
    assert "Algo Trading" in text and "mq4" not in text
    assert text.count("<code>http://127.0.0.1:8080</code>") == 3  # allow-list, input, agent


async def test_names_are_unique_per_user_ignoring_case(chat: Chat, container: Container) -> None:
    await add_device(container, name="Office")
    await add_device(container, owner_id=OTHER_ID, name="Laptop")
    await chat.press(OWNER_ID, ADD)
    [answer] = await chat.send(OWNER_ID, "OFFICE")
    assert answer.startswith(texts.MESSAGES[ErrorCode.NAME_TAKEN].format(name="OFFICE"))
    # Another user's device name is free.
    [question] = await chat.send(OWNER_ID, "Laptop")
    assert question == texts.ASK_DEVICE_PLATFORM.format(name="Laptop")


async def test_cancel_at_every_step(chat: Chat, container: Container) -> None:
    await chat.press(OWNER_ID, ADD)
    assert await chat.send(OWNER_ID, "/cancel") == [str(texts.CANCELLED)]
    await chat.press(OWNER_ID, ADD)
    await chat.send(OWNER_ID, "Office")
    assert await chat.send(OWNER_ID, "/cancel") == [str(texts.CANCELLED)]
    # The platform button of the cancelled flow does nothing now.
    assert alert(await chat.press(OWNER_ID, MT5)) == str(texts.NOT_AVAILABLE)
    assert await stored(container) == []

    device, _ = await add_device(container)
    for action in (DeviceAction.RENAME, DeviceAction.LOT_SIZE, DeviceAction.PAIRS):
        await chat.press(OWNER_ID, press_data(action, device.pk))
        assert await chat.send(OWNER_ID, "/cancel") == [str(texts.CANCELLED)]
    [row] = await stored(container)
    assert (row.name, row.lot_size, row.symbol_map) == ("Office", Decimal("0.01"), {})


async def test_device_limit(chat: Chat, container: Container) -> None:
    await add_device(container, name="One")
    await chat.press(OWNER_ID, ADD)
    await chat.send(OWNER_ID, "Two")
    await add_device(container, name="Meanwhile")  # the limit is reached during the flow
    limit_text = texts.MESSAGES[ErrorCode.DEVICE_LIMIT_REACHED].format(limit=2)
    assert alert(await chat.press(OWNER_ID, MT5)) == limit_text
    assert [d.name for d in await stored(container)] == ["One", "Meanwhile"]
    # And at the start of the flow.
    calls = await chat.press(OWNER_ID, ADD)
    assert alert(calls) == limit_text
    assert shown(calls) == []
    assert await chat.send(OWNER_ID, "Three") == [str(texts.NOT_A_COMMAND)]


async def test_devices_command_restarts(chat: Chat) -> None:
    await chat.press(OWNER_ID, ADD)
    assert await chat.send(OWNER_ID, "/devices") == [str(texts.DEVICES_EMPTY)]
    assert await chat.send(OWNER_ID, "Office") == [str(texts.NOT_A_COMMAND)]


# --- the menu ---


async def test_menu_shows_the_device(chat: Chat, container: Container) -> None:
    device, _ = await add_device(container, name="Office")
    calls = await chat.press(OWNER_ID, press_data(DeviceAction.MENU, device.pk))
    [card] = shown(calls)
    assert card.startswith("<b>Office</b> · MT5")
    assert f"Device ID: <code>{device.public_id}</code>" in card
    assert "Lot size: 0.01" in card and "Max signal age: 300 s" in card
    labels = set(buttons(calls[0]))
    assert {
        str(texts.BUTTON_RENAME),
        str(texts.BUTTON_PAUSE),
        str(texts.BUTTON_ROTATE),
        str(texts.BUTTON_REVOKE),
    } <= labels


@pytest.mark.parametrize(
    ("action", "bad", "good", "column", "value"),
    [
        (DeviceAction.RENAME, "x" * 40, "Renamed", "name", "Renamed"),
        (DeviceAction.LOT_SIZE, "lots", "0,25", "lot_size", Decimal("0.25")),
        (DeviceAction.LOT_SIZE, "0", "100", "lot_size", Decimal("100")),
        (DeviceAction.LOT_SIZE, "100.01", "0.015", "lot_size", Decimal("0.015")),
        (DeviceAction.MAX_AGE, "4", "10m", "max_signal_age", 600),
        (DeviceAction.MAX_AGE, "2 days", "86400", "max_signal_age", 86400),
        (
            DeviceAction.PAIRS,
            "XAUUSD",
            "xauusd=GOLD, US30 = DJ30",
            "symbol_map",
            {"XAUUSD": "GOLD", "US30": "DJ30"},
        ),
        (DeviceAction.PAIRS, "A=B A=C", "US500=SPX500", "symbol_map", {"US500": "SPX500"}),
        (DeviceAction.PREFIX, "with space", "m.", "symbol_prefix", "m."),
        (DeviceAction.SUFFIX, "x" * 17, ".pro", "symbol_suffix", ".pro"),
    ],
)
async def test_settings_refuse_bad_input_then_save(
    chat: Chat,
    container: Container,
    fake_api: FakeBotAPI,
    action: DeviceAction,
    bad: str,
    good: str,
    column: str,
    value: Any,
) -> None:
    device, _ = await add_device(container, name="Office")
    [row] = await stored(container)
    before = getattr(row, column)
    assert before != value
    [question] = shown(await chat.press(OWNER_ID, press_data(action, device.pk)))
    assert "/cancel" in question
    [refusal] = await chat.send(OWNER_ID, bad)
    assert refusal.endswith(question)  # the reason, then the question again
    assert refusal != question
    [row] = await stored(container)
    assert getattr(row, column) == before  # nothing changed
    await chat.feed(location_update(OWNER_ID))
    assert fake_api.last("sendMessage").text == f"{texts.HINT_SEND_TEXT}\n\n{question}"
    [saved] = await chat.send(OWNER_ID, good)
    assert saved.startswith(str(texts.DEVICE_UPDATED))
    [row] = await stored(container)
    assert getattr(row, column) == value
    assert await chat.send(OWNER_ID, good) == [str(texts.NOT_A_COMMAND)]


async def test_symbol_mapping_preview(chat: Chat, container: Container) -> None:
    device, _ = await add_device(container, name="Office")
    [card] = shown(await chat.press(OWNER_ID, press_data(DeviceAction.SYMBOLS, device.pk)))
    assert "EURUSD → <code>EURUSD</code>, XAUUSD → <code>XAUUSD</code>" in card
    await chat.press(OWNER_ID, press_data(DeviceAction.SUFFIX, device.pk))
    await chat.send(OWNER_ID, ".m")
    await chat.press(OWNER_ID, press_data(DeviceAction.PAIRS, device.pk))
    [after] = await chat.send(OWNER_ID, "XAUUSD=GOLD")
    assert "Pairs: XAUUSD=GOLD" in after and "Suffix: <code>.m</code>" in after
    assert "EURUSD → <code>EURUSD.m</code>, XAUUSD → <code>GOLD</code>" in after
    await chat.press(OWNER_ID, press_data(DeviceAction.PAIRS, device.pk))
    [cleared] = await chat.send(OWNER_ID, "-")
    assert "Pairs: none" in cleared
    assert "XAUUSD → <code>XAUUSD.m</code>" in cleared
    [row] = await stored(container)
    assert (row.symbol_map, row.symbol_prefix, row.symbol_suffix) == ({}, "", ".m")


async def test_value_for_a_device_revoked_meanwhile(chat: Chat, container: Container) -> None:
    device, _ = await add_device(container, name="Office")
    await chat.press(OWNER_ID, press_data(DeviceAction.LOT_SIZE, device.pk))
    await chat.press(OWNER_ID, press_data(DeviceAction.REVOKE_CONFIRM, device.pk, 1))
    assert await chat.send(OWNER_ID, "0.5") == [str(texts.NOT_AVAILABLE)]
    assert await chat.send(OWNER_ID, "0.5") == [str(texts.NOT_A_COMMAND)]


async def test_pause_and_resume(chat: Chat, container: Container) -> None:
    device, _ = await add_device(container)
    hub = container.device_hub
    calls = await chat.press(OWNER_ID, press_data(DeviceAction.PAUSE, device.pk))
    assert alert(calls) == str(texts.DEVICE_PAUSED_TOAST)
    assert str(texts.BUTTON_RESUME) in buttons(first_shown(calls))
    assert (await stored(container))[0].paused
    before = hub.generation(device.pk)
    calls = await chat.press(OWNER_ID, press_data(DeviceAction.RESUME, device.pk))
    assert alert(calls) == str(texts.DEVICE_RESUMED_TOAST)
    assert not (await stored(container))[0].paused
    assert hub.generation(device.pk) != before  # waiting polls re-check after the commit


async def test_rotate_key_confirm_once(chat: Chat, container: Container) -> None:
    device, first = await add_device(container)
    [question] = shown(await chat.press(OWNER_ID, press_data(DeviceAction.ROTATE, device.pk)))
    assert question == texts.CONFIRM_ROTATE.format(name="Office")
    assert (await stored(container))[0].key_version == 1  # nothing yet
    confirm = press_data(DeviceAction.ROTATE_CONFIRM, device.pk, 1)
    calls = await chat.press(OWNER_ID, confirm)
    assert alert(calls) == str(texts.KEY_ROTATED_TOAST)
    [message] = [c for c in calls if c.method == "sendMessage"]
    match = CREDENTIALS_RE.search(str(message.text))
    assert match and match.group(1) == device.public_id and match.group(2) != first.secret
    assert "or the Python agent's SIGNALBRIDGE_SECRET" in str(message.text)
    assert (await stored(container))[0].key_version == 2
    # A second press of the same confirmation is stale: no second rotation.
    calls = await chat.press(OWNER_ID, confirm)
    assert alert(calls) == str(texts.NOT_AVAILABLE)
    assert [c for c in calls if c.method == "sendMessage"] == []
    assert (await stored(container))[0].key_version == 2


async def test_revoke_confirm(chat: Chat, container: Container) -> None:
    device, _ = await add_device(container, name="Office")
    await add_device(container, name="Laptop")
    [question] = shown(await chat.press(OWNER_ID, press_data(DeviceAction.REVOKE, device.pk)))
    assert question == texts.CONFIRM_REVOKE.format(name="Office")
    no = await chat.press(OWNER_ID, press_data(DeviceAction.MENU, device.pk))
    assert shown(no)[0].startswith("<b>Office</b>")
    assert (await stored(container))[0].revoked_at is None
    calls = await chat.press(OWNER_ID, press_data(DeviceAction.REVOKE_CONFIRM, device.pk, 1))
    [text] = shown(calls)
    assert text.startswith(texts.DEVICE_REVOKED.format(name="Office"))
    assert "(1 of 2)" in text and "<b>Laptop</b>" in text
    assert "Office" not in set(buttons(first_shown(calls)))
    assert (await stored(container))[0].revoked_at is not None
    # Gone from the list and from every button.
    assert "Office</b>" not in (await chat.send(OWNER_ID, "/devices"))[0]
    assert alert(await chat.press(OWNER_ID, press_data(DeviceAction.MENU, device.pk))) == (
        str(texts.NOT_AVAILABLE)
    )


@pytest.mark.parametrize(
    "action",
    [
        DeviceAction.MENU,
        DeviceAction.RENAME,
        DeviceAction.LOT_SIZE,
        DeviceAction.SYMBOLS,
        DeviceAction.PAUSE,
        DeviceAction.ROTATE,
        DeviceAction.ROTATE_CONFIRM,
        DeviceAction.REVOKE_CONFIRM,
    ],
)
async def test_forged_press_on_another_users_device(
    chat: Chat, container: Container, fake_api: FakeBotAPI, action: DeviceAction
) -> None:
    victim, _ = await add_device(container, owner_id=OTHER_ID, name="Victim")
    await chat.send(OWNER_ID, "/start")
    calls = await chat.press(OWNER_ID, press_data(action, victim.pk, 1))
    assert alert(calls) == str(texts.NOT_AVAILABLE)
    assert shown(calls) == []
    [row] = await stored(container, OTHER_ID)
    assert (row.name, row.paused, row.key_version, row.revoked_at) == ("Victim", False, 1, None)
    # No input step was opened for the forger either.
    assert await chat.send(OWNER_ID, "0.5") == [str(texts.NOT_A_COMMAND)]


@pytest.mark.parametrize("data", ["dv:zz:1:0", "dv:m:notanumber:0", "dvp:mt9", "dv:m:999999:0"])
async def test_garbage_callback_data(chat: Chat, data: str) -> None:
    await chat.press(OWNER_ID, ADD)
    await chat.send(OWNER_ID, "Office")
    assert alert(await chat.press(OWNER_ID, data)) == str(texts.NOT_AVAILABLE)
