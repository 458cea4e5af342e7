"""POST /api/v1/exec/event (EA_PROTOCOL 5.4): closed / sl_moved / tp_moved with their field
rules, report_id idempotency (201 / 200 duplicate / 409), 404 for what is not an open of
this device, 422 naming fields; the owner told of a close (a switch), the message refreshed."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.chat.callbacks import SettingsCb, SettingsToggle
from bot.container import Container
from bot.domain.user_settings import toggle
from db.models import Signal, UserSettings
from tests.conftest import Chat, FakeClock
from tests.devices_support import EAClient, error_of
from tests.fake_bot_api import FakeBotAPI
from tests.loop_support import (
    approve,
    device_ea,
    fill_body,
    instructions,
    publish,
    report,
    report_id,
    settle,
)
from tests.signals_support import add_users
from tests.wire_support import send_state, set_device, stored_events
from webhook_server import create_app

OWNER, OTHER = 3501, 3502
EVENT = "/api/v1/exec/event"


@pytest.fixture
async def server(container: Container, aiohttp_client: Any, clock: FakeClock) -> Any:
    await add_users(container.sessionmaker, [OWNER, OTHER], clock.now)
    return await aiohttp_client(create_app(container))


@pytest.fixture
async def ea(container: Container, server: TestClient[Any, Any], clock: FakeClock) -> EAClient:
    _, client = await device_ea(container, server, clock, OWNER, "Demo")
    await send_state(client)
    return client


async def opened(container: Container, ea: EAClient) -> dict[str, Any]:
    outcome = await publish(container)
    await approve(container, outcome, OWNER)
    [instruction] = await instructions(ea)
    fill = fill_body(instruction["id"], volume="0.1")
    assert (await report(ea, "fill", fill)).status == 201
    await settle(container)
    return instruction


def closed(instruction_id: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "report_id": report_id(),
        "instruction_id": instruction_id,
        "leg": 0,
        "ticket": 5012345,
        "event": "closed",
        "reason": "tp",
        "price": "1.09500",
        "volume": "0.10",
        "profit": "12.50",
        "executed_at": "2026-01-01T12:00:00Z",
    }
    body.update(changes)
    return body


async def test_closed_event_is_stored_told_and_shown(
    container: Container, ea: EAClient, fake_api: FakeBotAPI
) -> None:
    instruction = await opened(container, ea)
    response = await ea.post_json(EVENT, closed(instruction["id"]))
    assert response.status == 201
    answer = await response.json()
    assert answer["duplicate"] is False and answer["id"].startswith("evt_")
    [event] = await stored_events(container)
    assert (event.event, event.reason, event.leg, event.profit) == (
        "closed",
        "tp",
        0,
        Decimal("12.50"),
    )
    await settle(container)
    notice = fake_api.sent("sendMessage", OWNER)[-1].params["text"]
    assert notice == (
        "📕 <b>Demo</b>: EURUSD buy closed (take profit), 0.1 @ <code>1.095</code>, "
        "result +12.50 USD"
    )
    shown = fake_api.last("editMessageText", OWNER).params["text"]
    assert "• Demo: filled 0.1 @ <code>1.08512</code> · TP1 hit +12.50 USD" in shown


async def test_moves_are_stored_with_their_levels_and_not_told(
    container: Container, ea: EAClient, fake_api: FakeBotAPI
) -> None:
    instruction = await opened(container, ea)
    before = len(fake_api.sent("sendMessage", OWNER))
    base = {"instruction_id": instruction["id"], "ticket": 5012345, "leg": 1}
    moved = dict(base, report_id=report_id(), event="sl_moved", stop_loss="1.0852")
    removed = dict(base, report_id=report_id(), event="tp_moved", take_profit=None)
    assert (await ea.post_json(EVENT, moved)).status == 201
    assert (await ea.post_json(EVENT, removed)).status == 201
    sl, tp = await stored_events(container)
    assert (sl.event, sl.stop_loss, sl.leg) == ("sl_moved", Decimal("1.0852"), 1)
    assert (tp.event, tp.take_profit) == ("tp_moved", None)
    await settle(container)
    assert len(fake_api.sent("sendMessage", OWNER)) == before


async def test_event_idempotency_conflict_and_concurrency(
    container: Container, ea: EAClient
) -> None:
    instruction = await opened(container, ea)
    body = closed(instruction["id"])
    first = await ea.post_json(EVENT, body)
    assert first.status == 201
    stored_id = (await first.json())["id"]
    # The same event written differently (time zone, trailing zeros) is a retry.
    retry = dict(body, executed_at="2026-01-01T14:00:00+02:00", profit="12.5000")
    again = await ea.post_json(EVENT, retry)
    assert (again.status, await again.json()) == (200, {"id": stored_id, "duplicate": True})
    conflict = await ea.post_json(EVENT, dict(body, profit="1"))
    assert await error_of(conflict) == (409, "report_conflict")
    elsewhere = await ea.post_json(EVENT, dict(body, instruction_id="ins_nowhere1"))
    assert await error_of(elsewhere) == (409, "report_conflict")
    fresh = closed(instruction["id"], leg=1)
    answers = await asyncio.gather(*(ea.post_json(EVENT, fresh) for _ in range(3)))
    assert sorted(a.status for a in answers) == [200, 200, 201]
    # Events have a report-id space of their own: an ack may reuse one.
    ack = {"report_id": body["report_id"], "instruction_id": instruction["id"]}
    assert (await report(ea, "ack", ack)).status == 201
    assert len(await stored_events(container)) == 2


async def test_event_on_what_is_not_an_open_of_this_device_is_404(
    container: Container, server: TestClient[Any, Any], clock: FakeClock, ea: EAClient
) -> None:
    instruction = await opened(container, ea)
    _, other = await device_ea(container, server, clock, OTHER, "Theirs")
    theirs = await other.post_json(EVENT, closed(instruction["id"]))
    assert await error_of(theirs) == (404, "unknown_instruction")
    unknown = await ea.post_json(EVENT, closed("ins_doesnotexist"))
    assert await error_of(unknown) == (404, "unknown_instruction")
    async with container.sessionmaker.begin() as session:
        await container.signals.cancel(session, signal_id=await _signal_pk(container))
    [cancel] = await instructions(ea)
    assert cancel["action"] == "cancel"
    not_open = await ea.post_json(EVENT, closed(cancel["id"]))
    assert await error_of(not_open) == (404, "unknown_instruction")
    assert await stored_events(container) == []


async def _signal_pk(container: Container) -> int:
    async with container.sessionmaker() as session:
        signal_pk = await session.scalar(select(Signal.id).limit(1))
        assert signal_pk is not None
        return int(signal_pk)


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        ({"event": "opened"}, {"event"}),
        ({"event": None}, {"event"}),
        ({"reason": None, "price": None, "volume": None, "profit": None}, set()),
        ({"reason": "lucky"}, {"reason"}),
        ({"leg": -1, "ticket": "5"}, {"leg", "ticket"}),
        ({"price": "0", "volume": "-1", "profit": "1e3"}, {"price", "volume", "profit"}),
        ({"executed_at": "2026-01-01T12:00:00"}, {"executed_at"}),
        ({"report_id": "short"}, {"report_id"}),
        ({"stop_loss": "abc"}, {"stop_loss"}),
    ],
)
async def test_bad_events_are_422_and_store_nothing(
    container: Container, ea: EAClient, changes: dict[str, Any], fields: set[str]
) -> None:
    instruction = await opened(container, ea)
    body = {k: v for k, v in closed(instruction["id"], **changes).items() if v is not None}
    response = await ea.post_json(EVENT, body)
    assert await error_of(response) == (422, "invalid_request")
    expected = fields or {"reason", "price", "volume", "profit"}
    if changes.get("event", "closed") is None:
        expected = {"event"}
    assert set((await response.json())["fields"]) == expected
    moved = {"report_id": report_id(), "instruction_id": instruction["id"], "ticket": 1}
    for event, level in (("sl_moved", "stop_loss"), ("tp_moved", "take_profit")):
        missing = await ea.post_json(EVENT, dict(moved, event=event))
        assert await error_of(missing) == (422, "invalid_request")
        assert set((await missing.json())["fields"]) == {level}
    assert await stored_events(container) == []


async def test_close_notices_follow_the_owners_switch(
    container: Container, ea: EAClient, fake_api: FakeBotAPI, clock: FakeClock
) -> None:
    async with container.sessionmaker.begin() as session:
        assert not (await toggle(session, OWNER, "notify_closes", clock.now)).notify_closes
    instruction = await opened(container, ea)
    before = len(fake_api.sent("sendMessage", OWNER))
    assert (await ea.post_json(EVENT, closed(instruction["id"]))).status == 201
    await settle(container)
    assert len(fake_api.sent("sendMessage", OWNER)) == before


async def test_the_message_shows_each_devices_results(
    container: Container, server: TestClient[Any, Any], clock: FakeClock, fake_api: FakeBotAPI
) -> None:
    device, ea = await device_ea(container, server, clock, OWNER, "Demo")
    await send_state(ea)
    await set_device(container, device.pk, tp_mode="split", breakeven_after_leg=0)
    instruction = await opened(container, ea)
    assert instruction["management"] == {"breakeven": {"after_leg": 0, "offset_points": 0}}
    base = {"instruction_id": instruction["id"], "ticket": 5012345}
    for body in (
        closed(instruction["id"], leg=0),
        dict(base, report_id=report_id(), leg=1, event="sl_moved", stop_loss="1.08512"),
    ):
        assert (await ea.post_json(EVENT, body)).status == 201
    await settle(container)
    shown = fake_api.last("editMessageText", OWNER).params["text"]
    assert shown.endswith(
        "• Demo: filled 0.1 @ <code>1.08512</code> · TP1 hit +12.50 USD, SL → breakeven"
    )
    stop = closed(instruction["id"], leg=1, reason="sl", price="1.08512", profit="-8.20")
    assert (await ea.post_json(EVENT, stop)).status == 201
    manual = closed(instruction["id"], leg=None, reason="manual", profit="0")
    assert (await ea.post_json(EVENT, manual)).status == 201
    await settle(container)
    shown = fake_api.last("editMessageText", OWNER).params["text"]
    assert shown.endswith(
        " · TP1 hit +12.50 USD, SL → breakeven, stopped out −8.20 USD, closed by you +0.00 USD"
    )


async def test_close_notifications_switch_in_settings(
    server: TestClient[Any, Any], container: Container, chat: Chat, fake_api: FakeBotAPI
) -> None:
    [text] = await chat.send(OWNER, "/settings")
    assert "Close notifications</b>: on" in text
    calls = await chat.press(OWNER, SettingsCb(toggle=SettingsToggle.NOTIFY_CLOSES).pack())
    [answer] = [c for c in calls if c.method == "answerCallbackQuery"]
    assert answer.params["text"] == "Close notifications: off."
    async with container.sessionmaker() as session:
        row = await session.get(UserSettings, OWNER)
        assert row is not None and row.notify_closes is False
