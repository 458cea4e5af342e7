"""Instructions per device (pause, revocation, max age, mapping, auto-approve, follow-ups)
and the execution store (idempotency, conflicts, another device's instruction, status)."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.container import Container
from bot.domain.devices import DeviceService
from bot.domain.user_settings import toggle
from bot.execution.report_desk import ReportDesk
from bot.execution.reports import ReportKind, parse_report
from db.models import Commission, ExecutionRecord, Instruction
from tests.affiliates_support import refer, rows
from tests.conftest import Chat, FakeClock
from tests.devices_support import EAClient, error_of
from tests.fake_bot_api import FakeBotAPI
from tests.loop_support import (
    approve,
    configure,
    device_ea,
    fill_body,
    instructions,
    publish,
    report,
    report_id,
    settle,
    stored_instructions,
    stored_records,
)
from tests.signals_support import add_users
from webhook_server import create_app

OWNER, OTHER = 3201, 3202


@pytest.fixture
async def server(container: Container, aiohttp_client: Any) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(container))


@pytest.fixture
async def users(sessionmaker: async_sessionmaker[AsyncSession], clock: FakeClock) -> None:
    await add_users(sessionmaker, [OWNER, OTHER], clock.now)


@pytest.fixture
async def ea(
    users: None, container: Container, server: TestClient[Any, Any], clock: FakeClock
) -> EAClient:
    return (await device_ea(container, server, clock, OWNER))[1]


async def opened(container: Container, ea: EAClient) -> dict[str, Any]:
    """A signal approved by the owner; the device's open."""
    outcome = await publish(container)
    await approve(container, outcome, OWNER)
    [instruction] = await instructions(ea)
    assert instruction["action"] == "open"
    return instruction


# --- who gets an open ---


@pytest.mark.usefixtures("users")
async def test_paused_revoked_and_other_owners_devices_get_no_open(
    container: Container, server: TestClient[Any, Any], clock: FakeClock
) -> None:
    active, active_ea = await device_ea(container, server, clock, OWNER, "Active")
    paused, paused_ea = await device_ea(container, server, clock, OWNER, "Paused")
    revoked, _ = await device_ea(container, server, clock, OWNER, "Revoked")
    _, other_ea = await device_ea(container, server, clock, OTHER, "Other")
    async with container.sessionmaker.begin() as session:
        service = DeviceService(session, container)
        await service.set_paused(OWNER, paused.pk, True)
        await service.revoke(OWNER, revoked.pk)

    await approve(container, await publish(container), OWNER)
    assert [i["action"] for i in await instructions(active_ea)] == ["open"]
    assert await instructions(paused_ea) == []
    assert await instructions(other_ea) == []
    assert {i.device_id for i in await stored_instructions(container)} == {active.pk}


async def test_paused_after_issue_is_not_served_until_resumed(
    container: Container, ea: EAClient
) -> None:
    await approve(container, await publish(container), OWNER)
    [device] = await owned(container)
    async with container.sessionmaker.begin() as session:
        await DeviceService(session, container).set_paused(OWNER, device.pk, True)
    assert await instructions(ea) == []
    async with container.sessionmaker.begin() as session:
        await DeviceService(session, container).set_paused(OWNER, device.pk, False)
    assert [i["action"] for i in await instructions(ea)] == ["open"]


async def owned(container: Container) -> list[Any]:
    async with container.sessionmaker() as session:
        return await DeviceService(session, container).list_owned(OWNER)


async def test_signal_older_than_max_age_at_approval_gets_no_open(
    container: Container, ea: EAClient, clock: FakeClock
) -> None:
    [device] = await owned(container)
    await configure(container, device, max_signal_age="60")
    outcome = await publish(container)
    clock.advance(seconds=61)
    await approve(container, outcome, OWNER)
    assert await instructions(ea) == []
    assert await stored_instructions(container) == []


async def test_open_not_served_once_older_than_max_age(
    container: Container, ea: EAClient, clock: FakeClock
) -> None:
    [device] = await owned(container)
    await configure(container, device, max_signal_age="60")
    outcome = await publish(container)
    clock.advance(seconds=30)
    await approve(container, outcome, OWNER)
    clock.advance(seconds=31)
    assert await instructions(ea) == []


