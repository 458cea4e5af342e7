"""Signing vectors, the canonical string, instruction parsing, report ids and bodies,
the clock offset and volume rounding: the contract's rules, one by one."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from signalbridge_agent import signing
from signalbridge_agent.clock import ServerClock
from signalbridge_agent.protocol import (
    REPORT_ID_RE,
    Cancel,
    Close,
    Modify,
    Open,
    OrderType,
    Side,
    Unreadable,
    ack_body,
    error_body,
    fill_body,
    parse_instruction,
    report_id,
)
from signalbridge_agent.trading import SymbolSpec, round_volume, tag_of

SECRET = signing.VECTOR_SECRET


# --- section 2 ---


def test_both_vectors_of_the_contract() -> None:
    poll, fill = signing.TEST_VECTORS
    assert (
        signing.signature(
            SECRET, signing.canonical_string("GET", poll.target, poll.timestamp, poll.nonce, b"")
        )
        == "711adf5aab004d044f9618b4a8fd990215f5a615d3d3a0d6094ccd8b9c61580e"
    )
    assert signing.body_sha256(fill.body) == (
        "32f873fa79f963954b3b42867bb267807a6e5307bbe6ba98f05a951f7f6ec1c2"
    )
    headers = signing.signed_headers(
        "dev_" + "A" * 20, SECRET, "POST", fill.target, fill.timestamp, fill.nonce, fill.body
    )
    assert headers == {
        "X-Device-Id": "dev_" + "A" * 20,
        "X-Timestamp": "1767225601",
        "X-Nonce": "n0nce-0002-abcdef",
        "X-Signature": "f3d1a2543a9f6c61f0564e158c1118752e80fb721dc3e3574e2dab841f00b98f",
    }
    signing.self_test()


def test_canonical_string_is_five_lines_without_a_trailing_newline() -> None:
    canonical = signing.canonical_string(
        "get", "/api/v1/ea/instructions?wait=20", 1767225600, "n0nce-0001-abcdef", b""
    )
    assert canonical == (
        b"GET\n/api/v1/ea/instructions?wait=20\n1767225600\nn0nce-0001-abcdef\n"
        + hashlib.sha256(b"").hexdigest().encode()
    )


def test_self_test_refuses_a_wrong_hmac(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(signing, "signature", lambda secret, canonical: "0" * 64)
    with pytest.raises(signing.SelfTestFailed, match="vector 1"):
        signing.self_test()


def test_nonces_fit_the_contract_and_differ() -> None:
    nonces = {signing.new_nonce() for _ in range(100)}
    assert len(nonces) == 100
    assert all(16 <= len(n) <= 64 and n.replace("-", "").replace("_", "").isalnum() for n in nonces)


# --- section 3: instructions ---

OPEN: dict[str, Any] = {
    "id": "ins_abcdefgh12345678",
    "signal_id": "sig_q3Jx8vTn0aLk2mWd",
    "action": "open",
    "symbol": "EURUSD.m",
    "side": "buy",
    "order_type": "market",
    "entry": None,
    "stop_loss": "1.08000",
    "take_profit": ["1.09500", "1.10000"],
    "volume": "0.10",
    "comment": "London open",
    "issued_at": "2026-01-01T00:00:00Z",
    "expires_at": "2026-01-01T00:15:00Z",
}
MODIFY: dict[str, Any] = {
    "id": "ins_m",
    "signal_id": "sig_1",
    "action": "modify",
    "symbol": "EURUSD.m",
    "stop_loss": "1.08500",
    "take_profit": ["1.09500"],
    "issued_at": "2026-01-01T00:01:00Z",
}
CLOSE: dict[str, Any] = {
    "id": "ins_c",
    "signal_id": "sig_1",
    "action": "close",
    "symbol": "EURUSD.m",
    "fraction": "0.5",
    "issued_at": "2026-01-01T00:02:00Z",
}
CANCEL: dict[str, Any] = {
    "id": "ins_x",
    "signal_id": "sig_1",
    "action": "cancel",
    "symbol": "EURUSD.m",
    "issued_at": "2026-01-01T00:03:00Z",
}
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_every_shape_of_section_3() -> None:
    assert parse_instruction(OPEN) == Open(
        id="ins_abcdefgh12345678",
        signal_id="sig_q3Jx8vTn0aLk2mWd",
        symbol="EURUSD.m",
        issued_at=T0,
        side=Side.BUY,
        order_type=OrderType.MARKET,
        entry=None,
        stop_loss=Decimal("1.08000"),
        take_profit=(Decimal("1.09500"), Decimal("1.10000")),
        volume=Decimal("0.10"),
        comment="London open",
        expires_at=datetime(2026, 1, 1, 0, 15, tzinfo=UTC),
    )
    limit = parse_instruction(
        dict(OPEN, order_type="limit", entry="1.07", stop_loss=None, take_profit=[], comment=None)
    )
    assert isinstance(limit, Open)
    assert (limit.entry, limit.stop_loss, limit.take_profit, limit.comment) == (
        Decimal("1.07"),
        None,
        (),
        "",
    )
    modify = parse_instruction(MODIFY)
    assert isinstance(modify, Modify) and modify.stop_loss == Decimal("1.085")
    assert parse_instruction(dict(MODIFY, stop_loss=None)) == Modify(
        id="ins_m",
        signal_id="sig_1",
        symbol="EURUSD.m",
        issued_at=datetime(2026, 1, 1, 0, 1, tzinfo=UTC),
        stop_loss=None,
        take_profit=(Decimal("1.09500"),),
    )
    close = parse_instruction(CLOSE)
    assert isinstance(close, Close) and close.fraction == Decimal("0.5")
    assert parse_instruction(dict(CLOSE, fraction="1")).fraction == 1  # type: ignore[union-attr]
    assert isinstance(parse_instruction(CANCEL), Cancel)


@pytest.mark.parametrize(
    ("base", "change", "problem"),
    [
        (OPEN, {"action": "close_every"}, "action"),
        (OPEN, {"action": None}, "action"),
        (OPEN, {"side": "long"}, "side"),
        (OPEN, {"order_type": "stop_limit"}, "order_type"),
        (OPEN, {"entry": "1.07"}, "entry must be null"),
        (OPEN, {"order_type": "limit"}, "entry is required"),
        (OPEN, {"volume": 0.1}, "volume"),
        (OPEN, {"volume": "-0.1"}, "volume"),
        (OPEN, {"volume": "0"}, "volume"),
        (OPEN, {"volume": None}, "volume"),
        (OPEN, {"stop_loss": "1,08"}, "stop_loss"),
        (OPEN, {"stop_loss": "1e5"}, "stop_loss"),
        (OPEN, {"take_profit": "1.095"}, "take_profit"),
        (OPEN, {"take_profit": ["1.095", 1.1]}, "take_profit"),
        (OPEN, {"expires_at": "tomorrow"}, "expires_at"),
        (OPEN, {"expires_at": "2026-01-01T00:15:00"}, "expires_at has no time zone"),
        (OPEN, {"comment": 5}, "comment"),
        (OPEN, {"symbol": ""}, "symbol"),
        (OPEN, {"symbol": "EUR USD"}, "symbol"),
        (OPEN, {"signal_id": None}, "signal_id"),
        (MODIFY, {"take_profit": None}, "take_profit"),
        (CLOSE, {"fraction": "1.5"}, "fraction must be at most 1"),
        (CLOSE, {"fraction": "0"}, "fraction"),
        (CLOSE, {"fraction": None}, "fraction"),
        (CANCEL, {"issued_at": None}, "issued_at"),
    ],
)
def test_malformed_instructions_are_unreadable(
    base: dict[str, Any], change: dict[str, Any], problem: str
) -> None:
    with pytest.raises(Unreadable) as unreadable:
        parse_instruction(dict(base, **change))
    assert unreadable.value.instruction_id == base["id"]
    assert problem in unreadable.value.problem


@pytest.mark.parametrize(
    "raw", [None, [], "ins_1", {"action": "open"}, {"id": 5}, {"id": "bad id!"}]
)
def test_without_a_usable_id_nothing_can_be_reported(raw: Any) -> None:
    with pytest.raises(Unreadable) as unreadable:
        parse_instruction(raw)
    assert unreadable.value.instruction_id is None


# --- reports ---


def test_report_ids_are_derived_from_instruction_and_step() -> None:
    assert report_id("ins_Zq3k9LmP0aTx2bWc", "ack") == "ins_Zq3k9LmP0aTx2bWc-ack"
    assert report_id("ins_Zq3k9LmP0aTx2bWc", "fill") != report_id("ins_Zq3k9LmP0aTx2bWd", "fill")
    long_id = "ins_" + "x" * 60
    short_id = "i1"
    for instruction_id in (long_id, short_id):
        derived = report_id(instruction_id, "fill-2")
        assert REPORT_ID_RE.match(derived), derived
        assert derived == report_id(instruction_id, "fill-2")
        assert derived != report_id(instruction_id, "fill")
    assert report_id(long_id, "ack") != report_id("ins_" + "x" * 59 + "y", "ack")


def test_report_bodies_use_decimal_strings() -> None:
    assert ack_body("ins_abc12345", "placed", 7, "x" * 600) == {
        "report_id": "ins_abc12345-placed",
        "instruction_id": "ins_abc12345",
        "ticket": 7,
        "message": "x" * 500,
    }
    assert fill_body(
        "ins_abc12345",
        "fill",
        ticket=5,
        price=Decimal("1.08512"),
        volume=Decimal("1E-1"),
        profit=Decimal("-2.50"),
        executed_at=datetime(2026, 1, 1, 12, tzinfo=UTC),
    ) == {
        "report_id": "ins_abc12345-fill",
        "instruction_id": "ins_abc12345",
        "ticket": 5,
        "price": "1.08512",
        "volume": "0.1",
        "profit": "-2.50",
        "executed_at": "2026-01-01T12:00:00Z",
    }
    assert error_body("ins_abc12345", 90008, "") == {
        "report_id": "ins_abc12345-error",
        "instruction_id": "ins_abc12345",
        "code": 90008,
        "message": "error",
    }


def test_tags_fit_metatraders_comment() -> None:
    assert tag_of("ins_Zq3k9LmP0aTx2bWc") == "sb:ins_Zq3k9LmP0aTx2bWc"
    assert len(tag_of("ins_" + "x" * 60)) == 31


# --- clock ---


def test_clock_offset_from_x_server_time() -> None:
    now = [1_000_000.25]
    clock = ServerClock(lambda: now[0])
    assert clock.unix() == 1_000_000
    clock.observe("1003600")  # the server is an hour ahead
    assert clock.observed and clock.unix() == 1_003_600
    assert clock.now() == datetime.fromtimestamp(1_003_600.5, UTC)  # the header's middle
    before = clock.offset
    clock.observe("1003601")  # the header's rounding: not a change
    assert clock.offset == before
    for junk in (None, "", "soon", "-5", "1.5"):
        clock.observe(junk)
    assert clock.offset == before
    now[0] += 10
    clock.observe("1000010")  # the computer's clock was fixed meanwhile
    assert clock.unix() == 1_000_010


# --- volumes ---

SPEC = SymbolSpec(Decimal("0.01"), Decimal("0.01"), Decimal("50"))


@pytest.mark.parametrize(
    ("volume", "spec", "expected"),
    [
        ("0.10", SPEC, "0.10"),
        ("0.1", SPEC, "0.10"),
        ("0.129", SPEC, "0.12"),
        ("0.009", SPEC, None),
        ("75", SPEC, "50.00"),
        ("0.3", SymbolSpec(Decimal("0.1"), Decimal("0.1"), Decimal("100")), "0.3"),
        ("1.7", SymbolSpec(Decimal("1"), Decimal("1"), Decimal("10")), "1"),
        ("0.75", SymbolSpec(Decimal("0.5"), Decimal("0.5"), Decimal("10")), "0.5"),
        ("0.4", SymbolSpec(Decimal("0.5"), Decimal("0.1"), Decimal("10")), None),
        ("12.37", SymbolSpec(Decimal("0.01"), Decimal("0.01"), Decimal("12.345")), "12.34"),
    ],
)
def test_volume_rounds_down_to_the_step_within_min_and_max(
    volume: str, spec: SymbolSpec, expected: str | None
) -> None:
    rounded = round_volume(Decimal(volume), spec)
    assert (None if rounded is None else str(rounded)) == expected
