"""The EA's shared include files (ea/include/SignalBridge), compiled by g++ as they ship and
driven through ea/shim/unit_main.cpp; the Python side of each check is the server's own
code or the standard library."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.execution.reports import REPORT_ID_RE
from bot.web.signing import canonical_string, sign_request
from tests.ea_mql_support import EA_DIR, compile_all, load_mql2cpp, run_unit

SECRET = "k3Jd9_vQ2mX8pL5tR7wZ1yB4nC6fH0sA2eG8uI3oK9w"
FAST = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
ID_CHARS = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-",
    min_size=1,
    max_size=64,
)


@pytest.fixture(scope="session")
def unit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_all(tmp_path_factory.mktemp("ea_unit"), ("unit",))["unit"]


def call(unit: Path, *args: str, **env: str) -> str:
    return run_unit(unit, *args, env=env)


# --- the rewrite before g++ ------------------------------------------------------------


def test_rewrite_is_the_three_mechanical_changes() -> None:
    mql2cpp = load_mql2cpp()
    assert mql2cpp.translate_line("   uchar block[];") == "   MqlArray<uchar> block;"
    assert (
        mql2cpp.translate_line("void SbSha256(const uchar &data[], uchar &digest[])")
        == "void SbSha256(const MqlArray<uchar> &data, MqlArray<uchar> &digest)"
    )
    assert (
        mql2cpp.translate_line("   SbEntry           entries[];") == "   MqlArray<SbEntry> entries;"
    )
    assert mql2cpp.translate_line("uint SB_SHA256_K[64] =") == "uint SB_SHA256_K[64] ="
    assert mql2cpp.translate_line("      block[i] = data[i];") == "      block[i] = data[i];"
    assert mql2cpp.translate_line('#property version   "1.00"') == ""
    assert (
        mql2cpp.translate_line("input int    PollWaitSeconds = 2; // x")
        == "int    PollWaitSeconds = 2; // x"
    )
    assert mql2cpp.translate_line('sinput string Name = "a";') == 'string Name = "a";'


def _untranslate(line: str) -> str:
    return re.sub(r"MqlArray<(\w+)> (&?)(\w+)", r"\1 \2\3[]", line)


def test_rewrite_changes_nothing_else_in_the_shipped_files() -> None:
    """Every line g++ sees is the shipped line, or one of the three rewrites of it."""
    mql2cpp = load_mql2cpp()
    files = sorted(EA_DIR.rglob("*.mq*"))
    assert {f.name for f in files} >= {
        "SignalBridge.mq5",
        "SignalBridge.mq4",
        "Engine.mqh",
        "Sha256.mqh",
    }
    changed = 0
    for path in files:
        for line in path.read_text(encoding="utf-8").split("\n"):
            out = mql2cpp.translate_line(line)
            if out == line:
                continue
            changed += 1
            if line.lstrip().startswith("#property"):
                assert out == ""
            elif re.match(r"\s*(input|sinput)\s", line):
                assert out == re.sub(r"^(\s*)(?:input|sinput)\s+", r"\1", line)
            else:
                assert _untranslate(out).split() == line.split(), (path.name, line, out)
    assert 0 < changed < 120


# --- section 2: SHA-256, HMAC, the canonical string, the test vectors --------------------


def test_start_up_self_test_passes(unit: Path) -> None:
    assert call(unit, "selftest") == "ok \n"


def test_the_two_test_vectors_of_section_2(unit: Path) -> None:
    first = call(
        unit,
        "sign",
        SECRET,
        "GET",
        "/api/v1/ea/instructions?wait=20",
        "1767225600",
        "n0nce-0001-abcdef",
        "",
    )
    assert first.strip() == "711adf5aab004d044f9618b4a8fd990215f5a615d3d3a0d6094ccd8b9c61580e"
    body = (
        b'{"report_id":"r-7f3a9c21","instruction_id":"ins_01","ticket":5012345,'
        b'"price":"1.08512","volume":"0.10"}'
    )
    assert call(unit, "sha256", body.hex()).strip() == (
        "32f873fa79f963954b3b42867bb267807a6e5307bbe6ba98f05a951f7f6ec1c2"
    )
    second = call(
        unit,
        "sign",
        SECRET,
        "POST",
        "/api/v1/exec/fill",
        "1767225601",
        "n0nce-0002-abcdef",
        body.hex(),
    )
    assert second.strip() == "f3d1a2543a9f6c61f0564e158c1118752e80fb721dc3e3574e2dab841f00b98f"


@pytest.mark.parametrize("length", [0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 1000])
def test_sha256_at_the_padding_boundaries(unit: Path, length: int) -> None:
    data = bytes(range(256)) * 4
    data = data[:length]
    assert call(unit, "sha256", data.hex()).strip() == hashlib.sha256(data).hexdigest()


@FAST
@given(data=st.binary(max_size=300))
def test_sha256_matches_hashlib(unit: Path, data: bytes) -> None:
    assert call(unit, "sha256", data.hex()).strip() == hashlib.sha256(data).hexdigest()


@FAST
@given(key=st.binary(max_size=130), message=st.binary(max_size=200))
def test_hmac_matches_the_standard_library(unit: Path, key: bytes, message: bytes) -> None:
    expected = hmac.new(key, message, hashlib.sha256).hexdigest()
    assert call(unit, "hmac", key.hex(), message.hex()).strip() == expected


@FAST
@given(
    method=st.sampled_from(["GET", "POST", "get"]),
    target=st.from_regex(r"\A/api/v1/[a-z/]{1,20}(\?wait=[0-9]{1,2})?\Z"),
    timestamp=st.integers(0, 2**40).map(str),
    nonce=st.from_regex(r"\A[A-Za-z0-9_-]{16,64}\Z"),
    body=st.binary(max_size=200),
)
def test_canonical_string_and_signature_match_the_server(
    unit: Path, method: str, target: str, timestamp: str, nonce: str, body: bytes
) -> None:
    canonical = call(unit, "canonical", method, target, timestamp, nonce, body.hex())
    assert canonical.encode() == canonical_string(method, target, timestamp, nonce, body)
    signature = call(unit, "sign", SECRET, method, target, timestamp, nonce, body.hex()).strip()
    headers = sign_request("dev_x", SECRET, method.upper(), target, timestamp, nonce, body)
    assert signature == headers["X-Signature"]


def test_nonces_have_the_contract_shape_and_do_not_repeat(unit: Path) -> None:
    nonces = call(unit, "nonce", "500").split()
    assert len(nonces) == len(set(nonces)) == 500
    assert all(re.fullmatch(r"[0-9a-f]{32}", n) for n in nonces)


# --- instructions: every shape of section 3, and malformed ones ---------------------------

OPEN = {
    "id": "ins_7Gz3kQ0aLmP2xY9w",
    "signal_id": "sig_AbC123",
    "action": "open",
    "symbol": "EURUSD.m",
    "side": "buy",
    "order_type": "market",
    "entry": None,
    "stop_loss": "1.08000",
    "take_profit": ["1.09500", "1.10000"],
    "volume": "0.10",
    "comment": 'London "open"',
    "issued_at": "2026-01-01T00:00:00Z",
    "expires_at": "2026-01-01T00:15:00Z",
}
MODIFY = {
    "id": "ins_m1",
    "signal_id": "sig_AbC123",
    "action": "modify",
    "symbol": "EURUSD.m",
    "stop_loss": "1.08500",
    "take_profit": ["1.09500"],
    "issued_at": "2026-01-01T00:05:00Z",
}
CLOSE = {
    "id": "ins_c1",
    "signal_id": "sig_AbC123",
    "action": "close",
    "symbol": "EURUSD.m",
    "fraction": "0.5",
    "issued_at": "2026-01-01T00:06:00Z",
}
CANCEL = {
    "id": "ins_x1",
    "signal_id": "sig_AbC123",
    "action": "cancel",
    "symbol": "EURUSD.m",
    "issued_at": "2026-01-01T00:07:00+00:00",
}


def parse(unit: Path, instruction: Any) -> tuple[str, dict[str, str]]:
    text = instruction if isinstance(instruction, str) else json.dumps(instruction)
    first, *rest = call(unit, "parse", text).splitlines()
    return first, dict(line.split("=", 1) for line in rest)


def test_open_market(unit: Path) -> None:
    verdict, fields = parse(unit, OPEN)
    assert verdict == "ok"
    assert fields["id"] == "ins_7Gz3kQ0aLmP2xY9w"
    assert (fields["action"], fields["symbol"], fields["side"], fields["order_type"]) == (
        "open",
        "EURUSD.m",
        "buy",
        "market",
    )
    assert (fields["entry"], fields["stop_loss"], fields["take_profit"]) == (
        "0.00000000",
        "1.08000000",
        "1.09500000",
    )
    assert fields["volume"] == "0.10000000"
    assert json.loads(fields["comment"]) == 'London "open"'
    assert int(fields["issued_at"]) == int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
    assert int(fields["expires_at"]) - int(fields["issued_at"]) == 900


@pytest.mark.parametrize("order_type", ["limit", "stop"])
def test_open_pending(unit: Path, order_type: str) -> None:
    verdict, fields = parse(
        unit, {**OPEN, "side": "sell", "order_type": order_type, "entry": "1.09", "take_profit": []}
    )
    assert verdict == "ok"
    assert (fields["side"], fields["order_type"], fields["entry"], fields["take_profit"]) == (
        "sell",
        order_type,
        "1.09000000",
        "0.00000000",
    )


def test_open_without_stop_loss_comment_or_expiry(unit: Path) -> None:
    verdict, fields = parse(unit, {**OPEN, "stop_loss": None, "comment": None, "expires_at": None})
    assert verdict == "ok"
    assert (fields["stop_loss"], fields["comment"], fields["expires_at"]) == (
        "0.00000000",
        '""',
        "0",
    )


def test_modify_close_cancel(unit: Path) -> None:
    verdict, fields = parse(unit, MODIFY)
    assert verdict == "ok" and (fields["stop_loss"], fields["take_profit"]) == (
        "1.08500000",
        "1.09500000",
    )
    verdict, fields = parse(unit, {**MODIFY, "stop_loss": None, "take_profit": []})
    assert verdict == "ok" and (fields["stop_loss"], fields["take_profit"]) == (
        "0.00000000",
        "0.00000000",
    )
    verdict, fields = parse(unit, CLOSE)
    assert verdict == "ok" and fields["fraction"] == "0.50000000"
    verdict, fields = parse(unit, {**CLOSE, "fraction": "1"})
    assert verdict == "ok" and fields["fraction"] == "1.00000000"
    verdict, fields = parse(unit, CANCEL)
    assert verdict == "ok" and fields["action"] == "cancel"


def without(data: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != key}


MALFORMED = [
    (without(OPEN, "signal_id"), "signal_id is missing"),
    ({**OPEN, "action": "reverse"}, "action reverse is not one this EA knows"),
    ({**OPEN, "symbol": ""}, "symbol must be 1-64 characters"),
    ({**OPEN, "symbol": "EUR USD"}, "symbol must not contain spaces"),
    ({**OPEN, "side": "long"}, "side must be buy or sell"),
    ({**OPEN, "order_type": "stop_limit"}, "order_type must be"),
    ({**OPEN, "entry": "1.09"}, "entry must be null for a market order"),
    ({**OPEN, "order_type": "limit"}, "entry is missing"),
    ({**OPEN, "order_type": "limit", "entry": "0"}, "entry must be a positive decimal string"),
    ({**OPEN, "stop_loss": 1.08}, "stop_loss must be a positive decimal string"),
    ({**OPEN, "stop_loss": "1.08e0"}, "stop_loss must be a positive decimal string"),
    ({**OPEN, "take_profit": "1.095"}, "take_profit must be a list"),
    ({**OPEN, "take_profit": ["1.095", "x"]}, "take_profit[1] must be a positive decimal string"),
    (without(OPEN, "volume"), "volume is missing"),
    ({**OPEN, "volume": "-0.1"}, "volume must be a positive decimal string"),
    ({**OPEN, "volume": "0.1234567890123"}, "volume must be a positive decimal string"),
    ({**OPEN, "comment": 5}, "comment must be a string or null"),
    (
        {**OPEN, "issued_at": "2026-01-01 00:00:00"},
        "issued_at must be an ISO 8601 time with a zone",
    ),
    (
        {**OPEN, "issued_at": "2026-13-01T00:00:00Z"},
        "issued_at must be an ISO 8601 time with a zone",
    ),
    ({**OPEN, "expires_at": "soon"}, "expires_at must be an ISO 8601 time with a zone"),
    (without(without(MODIFY, "stop_loss"), "take_profit"), "modify needs stop_loss or take_profit"),
    ({**CLOSE, "fraction": "0"}, "fraction must be a decimal string in (0, 1]"),
    ({**CLOSE, "fraction": "1.5"}, "fraction must be a decimal string in (0, 1]"),
    ({**CLOSE, "fraction": 0.5}, "fraction must be a decimal string in (0, 1]"),
]


@pytest.mark.parametrize(("instruction", "problem"), MALFORMED)
def test_malformed_instructions_are_90008_with_the_reason(
    unit: Path, instruction: dict[str, Any], problem: str
) -> None:
    verdict, fields = parse(unit, instruction)
    assert verdict.startswith("malformed ")
    assert problem in verdict
    assert fields["id"] == instruction["id"]  # so the error report can name it


@pytest.mark.parametrize(
    ("instruction", "problem"),
    [
        (without(OPEN, "id"), "id is missing"),
        ({**OPEN, "id": 7}, "id is not a string"),
        ({**OPEN, "id": "ins 1"}, "id must be 1-64 characters"),
        ([OPEN], "the instruction is not a JSON object"),
    ],
)
def test_instruction_without_a_usable_id_has_none(
    unit: Path, instruction: Any, problem: str
) -> None:
    verdict, fields = parse(unit, instruction)
    assert verdict.startswith(f"malformed {problem}")
    assert fields["id"] == ""


@pytest.mark.parametrize(
    "text",
    [
        '{"id": "a"',
        '{"id": "a"} x',
        '{"id": "\\q"}',
        '{"a": 01x}',
        '{"a": tru}',
        "[" * 40 + "]" * 40,
        '{"a": "\x01"}',
        "",
    ],
)
def test_broken_json_is_refused(unit: Path, text: str) -> None:
    assert call(unit, "json", text).startswith("error ")


def test_json_reads_escapes_and_nesting(unit: Path) -> None:
    assert call(
        unit, "json", json.dumps({"a": ['\\"\n\t/', {"b": [1, -2.5e3, True, False, None]}]})
    ).startswith("ok")
    verdict, fields = parse(unit, {**OPEN, "comment": "tab\there \\ \u0041"})
    assert verdict == "ok" and json.loads(fields["comment"]) == "tab\there \\ A"


@FAST
@given(text=st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=127), max_size=60))
def test_json_writer_quotes_round_trip(unit: Path, text: str) -> None:
    quoted = call(unit, "quote", text).removesuffix("\n")
    assert quoted.isascii()
    assert json.loads(quoted) == text


# --- volume --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "limits", "volume", "note"),
    [
        ("0.10", ("0.01", "0.01", "100"), "0.10000000", ""),
        ("0.3", ("0.01", "0.01", "100"), "0.30000000", ""),
        ("0.129", ("0.01", "0.01", "100"), "0.12000000", "rounded down to the volume step: 0.12"),
        ("0.999", ("0.1", "0.1", "50"), "0.90000000", "rounded down to the volume step: 0.9"),
        ("7", ("1", "1", "1000"), "7.00000000", ""),
        (
            "0.005",
            ("0.01", "0.01", "100"),
            "0.01000000",
            "below the symbol's minimum; opening the minimum 0.01",
        ),
        (
            "250",
            ("0.01", "0.01", "100"),
            "100.00000000",
            "above the symbol's maximum; opening the maximum 100.00",
        ),
        ("1.25", ("0.1", "0.05", "10"), "1.25000000", ""),
        ("1.26", ("0.1", "0.05", "10"), "1.25000000", "rounded down"),
    ],
)
def test_open_volume_rounds_down_to_the_step_within_the_limits(
    unit: Path, requested: str, limits: tuple[str, str, str], volume: str, note: str
) -> None:
    got, got_note = call(unit, "volume", requested, *limits).split("\n")[:2]
    assert got == volume
    assert note in got_note and (note != "" or got_note == "")


@pytest.mark.parametrize(
    ("position", "fraction", "minimum", "step", "part"),
    [
        ("0.10", "0.5", "0.01", "0.01", "0.05000000"),
        ("0.15", "0.5", "0.01", "0.01", "0.07000000"),
        ("0.10", "1", "0.01", "0.01", "0.10000000"),
        ("0.10", "0.999", "0.01", "0.01", "0.09000000"),
        ("0.01", "0.5", "0.01", "0.01", "0.00000000"),
        ("1", "0.3", "0.5", "0.1", "0.00000000"),
        ("0.3", "0.34", "0.1", "0.1", "0.10000000"),
    ],
)
def test_close_volume(
    unit: Path, position: str, fraction: str, minimum: str, step: str, part: str
) -> None:
    assert call(unit, "closevolume", position, fraction, minimum, step).strip() == part


# --- report ids ----------------------------------------------------------------------------


def test_report_ids_are_the_instruction_and_the_step(unit: Path) -> None:
    assert (
        call(unit, "reportid", "ins_7Gz3kQ0aLmP2xY9w", "ack").strip() == "ack-ins_7Gz3kQ0aLmP2xY9w"
    )
    assert (
        call(unit, "reportid", "ins_7Gz3kQ0aLmP2xY9w", "fill").strip()
        == "fill-ins_7Gz3kQ0aLmP2xY9w"
    )
    assert (
        call(unit, "reportid", "ins_7Gz3kQ0aLmP2xY9w", "err").strip() == "err-ins_7Gz3kQ0aLmP2xY9w"
    )
    digest = hashlib.sha256(b"a").hexdigest()[:40]
    assert call(unit, "reportid", "a", "ack").strip() == f"ack-{digest}"  # too short alone
    long_id = "i" * 64
    assert (
        call(unit, "reportid", long_id, "fill").strip()
        == "fill-" + hashlib.sha256(long_id.encode()).hexdigest()[:40]
    )


@FAST
@given(instruction_id=ID_CHARS, step=st.sampled_from(["ack", "fill", "err"]))
def test_report_ids_are_valid_deterministic_and_distinct_per_step(
    unit: Path, instruction_id: str, step: str
) -> None:
    first = call(unit, "reportid", instruction_id, step).strip()
    assert REPORT_ID_RE.match(first)
    assert call(unit, "reportid", instruction_id, step).strip() == first
    other = "fill" if step != "fill" else "ack"
    assert call(unit, "reportid", instruction_id, other).strip() != first


# --- the journal ---------------------------------------------------------------------------

DEVICE = "dev_AbCdEfGhIjKlMnOp"


def journal(unit: Path, files: Path, *args: str) -> str:
    return call(unit, *args, SB_FILES_DIR=str(files))


def add_entry(unit: Path, files: Path, *fields: str) -> str:
    """An instruction in the journal: id, signal, action, state, ticket, ticket kind, comment."""
    instruction_id, signal_id, action, *rest = fields
    return journal(
        unit,
        files,
        "journal-add",
        DEVICE,
        "entry",
        instruction_id,
        signal_id,
        action,
        "EURUSD.m",
        *rest,
    )


def test_journal_round_trip(unit: Path, tmp_path: Path) -> None:
    add_entry(unit, tmp_path, "ins_1", "sig_1", "open", "2", "0", "0", "sb:ins_1\\ttab\\nline \\\\")
    add_entry(unit, tmp_path, "ins_2", "sig_1", "close", "3", "5000001", "1", "")
    body = json.dumps(
        {"report_id": "fill-ins_1", "message": 'tab\there\nnew "q" \\ é'}, ensure_ascii=True
    )
    saved = journal(
        unit, tmp_path, "journal-add", DEVICE, "report", "fill-ins_1", "fill", "ins_1", body
    )
    loaded = journal(unit, tmp_path, "journal-dump", DEVICE)
    assert loaded == saved
    entries = [line for line in loaded.splitlines() if line.startswith("E ")]
    assert len(entries) == 2
    assert json.loads(entries[0].split(" ", 8)[8].rsplit(" ", 7)[0]) == "sb:ins_1\ttab\nline \\"
    [report] = [line for line in loaded.splitlines() if line.startswith("R ")]
    assert json.loads(json.loads(report.split(" ", 4)[4])) == json.loads(body)
    # Accepted by the server: it leaves the queue and the journal says so after a restart.
    journal(unit, tmp_path, "journal-add", DEVICE, "remove", "fill-ins_1")
    assert not [
        line
        for line in journal(unit, tmp_path, "journal-dump", DEVICE).splitlines()
        if line.startswith("R ")
    ]
    assert (tmp_path / f"SignalBridge_{DEVICE}.journal").read_text().startswith("SBJ1\t")
    assert not (tmp_path / f"SignalBridge_{DEVICE}.journal.tmp").exists()


def test_a_damaged_journal_stops_the_ea_rather_than_guess(unit: Path, tmp_path: Path) -> None:
    add_entry(unit, tmp_path, "ins_1", "sig_1", "open", "3", "5000001", "1", "c")
    path = tmp_path / f"SignalBridge_{DEVICE}.journal"
    path.write_text(path.read_text()[:-10])  # cut short: no END line
    out = journal(unit, tmp_path, "journal-dump", DEVICE)
    assert out.startswith("open-error ") and "damaged" in out


def test_a_whole_newer_temporary_journal_wins(unit: Path, tmp_path: Path) -> None:
    """A crash between writing the new journal and renaming it loses nothing."""
    add_entry(unit, tmp_path, "ins_1", "sig_1", "open", "2", "0", "0", "c")
    path = tmp_path / f"SignalBridge_{DEVICE}.journal"
    old = path.read_text()
    add_entry(unit, tmp_path, "ins_2", "sig_2", "open", "2", "0", "0", "c")
    path.rename(path.with_name(path.name + ".tmp"))
    path.write_text(old)
    out = journal(unit, tmp_path, "journal-dump", DEVICE)
    assert [line.split()[1] for line in out.splitlines()] == ["ins_1", "ins_2"]


def test_no_journal_is_an_empty_one(unit: Path, tmp_path: Path) -> None:
    assert journal(unit, tmp_path, "journal-dump", DEVICE) == ""


# --- the clock -----------------------------------------------------------------------------


def test_clock_offset_from_x_server_time(unit: Path) -> None:
    headers = (
        "Content-Type: application/json\\r\\nx-server-time: 1767225600\\r\\nContent-Length: 2\\r\\n"
    )
    assert call(unit, "clock", headers, "1767222000").split() == ["learned", "3600", "1767225600"]
    assert call(unit, "clock", "X-Server-Time:1767225590\\r\\n", "1767225600").split() == [
        "learned",
        "-10",
        "1767225590",
    ]
    assert call(unit, "clock", "Date: x\\r\\n", "1767225600").split() == [
        "unknown",
        "0",
        "1767225600",
    ]
    assert call(unit, "clock", "X-Server-Time: soon\\r\\n", "1767225600").split()[0] == "unknown"


@FAST
@given(moment=st.integers(0, 4_102_444_800))
def test_iso_time_round_trip(unit: Path, moment: int) -> None:
    text = call(unit, "isotime", str(moment)).strip()
    assert text == datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert call(unit, "parsetime", text).split() == ["ok", str(moment)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-01T00:00:00Z", "ok 1767225600"),
        ("2026-01-01T02:00:00+02:00", "ok 1767225600"),
        ("2025-12-31T19:00:00.123-05:00", "ok 1767225600"),
        ("2026-01-01T00:00:00", "error 0"),
        ("2026-01-01T00:00:00+0200", "error 0"),
        ("2026-02-30T25:00:00Z", "error 0"),
    ],
)
def test_parse_time(unit: Path, text: str, expected: str) -> None:
    assert call(unit, "parsetime", text).strip() == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://signals.example.com", "ok https://signals.example.com "),
        ("https://signals.example.com/", "ok https://signals.example.com "),
        ("HTTP://127.0.0.1:8080/bridge/", "ok http://127.0.0.1:8080 /bridge"),
        ("signals.example.com", "error"),
        ("ftp://signals.example.com", "error"),
        ("https://", "error"),
    ],
)
def test_server_url(unit: Path, url: str, expected: str) -> None:
    assert call(unit, "url", url).strip().startswith(expected.strip())


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(
        alphabet=st.characters(min_codepoint=1, max_codepoint=0xFFFF, codec="utf-8"),
        max_size=20,
    ),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=20,
)


@FAST
@given(value=JSON_VALUES, ascii_only=st.booleans())
def test_json_reader_reads_what_json_dumps_writes(unit: Path, value: Any, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert "\x00" not in text
    assert call(unit, "json", text) == "ok \n"


@FAST
@given(text=st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=0x7F), max_size=60))
def test_json_reader_answers_any_text_without_crashing(unit: Path, text: str) -> None:
    try:
        json.loads(text)
        valid = (
            not text.strip().startswith(("NaN", "Infinity", "-Infinity"))
            and "NaN" not in text
            and "Infinity" not in text
        )
    except ValueError:
        valid = False
    assert call(unit, "json", text).split(" ", 1)[0] == ("ok" if valid else "error")


# C++ that g++ would take but MetaEditor would not: the shipped files must not drift into it.
CPP_ONLY = {
    "std::": r"\bstd::",
    "->": r"->",
    "::": r"::",
    "auto": r"\bauto\b",
    "nullptr": r"\bnullptr\b",
    "a C++ cast": r"\b(static|dynamic|reinterpret|const)_cast\b",
    "unsigned": r"\bunsigned\b",
    "size_t": r"\bsize_t\b",
    "namespace": r"\bnamespace\b",
    "using": r"\busing\b",
    "exceptions": r"\b(throw|try|catch)\b",
    "constexpr": r"\bconstexpr\b",
    "a lambda": r"\[[&=]?\]\s*\(",
    "a reference variable": r"^\s*(const\s+)?\w+\s*&\s*\w+\s*=",
    "a default member initializer": r"^\s{3}\w+\s+m_\w+\s*=",
}


def _code_lines(path: Path) -> list[tuple[int, str]]:
    lines = []
    for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
        code = re.sub(r'"(\\.|[^"\\])*"', '""', line).split("//", 1)[0]
        lines.append((number, code))
    return lines


@pytest.mark.parametrize("path", sorted(EA_DIR.rglob("*.mq*")), ids=lambda p: p.name)
def test_shipped_files_use_only_what_mql_has(path: Path) -> None:
    found = [
        f"{path.name}:{number}: {name}"
        for number, code in _code_lines(path)
        for name, pattern in CPP_ONLY.items()
        if re.search(pattern, code)
    ]
    assert found == []


# --- protocol v1.1 (section 5): the new fields of open, close_all ------------------------

OPEN_V11 = {
    **OPEN,
    "sizing": {"mode": "risk_percent", "percent": "1.0", "of": "equity", "max_lots": "2.00"},
    "legs": [
        {"take_profit": "1.09500", "share": "0.5"},
        {"take_profit": "1.10000", "share": "0.3"},
        {"take_profit": "1.10500", "share": "0.2"},
    ],
    "management": {
        "breakeven": {"after_leg": 0, "offset_points": 10},
        "trailing": {"distance_points": 200, "step_points": 50, "start": "after_breakeven"},
    },
    "guards": {"max_spread_points": 30, "reference_price": "1.08520", "max_distance_points": 50},
}


def test_open_with_every_field_of_section_5_2(unit: Path) -> None:
    verdict, fields = parse(unit, OPEN_V11)
    assert verdict == "ok"
    assert fields["sizing"] == "risk_percent 0.00 1.00 equity 0.00 2.00"
    assert fields["legs"] == "1.09500@0.5000,1.10000@0.3000,1.10500@0.2000"
    assert fields["breakeven"] == "0 10"
    assert fields["trailing"] == "200 50 after_breakeven"
    assert fields["guards"] == "30 1.08520 50"
    assert fields["take_profits"] == "1.09500,1.10000"


def test_open_without_section_5_2_fields_is_v1(unit: Path) -> None:
    verdict, fields = parse(unit, OPEN)
    assert verdict == "ok"
    assert (fields["sizing"].split()[0], fields["legs"]) == ("0.00", "")
    assert fields["breakeven"] == "-1 0"
    assert fields["trailing"] == "0 0 at_open"
    assert fields["guards"] == "-1 0.00000 -1"


@pytest.mark.parametrize(
    ("sizing", "expected"),
    [
        ({"mode": "fixed", "lots": "0.10"}, "fixed 0.10 0.00 balance 0.00 0.00"),
        ({"mode": "risk_money", "amount": "50.00"}, "risk_money 0.00 0.00 balance 50.00 0.00"),
        ({"mode": "risk_percent", "percent": "2"}, "risk_percent 0.00 2.00 balance 0.00 0.00"),
    ],
)
def test_sizing_modes(unit: Path, sizing: dict[str, str], expected: str) -> None:
    verdict, fields = parse(unit, {**OPEN, "sizing": sizing})
    assert (verdict, fields["sizing"]) == ("ok", expected)


def test_management_parts_may_be_absent(unit: Path) -> None:
    verdict, fields = parse(unit, {**OPEN, "management": {"trailing": {"distance_points": 150}}})
    assert verdict == "ok"
    assert (fields["breakeven"], fields["trailing"]) == ("-1 0", "150 0 at_open")
    verdict, fields = parse(unit, {**OPEN, "guards": {"max_spread_points": 0}, "legs": None})
    assert (verdict, fields["guards"], fields["legs"]) == ("ok", "0 0.00000 -1", "")


MALFORMED_V11 = [
    ({**OPEN, "sizing": {"mode": "martingale"}}, "sizing.mode must be"),
    ({**OPEN, "sizing": {"mode": "fixed"}}, "sizing.lots must be a positive decimal string"),
    ({**OPEN, "sizing": {"mode": "risk_percent", "percent": 1}}, "sizing.percent must be"),
    ({**OPEN, "sizing": {"mode": "risk_percent", "percent": "150"}}, "at most 100"),
    ({**OPEN, "sizing": {"mode": "risk_percent", "percent": "1", "of": "margin"}}, "sizing.of"),
    ({**OPEN, "sizing": {"mode": "risk_money", "amount": "-5"}}, "sizing.amount"),
    (
        {**OPEN, "stop_loss": None, "sizing": {"mode": "risk_money", "amount": "5"}},
        "needs a stop_loss",
    ),
    ({**OPEN, "sizing": "fixed"}, "sizing must be an object"),
    ({**OPEN, "legs": []}, "legs must be a list of 1-10 legs"),
    ({**OPEN, "legs": [{"take_profit": "1.1", "share": "0.6"}]}, "add up to 1"),
    ({**OPEN, "legs": [{"take_profit": "1.1"}]}, "legs[0].share must be"),
    ({**OPEN, "legs": [{"take_profit": 1.1, "share": "1"}]}, "legs[0].take_profit must be"),
    (
        {**OPEN, "management": {"breakeven": {"after_leg": -1}}},
        "management.breakeven.after_leg must be a whole number",
    ),
    (
        {**OPEN, "management": {"trailing": {"distance_points": 0}}},
        "distance_points must be 1 or more",
    ),
    (
        {**OPEN, "management": {"trailing": {"distance_points": 10, "start": "soon"}}},
        "management.trailing.start must be at_open or after_breakeven",
    ),
    ({**OPEN, "guards": {"max_spread_points": "30"}}, "guards.max_spread_points"),
    ({**OPEN, "guards": {"reference_price": "abc"}}, "guards.reference_price"),
    ({"id": "ins_a1", "action": "close_all"}, "issued_at is missing"),
]


@pytest.mark.parametrize(("instruction", "problem"), MALFORMED_V11)
def test_malformed_v11_fields_are_90008_with_the_reason(
    unit: Path, instruction: dict[str, Any], problem: str
) -> None:
    verdict, _ = parse(unit, instruction)
    assert verdict.startswith("malformed ") and problem in verdict, verdict


def test_close_all_has_no_signal_and_no_symbol(unit: Path) -> None:
    verdict, fields = parse(
        unit, {"id": "ins_all1", "action": "close_all", "issued_at": "2026-01-01T00:00:00Z"}
    )
    assert verdict == "ok"
    assert (fields["action"], fields["signal_id"], fields["symbol"]) == ("close_all", "", "")


# --- sizing, legs, breakeven and trailing: the arithmetic of 5.2 -------------------------


@pytest.mark.parametrize(
    ("figures", "lots"),
    [
        # risk, price, stop loss, tick size, tick value, step, max_lots, volume_max
        (("100", "1.08500", "1.08000", "0.00001", "1", "0.01", "0", "100"), "0.20000000"),
        # a tick worth 0.73 (a quote currency other than the account's): more lots
        (("100", "1.08500", "1.08000", "0.00001", "0.73", "0.01", "0", "100"), "0.27000000"),
        # gold: tick 0.01 worth 1 per lot, 10 dollars to the stop loss
        (("100", "2000.00", "1990.00", "0.01", "1", "0.01", "0", "100"), "0.10000000"),
        # rounded down to the step, never up
        (("100", "1.08500", "1.08000", "0.00001", "0.73", "0.1", "0", "100"), "0.20000000"),
        (("10000", "1.08500", "1.08000", "0.00001", "1", "0.01", "2", "100"), "2.00000000"),
        (("10000", "1.08500", "1.08000", "0.00001", "1", "0.01", "0", "5"), "5.00000000"),
        (("100", "1.08500", "1.08500", "0.00001", "1", "0.01", "0", "100"), "0.00000000"),
        (("100", "1.08500", "1.08000", "0", "0", "0.01", "0", "100"), "0.00000000"),
    ],
)
def test_risk_lots_from_tick_size_and_value(
    unit: Path, figures: tuple[str, ...], lots: str
) -> None:
    assert call(unit, "risklots", *figures).strip() == lots


@pytest.mark.parametrize(
    ("volume", "limits", "shares", "expected"),
    [
        ("0.10", ("0.01", "0.01"), ["0.5", "0.5"], "2 0.05000000 0.05000000"),
        # what the rounding leaves goes to the first leg
        ("0.11", ("0.01", "0.01"), ["0.5", "0.3", "0.2"], "3 0.06000000 0.03000000 0.02000000"),
        # the last leg cannot have the minimum: dropped, its share to the first
        ("0.04", ("0.01", "0.01"), ["0.5", "0.3", "0.2"], "2 0.03000000 0.01000000"),
        ("0.02", ("0.01", "0.01"), ["0.34", "0.33", "0.33"], "1 0.02000000"),
        ("1", ("0.1", "0.1"), ["0.25", "0.25", "0.5"], "3 0.30000000 0.20000000 0.50000000"),
    ],
)
def test_leg_volumes(
    unit: Path, volume: str, limits: tuple[str, str], shares: list[str], expected: str
) -> None:
    assert call(unit, "legs", volume, *limits, *shares).strip() == expected


@pytest.mark.parametrize(
    ("args", "stop"),
    [
        # buy: bid - 200 points lies 300 points above the stop loss: it moves
        (("buy", "1.09000", "1.09012", "1.08500", "200", "50"), "1.08800000"),
        # only 49 points above: stays
        (("buy", "1.09000", "1.09012", "1.08751", "200", "50"), "0.00000000"),
        # exactly the step: moves
        (("buy", "1.09000", "1.09012", "1.08750", "200", "50"), "1.08800000"),
        # below the stop loss already (the price fell): never backwards
        (("buy", "1.08600", "1.08612", "1.08800", "200", "50"), "0.00000000"),
        # sell: ask + 200 points, mirrored
        (("sell", "1.07988", "1.08000", "1.08500", "200", "50"), "1.08200000"),
        (("sell", "1.08300", "1.08312", "1.08200", "200", "50"), "0.00000000"),
        # no stop loss yet: one is set
        (("sell", "1.07988", "1.08000", "0", "200", "50"), "1.08200000"),
    ],
)
def test_trailing_stop(unit: Path, args: tuple[str, ...], stop: str) -> None:
    assert call(unit, "trail", *args, "0.00001", "5").strip() == stop


@pytest.mark.parametrize(
    ("args", "stop"),
    [
        (("buy", "1.08512", "1.08000", "10"), "1.08522000"),
        (("buy", "1.08512", "1.08600", "10"), "0.00000000"),  # already beyond: stays
        (("sell", "1.08500", "1.09000", "10"), "1.08490000"),
        (("sell", "1.08500", "1.08400", "10"), "0.00000000"),
        (("buy", "1.08512", "0", "0"), "1.08512000"),
    ],
)
def test_breakeven_stop(unit: Path, args: tuple[str, ...], stop: str) -> None:
    assert call(unit, "breakeven", *args, "0.00001", "5").strip() == stop


# --- the journal keeps what the EA holds ---------------------------------------------------


def test_holdings_round_trip(unit: Path, tmp_path: Path) -> None:
    journal(
        unit,
        tmp_path,
        "journal-add",
        DEVICE,
        "holding",
        "ins_1",
        "sig_1",
        "2",
        "1",
        "5000007",
        "sb2:ins_1",
    )
    journal(
        unit, tmp_path, "journal-add", DEVICE, "holding", "ins_1", "sig_1", "-1", "2", "5000008", ""
    )
    # written, then read back by a new process
    holdings = [
        line.split(" ") for line in journal(unit, tmp_path, "journal-holdings", DEVICE).splitlines()
    ]
    assert [h[3] for h in holdings] == ["2", "-1"]
    assert holdings[0][1:10] == [
        "ins_1",
        "sig_1",
        "2",
        "EURUSD.m",
        "sell",
        "limit",
        "1",
        "5000007",
        '"sb2:ins_1"',
    ]
    assert holdings[0][10:14] == ["0.30000000", "1.10000000", "1.12000000", "1.05000000"]
    assert holdings[0][14:] == ["0", "10", "200", "50", "1", "1", "0"]
    assert (holdings[1][7], holdings[1][8], holdings[1][9]) == ("2", "5000008", '""')


def test_a_journal_of_ea_1_0_gets_its_holdings(unit: Path, tmp_path: Path) -> None:
    """An upgraded EA reads its 1.0 journal: each open's ticket becomes its one holding."""
    fields = ["E", "ins_1", "sig_1", "open", "EURUSD.m", "3", "5000001", "1", "sb:ins_1"]
    figures = ["0.10000000", "0.00000000", "1767225600", "1767225600", "1.08512000"]
    entry = "\t".join([*fields, *figures, "0.00000000", "0.00000000"])
    pending = (
        entry.replace("ins_1", "ins_2").replace("sig_1", "sig_2").replace("5000001", "5000002")
    )
    pending = pending.replace("\t3\t", "\t4\t", 1).replace("\t1\tsb:", "\t2\tsb:")
    (tmp_path / f"SignalBridge_{DEVICE}.journal").write_text(
        f"SBJ1\t7\n{entry}\n{pending}\nEND\t2\n"
    )
    out = journal(unit, tmp_path, "journal-dump", DEVICE)
    holdings = [
        line.split(" ") for line in journal(unit, tmp_path, "journal-holdings", DEVICE).splitlines()
    ]
    assert [(h[1], h[3], h[7], h[8], h[9]) for h in holdings] == [
        ("ins_1", "-1", "1", "5000001", '"sb:ins_1"'),
        ("ins_2", "-1", "2", "5000002", '"sb:ins_2"'),
    ]
    # the pending order's step became "done": WatchPlaced follows holdings now
    assert [line.split(" ")[5] for line in out.splitlines() if line.startswith("E ")] == ["3", "3"]


def test_an_open_ea_1_0_was_making_is_planned_for_reconcile(unit: Path, tmp_path: Path) -> None:
    """Stopped mid-open by EA 1.0, started as 1.1: the open's one position is planned, so the
    restart looks for it by its comment and never opens it twice."""
    fields = ["E", "ins_9", "sig_9", "open", "EURUSD.m", "2", "0", "0", "sb:ins_9"]
    figures = ["0.10000000", "0.00000000", "1767225600", "1767225600", "0.00000000"]
    entry = "\t".join([*fields, *figures, "0.00000000", "0.00000000"])
    (tmp_path / f"SignalBridge_{DEVICE}.journal").write_text(f"SBJ1\t3\n{entry}\nEND\t1\n")
    [holding] = [
        line.split(" ") for line in journal(unit, tmp_path, "journal-holdings", DEVICE).splitlines()
    ]
    assert (holding[1], holding[3], holding[7], holding[9], holding[10]) == (
        "ins_9",
        "-1",
        "0",
        '"sb:ins_9"',
        "0.10000000",
    )
    # still an open under way (step 2): Reconcile finishes it
    [line] = journal(unit, tmp_path, "journal-dump", DEVICE).splitlines()
    assert line.split(" ")[5] == "2"