@pytest.mark.parametrize("end", ["cancel", "close", "expire"])
async def test_open_not_served_after_the_signal_ended(
    container: Container, ea: EAClient, clock: FakeClock, end: str
) -> None:
    outcome = await publish(container, expires_in=120)
    await approve(container, outcome, OWNER)
    if end == "expire":
        clock.advance(seconds=121)
    else:
        async with container.sessionmaker.begin() as session:
            if end == "cancel":
                await container.signals.cancel(session, signal_id=outcome.signal.id)
            else:
                await container.signals.close(
                    session, {"fraction": "1"}, signal_id=outcome.signal.id
                )
    # Nothing was acked, so no follow-up either.
    assert await instructions(ea) == []


async def test_symbol_mapping_and_lot_size_in_the_open(container: Container, ea: EAClient) -> None:
    [device] = await owned(container)
    await configure(
        container,
        device,
        symbol_pairs="XAUUSD=GOLD",
        symbol_prefix="m.",
        symbol_suffix="-pro",
        lot_size="0.25",
    )
    await approve(container, await publish(container, symbol="XAUUSD"), OWNER)
    await approve(container, await publish(container, symbol="EURUSD"), OWNER)
    gold, euro = await instructions(ea)
    assert (gold["symbol"], euro["symbol"]) == ("GOLD", "m.EURUSD-pro")
    assert gold["volume"] == euro["volume"] == "0.25"


async def test_limit_order_open_shape(container: Container, ea: EAClient) -> None:
    outcome = await publish(container, order_type="limit", entry="1.07", stop_loss="1.06")
    await approve(container, outcome, OWNER)
    [instruction] = await instructions(ea)
    assert (instruction["order_type"], instruction["entry"]) == ("limit", "1.07")


async def test_auto_approve_issues_the_open_at_once(
    container: Container, ea: EAClient, clock: FakeClock
) -> None:
    async with container.sessionmaker.begin() as session:
        await toggle(session, OWNER, "auto_approve", clock.now)
    await publish(container)
    assert [i["action"] for i in await instructions(ea)] == ["open"]


async def test_followups_only_to_devices_that_opened(
    container: Container, server: TestClient[Any, Any], clock: FakeClock, ea: EAClient
) -> None:
    _, idle_ea = await device_ea(container, server, clock, OWNER, "Idle")
    outcome = await publish(container)
    await approve(container, outcome, OWNER)
    [open_] = await instructions(ea)
    await instructions(idle_ea)  # fetched but never reported
    ack = await report(ea, "ack", {"report_id": report_id(), "instruction_id": open_["id"]})
    assert ack.status == 201
    async with container.sessionmaker.begin() as session:
        await container.signals.cancel(session, signal_id=outcome.signal.id)
    [cancel] = await instructions(ea)
    assert {k: cancel[k] for k in ("action", "symbol", "signal_id")} == {
        "action": "cancel",
        "symbol": "EURUSD",
        "signal_id": outcome.signal.public_id,
    }
    assert set(cancel) == {"id", "signal_id", "action", "symbol", "issued_at"}
    assert await instructions(idle_ea) == []


# --- reports ---


async def test_duplicate_is_200_with_the_same_id_and_stored_once(
    container: Container, ea: EAClient
) -> None:
    instruction = await opened(container, ea)
    body = fill_body(instruction["id"], executed_at="2026-01-01T12:00:00+00:00")
    first = await report(ea, "fill", body)
    assert first.status == 201
    stored = await first.json()
    # A retry with the same values written differently is the same report.
    retry = dict(body, volume="0.0100", executed_at="2026-01-01T14:00:00+02:00")
    again = await report(ea, "fill", retry)
    assert again.status == 200
    assert await again.json() == {"id": stored["id"], "duplicate": True}
    assert len(await stored_records(container)) == 1


