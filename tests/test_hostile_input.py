"""Bad input on the side server: the contract's JSON error, never a 500, nothing stored.

One test per class of bad input a fuzzer found (issue 11), each through the real app on a
real database: bytes that are not UTF-8 in headers, deep nesting, numbers no field can
take, lone surrogates and NUL in strings, duplicate keys, times without a UTC instant,
trailing newlines that ``$`` lets through, unreadable bodies, odd path ids.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from yarl import URL

from bot.config import Settings
from bot.container import Container
from bot.domain.signal_rules import SignalValidationError, validate_new_signal
from bot.web.json_body import MAX_DEPTH, NotJson, nesting_depth, parse_json
from bot.web.signing import canonical_string, sign_request
from db.models import Signal
from tests.conftest import FakeClock
from tests.devices_support import EAClient, error_of, new_nonce
from tests.loop_support import (
    approve,
    device_ea,
    fill_body,
    instructions,
    publish,
    report_id,
    stored_instructions,
    stored_records,
)
from tests.raw_http import exchange, http_request
from tests.signals_support import AUTH, PROVIDER_TOKEN, add_users
from webhook_server import create_app

OWNER = 3301
SIGNAL = {"symbol": "EURUSD", "side": "buy"}


@pytest.fixture
async def server(
    container: Container,
    aiohttp_client: Any,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FakeClock,
) -> TestClient[Any, Any]:
    await add_users(sessionmaker, [OWNER], clock.now)
    return await aiohttp_client(create_app(container))


@pytest.fixture
async def ea(container: Container, server: TestClient[Any, Any], clock: FakeClock) -> EAClient:
    return (await device_ea(container, server, clock, OWNER))[1]


@pytest.fixture
async def instruction_id(container: Container, ea: EAClient) -> str:
    """The id of a pending open for the device: a good report on it would be stored."""
    outcome = await publish(container)
    await approve(container, outcome, OWNER)
    [instruction] = await instructions(ea)
    return str(instruction["id"])


async def signals_stored(container: Container) -> int:
    async with container.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(Signal)) or 0)


async def assert_nothing_reported(container: Container) -> None:
    assert await stored_records(container) == []
    assert [i.state for i in await stored_instructions(container)] == ["pending"]


async def raw_exchange(client: TestClient[Any, Any], request: bytes) -> tuple[int, bytes]:
    """Send ``request`` byte for byte (no client library cleans it up); status and body."""
    status, head, body = await exchange(client, request)
    assert b"\r\nx-server-time: " in head.lower()
    return status, body


async def post_signal(server: TestClient[Any, Any], extra: bytes) -> ClientResponse:
    """A market buy with ``extra`` (raw JSON members) in its body, with the token."""
    body = b'{"symbol": "EURUSD", "side": "buy", ' + extra + b"}"
    return await asyncio.wait_for(
        server.post("/api/v1/signals", data=body, headers=AUTH), timeout=10
    )


# ---------------------------------------------------------------- headers


@pytest.mark.parametrize(
    "authorization",
    [
        b"Bearer \xff\xfe",
        b"Bearer " + PROVIDER_TOKEN.encode() + b"\xc3",
        b"\xff\xfe " + PROVIDER_TOKEN.encode(),
    ],
)
async def test_authorization_that_is_not_utf8_is_401(
    server: TestClient[Any, Any], container: Container, authorization: bytes
) -> None:
    body = json.dumps(SIGNAL).encode()
    request = http_request("POST", b"/api/v1/signals", {"Authorization": authorization}, body)
    status, answer = await raw_exchange(server, request)
    assert (status, json.loads(answer)["error"]) == (401, "unauthorized")
    assert await signals_stored(container) == 0


async def test_passphrase_with_a_lone_surrogate_is_401(
    server: TestClient[Any, Any], container: Container
) -> None:
    body = b'{"passphrase": "\\ud800", "symbol": "EURUSD", "side": "buy"}'
    response = await server.post("/api/v1/signals", data=body)
    assert await error_of(response) == (401, "unauthorized")
    assert await signals_stored(container) == 0


@pytest.mark.parametrize("header", ["X-Device-Id", "X-Timestamp", "X-Nonce", "X-Signature"])
async def test_signing_header_that_is_not_utf8_is_401(
    server: TestClient[Any, Any], ea: EAClient, header: str
) -> None:
    signed = {name: value.encode() for name, value in ea.headers("GET", "/healthz").items()}
    signed[header] = signed[header][:-2] + b"\xff\xfe"
    request = http_request("GET", b"/api/v1/ea/instructions", signed, b"")
    status, answer = await raw_exchange(server, request)
    assert (status, json.loads(answer)["error"]) == (401, "missing_credentials")


def test_canonical_string_keeps_the_bytes_of_an_undecodable_target() -> None:
    # What aiohttp's pure-Python parser hands over for GET /a/%FF sent as a raw 0xFF byte.
    canonical = canonical_string("GET", "/a/\udcff", "1767225600", "n0nce-0001-abcdef", b"")
    assert canonical.split(b"\n")[1] == b"/a/\xff"


# ---------------------------------------------------------------- nesting


def test_nesting_depth_ignores_brackets_in_strings() -> None:
    assert nesting_depth(b'{"a": [[1], {"b": "[[[[{{{{"}]}') == 3
    assert nesting_depth(b'["\\"[[[[", [[]]]') == 3
    assert nesting_depth(b"[" * 5000) == 5000


async def test_deep_nesting_in_a_report_is_400(
    container: Container, ea: EAClient, instruction_id: str
) -> None:
    nested = "[" * 30_000 + "]" * 30_000
    body = json.dumps(fill_body(instruction_id)).replace('"ticket"', f'"extra": {nested}, "ticket"')
    response = await ea.request("POST", "/api/v1/exec/fill", body.encode())
    assert await error_of(response) == (400, "invalid_json")
    assert "nested deeper" in (await response.json())["message"]
    await assert_nothing_reported(container)


async def test_deep_nesting_in_a_signal_is_400(
    server: TestClient[Any, Any], container: Container
) -> None:
    body = b'{"symbol": "EURUSD", "side": "buy", "x": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"
    response = await server.post("/api/v1/signals", data=body, headers=AUTH)
    assert await error_of(response) == (400, "invalid_json")
    # Without the header the passphrase cannot be read either: that is 401, as before.
    response = await server.post("/api/v1/signals", data=body)
    assert await error_of(response) == (401, "unauthorized")
    assert await signals_stored(container) == 0


async def test_nesting_up_to_the_limit_and_brackets_in_text_are_fine(
    server: TestClient[Any, Any], container: Container
) -> None:
    comment = "[" * 1000 + "{" * 1000
    response = await server.post(
        "/api/v1/signals", json={**SIGNAL, "comment": comment[:500]}, headers=AUTH
    )
    assert response.status == 201
    assert parse_json(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH).problems == {}
    with pytest.raises(NotJson):
        parse_json(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1))


# ---------------------------------------------------------------- strings


@pytest.mark.parametrize(
    "message",
    [b'"\\ud800"', b'"ok \\udfff"', b'"\\ude00\\ud83d"', b'"nul \\u0000 here"'],
)
async def test_lone_surrogate_or_nul_in_a_report_is_422(
    container: Container, ea: EAClient, instruction_id: str, message: bytes
) -> None:
    body = b'{"report_id": "%s", "instruction_id": "%s", "code": 10004, "message": %s}' % (
        report_id().encode(),
        instruction_id.encode(),
        message,
    )
    response = await ea.request("POST", "/api/v1/exec/error", body)
    assert await error_of(response) == (422, "invalid_request")
    assert set((await response.json())["fields"]) == {"message"}
    await assert_nothing_reported(container)


async def test_surrogate_bytes_in_a_report_are_not_json(
    container: Container, ea: EAClient, instruction_id: str
) -> None:
    # A surrogate encoded as UTF-8 bytes (ED A0 80) is not UTF-8: json.loads(bytes) took it.
    body = b'{"report_id": "%s", "instruction_id": "%s", "code": 1, "message": "\xed\xa0\x80"}' % (
        report_id().encode(),
        instruction_id.encode(),
    )
    response = await ea.request("POST", "/api/v1/exec/error", body)
    assert await error_of(response) == (400, "invalid_json")
    await assert_nothing_reported(container)


async def test_a_surrogate_pair_is_an_ordinary_character(
    container: Container, ea: EAClient, instruction_id: str
) -> None:
    body = (
        b'{"report_id": "%s", "instruction_id": "%s", "code": 1, "message": "\\ud83d\\ude00"}'
        % (
            report_id().encode(),
            instruction_id.encode(),
        )
    )
    response = await ea.request("POST", "/api/v1/exec/error", body)
    assert response.status == 201
    [record] = await stored_records(container)
    assert record.message == "\U0001f600"


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        (b'"comment": "\\ud800"', "comment"),
        (b'"comment": "a\\u0000b"', "comment"),
        (b'"take_profit": ["1.2", "\\udbff"]', "take_profit"),
        (b'"\\ud800": 1', "\\ud800"),
    ],
)
async def test_lone_surrogate_or_nul_in_a_signal_is_422(
    server: TestClient[Any, Any], container: Container, extra: bytes, field: str
) -> None:
    response = await post_signal(server, extra)
    assert await error_of(response) == (422, "invalid_request")
    assert set((await response.json())["fields"]) == {field}
    body = b'{"symbol": "EURUSD", "side": "buy", ' + extra + b"}"
    passphrase = body.replace(b"{", b'{"passphrase": "%s", ' % PROVIDER_TOKEN.encode(), 1)
    response = await server.post("/api/v1/signals", data=passphrase)
    assert await error_of(response) == (422, "invalid_request")
    assert await signals_stored(container) == 0


async def test_duplicate_keys_are_422(
    server: TestClient[Any, Any], container: Container, ea: EAClient, instruction_id: str
) -> None:
    body = b'{"symbol": "EURUSD", "side": "buy", "stop_loss": "1.0", "stop_loss": "2.0"}'
    response = await server.post("/api/v1/signals", data=body, headers=AUTH)
    assert await error_of(response) == (422, "invalid_request")
    assert (await response.json())["fields"] == {"stop_loss": "is given more than once"}
    assert await signals_stored(container) == 1  # the open's signal, from the fixture

    report = b'{"report_id": "%s", "instruction_id": "%s", "report_id": "%s"}' % (
        report_id().encode(),
        instruction_id.encode(),
        report_id().encode(),
    )
    response = await ea.request("POST", "/api/v1/exec/ack", report)
    assert await error_of(response) == (422, "invalid_request")
    assert set((await response.json())["fields"]) == {"report_id"}
    await assert_nothing_reported(container)


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [
        ("ack", "report_id", "rep-12345678\n"),
        ("ack", "instruction_id", "@\n"),
        ("fill", "price", "1.08512\n"),
        ("fill", "volume", "0.01\n"),
    ],
)
async def test_trailing_newline_does_not_pass_a_pattern(
    container: Container, ea: EAClient, instruction_id: str, kind: str, field: str, value: str
) -> None:
    body = fill_body(instruction_id) if kind == "fill" else {"instruction_id": instruction_id}
    body = {"report_id": report_id(), **body}
    body[field] = value.replace("@", instruction_id)
    response = await ea.post_json(f"/api/v1/exec/{kind}", body)
    assert await error_of(response) == (422, "invalid_request")
    assert set((await response.json())["fields"]) == {field}
    await assert_nothing_reported(container)


async def test_trailing_newline_in_client_id_and_wait_is_422(
    server: TestClient[Any, Any], container: Container, ea: EAClient
) -> None:
    response = await server.post(
        "/api/v1/signals", json={**SIGNAL, "client_id": "client-0001\n"}, headers=AUTH
    )
    assert await error_of(response) == (422, "invalid_request")
    assert set((await response.json())["fields"]) == {"client_id"}
    assert await signals_stored(container) == 0
    response = await ea.get("/api/v1/ea/instructions?wait=1%0A")
    assert await error_of(response) == (422, "invalid_request")


# ---------------------------------------------------------------- times


@pytest.mark.parametrize(
    "executed_at",
    ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "9999-12-31T23:30:00-23:59"],
)
async def test_time_without_a_utc_instant_is_422(
    container: Container, ea: EAClient, instruction_id: str, executed_at: str
) -> None:
    response = await ea.post_json(
        "/api/v1/exec/fill", fill_body(instruction_id, executed_at=executed_at)
    )
    assert await error_of(response) == (422, "invalid_request")
    assert set((await response.json())["fields"]) == {"executed_at"}
    await assert_nothing_reported(container)


@pytest.mark.parametrize("executed_at", ["0001-01-01T00:00:00-01:00", "9999-12-31T23:59:59+01:00"])
async def test_times_at_the_edges_of_utc_are_stored(
    container: Container, ea: EAClient, instruction_id: str, executed_at: str
) -> None:
    body = fill_body(instruction_id, executed_at=executed_at)
    response = await ea.post_json("/api/v1/exec/fill", body)
    assert response.status == 201, await response.text()
    [record] = await stored_records(container)
    assert record.executed_at is not None


async def test_a_year_before_1000_is_written_with_four_digits(
    container: Container, ea: EAClient, instruction_id: str
) -> None:
    [pending] = await instructions(ea)
    body = fill_body(instruction_id, executed_at="0001-01-01T00:00:00-01:00")
    assert (await ea.post_json("/api/v1/exec/fill", body)).status == 201
    response = await ea.get(f"/api/v1/exec/status/{pending['signal_id']}")
    [record] = (await response.json())["records"]
    # strftime("%Y") wrote "1-01-01T01:00:00Z", which is no ISO 8601 time.
    assert record["executed_at"] == "0001-01-01T01:00:00Z"


# ---------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    ("field", "literal"),
    [
        ("ticket", b"9" * 5000),  # past Python's int-string limit (4300 digits)
        ("ticket", b"18446744073709551616"),  # 2**64
        ("ticket", b"1e999999"),
        ("ticket", b"5012345.0"),
        ("price", b"1.08512"),  # a float where a decimal string is required
        ("price", b"1e-999999999"),
        ("volume", b'"' + b"1" * 5000 + b'"'),
    ],
)
async def test_numbers_no_report_field_takes_are_422(
    container: Container, ea: EAClient, instruction_id: str, field: str, literal: bytes
) -> None:
    body = json.dumps(fill_body(instruction_id, **{field: "@"})).encode()
    body = body.replace(b'"@"', literal)
    response = await ea.request("POST", "/api/v1/exec/fill", body)
    assert await error_of(response) == (422, "invalid_request")
    assert set((await response.json())["fields"]) == {field}
    await assert_nothing_reported(container)


async def test_error_code_beyond_64_bits_is_422(
    container: Container, ea: EAClient, instruction_id: str
) -> None:
    # 5000 digits: past Python's int-string limit, so json.loads itself raised.
    for code in (str(2**63), str(-(2**63) - 1), "9" * 5000, "-" + "9" * 5000):
        body = {"report_id": report_id(), "instruction_id": instruction_id, "message": "x"}
        raw = json.dumps(body | {"code": 0}).replace('"code": 0', f'"code": {code}').encode()
        response = await ea.request("POST", "/api/v1/exec/error", raw)
        assert await error_of(response) == (422, "invalid_request")
        assert set((await response.json())["fields"]) == {"code"}
    await assert_nothing_reported(container)


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
async def test_nan_and_infinity_are_not_json(
    server: TestClient[Any, Any],
    container: Container,
    ea: EAClient,
    instruction_id: str,
    constant: bytes,
) -> None:
    report = json.dumps(fill_body(instruction_id, ticket="@")).encode().replace(b'"@"', constant)
    response = await ea.request("POST", "/api/v1/exec/fill", report)
    assert await error_of(response) == (400, "invalid_json")
    signal = b'{"symbol": "EURUSD", "side": "buy", "stop_loss": %s}' % constant
    response = await server.post("/api/v1/signals", data=signal, headers=AUTH)
    assert await error_of(response) == (400, "invalid_json")
    await assert_nothing_reported(container)
    assert await signals_stored(container) == 1


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        (b'"stop_loss": 1e9999999', "stop_loss"),
        (b'"stop_loss": 1e-9999999', "stop_loss"),
        (b'"take_profit": 1e9999999', "take_profit"),
        (b'"take_profit": ["1.2", 1E+999999999]', "take_profit"),
        (b'"order_type": "limit", "entry": -1e9999999', "entry"),
        (b'"expires_in": "' + b"9" * 5000 + b'"', "expires_in"),
        (b'"expires_in": "\xc2\xb2"', "expires_in"),  # "²" passes str.isdigit(), not int()
        (b'"expires_in": ' + b"9" * 5000, "expires_in"),
        (b'"expires_in": 1e999999', "expires_in"),
        (b'"expires_in": 1e-99999999', "expires_in"),
    ],
)
async def test_numbers_no_signal_field_takes_are_422(
    server: TestClient[Any, Any], container: Container, extra: bytes, field: str
) -> None:
    response = await post_signal(server, extra)
    assert await error_of(response) == (422, "invalid_request")
    assert set((await response.json())["fields"]) == {field}
    assert await signals_stored(container) == 0


def test_a_huge_exponent_is_refused_without_arithmetic(settings: Settings) -> None:
    # int(Decimal("1e999999")) takes 86 s here, all that time with the event loop blocked.
    outcomes: list[dict[str, str]] = []

    def validate() -> None:
        for exponent in ("1e999999", "1e99999999", "1e-99999999"):
            data = {**SIGNAL, "expires_in": Decimal(exponent)}
            with pytest.raises(SignalValidationError) as caught:
                validate_new_signal(data, settings.signals)
            outcomes.append(caught.value.fields)

    worker = threading.Thread(target=validate, daemon=True)
    worker.start()
    worker.join(timeout=5)
    assert outcomes == [{"expires_in": "must be a whole number of seconds"}] * 3


@pytest.mark.parametrize(
    ("action", "body", "field"),
    [
        ("close", b'{"fraction": 1e-9999999}', "fraction"),
        ("close", b'{"fraction": "0.' + b"0" * 5000 + b'1"}', "fraction"),
        ("modify", b'{"stop_loss": 1e9999999}', "stop_loss"),
        ("modify", b'{"take_profit": [1e-9999999]}', "take_profit"),
    ],
)
async def test_numbers_no_change_takes_are_422_and_change_nothing(
    server: TestClient[Any, Any], action: str, body: bytes, field: str
) -> None:
    created = await server.post("/api/v1/signals", json=SIGNAL, headers=AUTH)
    signal_id = (await created.json())["id"]
    before = await (await server.get(f"/api/v1/signals/{signal_id}", headers=AUTH)).json()
    response = await server.post(f"/api/v1/signals/{signal_id}/{action}", data=body, headers=AUTH)
    assert await error_of(response) == (422, "invalid_request")
    assert set((await response.json())["fields"]) == {field}
    after = await (await server.get(f"/api/v1/signals/{signal_id}", headers=AUTH)).json()
    assert after == before


# ---------------------------------------------------------------- bodies and paths


async def test_body_that_does_not_decode_is_400(
    server: TestClient[Any, Any], container: Container, ea: EAClient, instruction_id: str
) -> None:
    garbage = b"not gzip at all"
    response = await server.post(
        "/api/v1/signals", data=garbage, headers={**AUTH, "Content-Encoding": "gzip"}
    )
    assert await error_of(response) == (400, "bad_request")
    report = json.dumps(fill_body(instruction_id)).encode()
    signed = ea.headers("POST", "/api/v1/exec/fill", report)
    response = await server.post(
        "/api/v1/exec/fill", data=garbage, headers={**signed, "Content-Encoding": "deflate"}
    )
    assert await error_of(response) == (400, "bad_request")
    # A body that does decode is read decoded, as before.
    response = await server.post(
        "/api/v1/signals",
        data=gzip.compress(json.dumps(SIGNAL).encode()),
        headers={**AUTH, "Content-Encoding": "gzip"},
    )
    assert response.status == 201
    await assert_nothing_reported(container)


@pytest.mark.parametrize("signal_id", ["a%00b", "sig_%FF%FE", "%0A%1B[31m", "x" * 65])
async def test_path_ids_never_issued_are_404_without_a_query(
    server: TestClient[Any, Any], ea: EAClient, signal_id: str
) -> None:
    target = f"/api/v1/signals/{signal_id}"
    for method, path in (("GET", target), ("POST", target + "/cancel")):
        response = await server.request(method, URL(path, encoded=True), headers=AUTH)
        assert await error_of(response) == (404, "unknown_signal")
    status_target = f"/api/v1/exec/status/{signal_id}"
    response = await server.get(
        URL(status_target, encoded=True), headers=ea.headers("GET", status_target)
    )
    assert await error_of(response) == (404, "unknown_signal")


async def test_signed_target_with_odd_query_bytes_is_answered(
    server: TestClient[Any, Any], ea: EAClient
) -> None:
    timestamp = int(ea.clock.now.timestamp())
    for target, status in (
        ("/api/v1/ea/instructions?wait=%FF", 422),
        ("/api/v1/ea/instructions?wait=%C2%B2", 422),
        ("/api/v1/ea/instructions?%00=%0D%0A", 200),
    ):
        headers = sign_request(ea.device_id, ea.secret, "GET", target, timestamp, new_nonce())
        response = await server.get(URL(target, encoded=True), headers=headers)
        assert response.status == status, await response.text()
        if status == 422:
            assert set((await response.json())["fields"]) == {"wait"}