async def test_a_legs_fill_is_stored_with_its_leg(container: Container, ea: EAClient) -> None:
    instruction = await opened(container, ea)
    legs = [fill_body(instruction["id"], report_id=f"fill{leg}-abcdef", leg=leg) for leg in (0, 1)]
    assert [(await report(ea, "fill", body)).status for body in legs] == [201, 201]
    assert (await report(ea, "fill", legs[1])).status == 200  # a retry
    other_leg = dict(legs[1], leg=2)
    assert await error_of(await report(ea, "fill", other_leg)) == (409, "report_conflict")
    assert sorted(str(record.leg) for record in await stored_records(container)) == ["0", "1"]
    response = await ea.get(f"/api/v1/exec/status/{instruction['signal_id']}")
    assert [r["leg"] for r in (await response.json())["records"]] == [0, 1]
    bad = dict(legs[0], report_id="fill-bad-leg", leg=10)
    assert await error_of(await report(ea, "fill", bad)) == (422, "invalid_request")


async def test_a_fill_without_a_leg_reads_as_in_v1(container: Container, ea: EAClient) -> None:
    instruction = await opened(container, ea)
    assert (await report(ea, "fill", fill_body(instruction["id"]))).status == 201
    response = await ea.get(f"/api/v1/exec/status/{instruction['signal_id']}")
    [record] = (await response.json())["records"]
    assert "leg" not in record
    [stored] = await stored_records(container)
    assert stored.leg is None


@pytest.mark.parametrize(
    "change", [{"price": "1.2"}, {"ticket": 1}, {"profit": "1"}, {"kind": "ack"}]
)
async def test_same_report_id_other_content_is_409(
    container: Container, ea: EAClient, change: dict[str, Any]
) -> None:
    instruction = await opened(container, ea)
    body = fill_body(instruction["id"])
    assert (await report(ea, "fill", body)).status == 201
    kind = change.pop("kind", "fill")
    changed = dict(body, **change)
    if kind == "ack":
        changed = {k: body[k] for k in ("report_id", "instruction_id", "ticket")}
    response = await report(ea, kind, changed)
    assert await error_of(response) == (409, "report_conflict")
    [record] = await stored_records(container)
    assert (record.kind, record.price) == ("fill", Decimal("1.08512"))


async def test_stored_report_id_naming_another_instruction_is_409(
    container: Container, ea: EAClient
) -> None:
    """The report_id decides first: reused on another instruction of the device, or on
    one that does not exist, it is a conflict, not a new report and not a 404."""
    first = await opened(container, ea)
    body = fill_body(first["id"])
    assert (await report(ea, "fill", body)).status == 201
    second = await opened(container, ea)
    elsewhere = dict(body, instruction_id=second["id"])
    nowhere = dict(body, instruction_id="ins_doesnotexist")
    for response in (
        await report(ea, "fill", elsewhere),
        await report(ea, "fill", nowhere),
        *await asyncio.gather(report(ea, "fill", elsewhere), report(ea, "fill", nowhere)),
    ):
        assert await error_of(response) == (409, "report_conflict")
    assert len(await stored_records(container)) == 1


async def test_concurrent_duplicates_store_one_record(container: Container, ea: EAClient) -> None:
    instruction = await opened(container, ea)
    body = fill_body(instruction["id"])
    responses = await asyncio.gather(*(report(ea, "fill", body) for _ in range(4)))
    statuses = sorted(r.status for r in responses)
    assert statuses == [200, 200, 200, 201]
    assert len({(await r.json())["id"] for r in responses}) == 1
    assert len(await stored_records(container)) == 1


async def test_two_instances_storing_the_same_report_at_once(
    container: Container, ea: EAClient
) -> None:
    """Two writers (as on two instances) race; the unique (device, report_id) decides and
    the loser answers from the winner's record."""
    instruction = await opened(container, ea)
    [device] = await owned(container)
    found = await container.device_keys.lookup(device.public_id)
    assert found is not None
    other = ReportDesk(container.settings, container.sessionmaker, container.clock)
    parsed = parse_report(ReportKind.FILL, fill_body(instruction["id"]))
    try:
        receipts = await asyncio.gather(
            container.reports.record(found.device, parsed), other.record(found.device, parsed)
        )
    finally:
        await other.close()
    assert sorted(r.duplicate for r in receipts) == [False, True]
    assert len({r.id for r in receipts}) == 1
    assert len(await stored_records(container)) == 1


async def test_one_batch_answers_each_report_on_its_own(container: Container, ea: EAClient) -> None:
    """Reports queued together share a transaction, not their answers."""
    first = await opened(container, ea)
    stored_first = fill_body(first["id"])
    assert (await report(ea, "fill", stored_first)).status == 201
    second = await opened(container, ea)
    new = fill_body(second["id"])
    responses = await asyncio.gather(
        report(ea, "fill", new),
        report(ea, "fill", new),
        report(ea, "fill", stored_first),
        report(ea, "fill", dict(stored_first, price="2")),
        report(ea, "fill", fill_body("ins_unknown0001")),
        report(ea, "ack", {"report_id": report_id(), "instruction_id": second["id"]}),
    )
    assert [r.status for r in responses[2:]] == [200, 409, 404, 201]
    assert sorted(r.status for r in responses[:2]) == [200, 201]
    assert len(await stored_records(container)) == 3
    states = {i.public_id: i.state for i in await stored_instructions(container)}
    assert states == {first["id"]: "filled", second["id"]: "filled"}


async def test_another_devices_instruction_is_404(
    container: Container, server: TestClient[Any, Any], clock: FakeClock, ea: EAClient
) -> None:
    instruction = await opened(container, ea)
    _, other_ea = await device_ea(container, server, clock, OTHER, "Theirs")
    response = await report(other_ea, "fill", fill_body(instruction["id"]))
    assert await error_of(response) == (404, "unknown_instruction")
    unknown = await report(ea, "fill", fill_body("ins_doesnotexist"))
    assert await error_of(unknown) == (404, "unknown_instruction")
    status = await other_ea.get(f"/api/v1/exec/status/{instruction['signal_id']}")
    assert await error_of(status) == (404, "unknown_signal")
    assert await stored_records(container) == []


async def test_invalid_reports_store_nothing(container: Container, ea: EAClient) -> None:
    instruction = await opened(container, ea)
    bad = await report(ea, "fill", fill_body(instruction["id"], price="-1", ticket="x"))
    assert await error_of(bad) == (422, "invalid_request")
    assert set((await bad.json())["fields"]) == {"price", "ticket"}
    not_json = await ea.request("POST", "/api/v1/exec/ack", b"{not json")
    assert await error_of(not_json) == (400, "invalid_json")
    assert await stored_records(container) == []
    assert [i.state for i in await stored_instructions(container)] == ["pending"]


async def test_error_report_notifies_and_ends_pending(
    container: Container, ea: EAClient, fake_api: FakeBotAPI
) -> None:
    instruction = await opened(container, ea)
    body = {
        "report_id": report_id(),
        "instruction_id": instruction["id"],
        "code": 10019,
        "message": "Not enough money",
    }
    assert (await report(ea, "error", body)).status == 201
    await settle(container)
    assert fake_api.sent("sendMessage", OWNER)[-1].params["text"] == (
        "⚠️ <b>Office</b>: EURUSD buy (open) failed, code 10019: Not enough money"
    )
    assert await instructions(ea) == []
    [stored] = await stored_instructions(container)
    assert stored.state == "errored"


async def test_notifications_respect_the_owners_switches(
    container: Container, ea: EAClient, fake_api: FakeBotAPI, clock: FakeClock
) -> None:
    async with container.sessionmaker.begin() as session:
        await toggle(session, OWNER, "notify_fills", clock.now)
        await toggle(session, OWNER, "notify_errors", clock.now)
    instruction = await opened(container, ea)
    await settle(container)
    before = len(fake_api.sent("sendMessage", OWNER))
    assert (await report(ea, "fill", fill_body(instruction["id"]))).status == 201
    error = {
        "report_id": report_id(),
        "instruction_id": instruction["id"],
        "code": 1,
        "message": "x",
    }
    assert (await report(ea, "error", error)).status == 201
    await settle(container)
    assert len(fake_api.sent("sendMessage", OWNER)) == before


async def test_late_ack_does_not_undo_a_fill(container: Container, ea: EAClient) -> None:
    instruction = await opened(container, ea)
    assert (await report(ea, "fill", fill_body(instruction["id"]))).status == 201
    ack = {"report_id": report_id(), "instruction_id": instruction["id"], "ticket": 5}
    assert (await report(ea, "ack", ack)).status == 201
    [stored] = await stored_instructions(container)
    assert stored.state == "filled"


async def test_status_lists_own_records_oldest_first(container: Container, ea: EAClient) -> None:
    instruction = await opened(container, ea)
    ack = {"report_id": "ack-first-1", "instruction_id": instruction["id"], "ticket": 7}
    await report(ea, "ack", ack)
    await report(ea, "fill", fill_body(instruction["id"], report_id="fill-second", profit="-1.5"))
    response = await ea.get(f"/api/v1/exec/status/{instruction['signal_id']}")
    body = await response.json()
    assert body["signal_id"] == instruction["signal_id"]
    assert [(r["report_id"], r["kind"], r["instruction_id"]) for r in body["records"]] == [
        ("ack-first-1", "ack", instruction["id"]),
        ("fill-second", "fill", instruction["id"]),
    ]
    assert body["records"][1]["profit"] == "-1.5"
    assert json.dumps(body)  # plain JSON types only


async def test_fill_commission_credited_once_for_a_referred_user(
    container: Container,
    server: TestClient[Any, Any],
    chat: Chat,
    clock: FakeClock,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    referrer, trader = 3301, 3302
    await refer(chat, sessionmaker, referrer, trader, clock.now)
    _, ea = await device_ea(container, server, clock, trader)
    outcome = await publish(container)
    await approve(container, outcome, trader)
    [instruction] = await instructions(ea)
    body = fill_body(instruction["id"], volume="2")
    assert (await report(ea, "fill", body)).status == 201
    assert (await report(ea, "fill", body)).status == 200  # a retry credits nothing
    ack = {"report_id": report_id(), "instruction_id": instruction["id"]}
    assert (await report(ea, "ack", ack)).status == 201
    commissions = await rows(sessionmaker, Commission, Commission.referred_user_id == trader)
    assert [(c.affiliate_id, c.kind, c.quantity) for c in commissions] == [
        (referrer, "fill", Decimal("2"))
    ]
    assert commissions[0].amount_minor > 0


async def test_no_commission_for_an_unreferred_user(
    container: Container, ea: EAClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    instruction = await opened(container, ea)
    assert (await report(ea, "fill", fill_body(instruction["id"]))).status == 201
    assert await rows(sessionmaker, Commission) == []
    assert len(await rows(sessionmaker, ExecutionRecord)) == 1
    assert len(await rows(sessionmaker, Instruction)) == 1


@pytest.mark.parametrize(
    "field, value",
    [
        ("volume", "295191958000170985"),  # PostgreSQL: numeric field overflow, was a 500
        ("volume", "0.123456789"),  # PostgreSQL would round it to 8 places
        ("price", "12345678901.5"),
        ("profit", "-1234567890123"),
    ],
)
async def test_decimals_beyond_what_is_stored_are_422(
    container: Container, ea: EAClient, field: str, value: str
) -> None:
    instruction = await opened(container, ea)
    response = await report(ea, "fill", fill_body(instruction["id"], **{field: value}))
    assert await error_of(response) == (422, "invalid_request")
    assert set((await response.json())["fields"]) == {field}
    assert await stored_records(container) == []
    fits = {"volume": "1000.12345678", "price": "1.0851234567", "profit": "-12.5"}
    stored = await report(ea, "fill", fill_body(instruction["id"], **{field: fits[field]}))
    assert stored.status == 201, await stored.text()
    [record] = await stored_records(container)
    assert getattr(record, field) == Decimal(fits[field])
