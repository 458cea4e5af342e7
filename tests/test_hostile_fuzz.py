"""A seeded fuzzer of hostile bytes against the real side server: never a 5xx.

schemathesis (tests/test_api_fuzz.py) only sends what a JSON schema can describe. This one
sends what a hostile client can: valid requests of every endpoint, each with one part
replaced by something from HOSTILE (deep nesting, numbers no field takes, lone surrogates,
NUL, times without a UTC instant, duplicate keys, bytes that are not UTF-8 in headers,
odd query strings and path ids, bodies that do not decode), byte for byte over a socket,
device requests correctly signed over exactly those bytes so they reach the endpoint's own
checks. Every answer must be a 2xx-4xx with X-Server-Time, and an error in the contract's
JSON. The same seed gives the same requests.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from typing import Any

from aiohttp.test_utils import TestClient

from bot.container import Container
from bot.web.signing import sign_request
from tests.conftest import FakeClock
from tests.devices_support import EAClient, new_nonce
from tests.loop_support import approve, device_ea, publish
from tests.raw_http import exchange, http_request
from tests.signals_support import PROVIDER_TOKEN, add_users
from tests.wire_support import position, state_body
from webhook_server import create_app

SEED = 20261201
REQUESTS = 1500
OWNER = 3601

# JSON values (as raw bytes) no field should take, or take only after a careful look.
HOSTILE_VALUES: list[bytes] = [
    b"[" * 5000 + b"]" * 5000,
    b'{"a":' * 40 + b"1" + b"}" * 40,
    b"9" * 5000,
    b"-" + b"9" * 4400,
    b"18446744073709551616",
    b"1e999999",
    b"-1e-9999999",
    b"1E+999999999",
    b"NaN",
    b"-Infinity",
    b'"\\ud800"',
    b'"\\udfff\\ud800"',
    b'"a\\u0000b"',
    b'"\xed\xa0\x80"',
    b'"\xff\xfe"',
    b'"\xc2\xb2"',
    b'"' + b"9" * 5000 + b'"',
    b'"0001-01-01T00:00:00+01:00"',
    b'"9999-12-31T23:59:59-01:00"',
    b'"x\\n"',
    b'"\\u001b[31m\\r\\n"',
    b'"' + b"x" * 3000 + b'"',
    b"1.5",
    b"true",
    b"null",
    b"[]",
    b"{}",
    b'["1.1", {"x": []}]',
]
HOSTILE_HEADER_VALUES: list[bytes] = [
    b"\xff\xfe",
    b"Bearer \xff",
    b"\xc3",
    b"\x00"[:0] + b"\x80abc",
]
HOSTILE_QUERIES: list[bytes] = [
    b"wait=%FF",
    b"wait=%00",
    b"wait=1%0A",
    b"wait=%C2%B2",
    b"%FF=1",
    b"wait",
]
HOSTILE_IDS: list[bytes] = [b"a%00b", b"%FF%FE", b"%0A%1B[31m", b"x" * 300, b"%2e%2e", b"%25"]


@dataclass(frozen=True, slots=True)
class Target:
    method: str
    path: str
    body: dict[str, Any] | None
    device: bool


def _targets(instruction_id: str, signal_id: str) -> list[Target]:
    report = {"report_id": "rep-00000001", "instruction_id": instruction_id}
    fill = {
        **report,
        "ticket": 1,
        "price": "1.1",
        "volume": "0.1",
        "executed_at": "2026-01-01T00:00:00Z",
    }
    return [
        Target(
            "POST", "/api/v1/signals", {"symbol": "EURUSD", "side": "buy", "comment": "c"}, False
        ),
        Target(
            "POST",
            "/api/v1/signals",
            {
                "symbol": "EURUSD",
                "side": "sell",
                "order_type": "limit",
                "entry": "1.2",
                "stop_loss": "1.3",
                "take_profit": ["1.1"],
                "expires_in": 60,
                "client_id": "fuzz-00001",
            },
            False,
        ),
        Target("POST", f"/api/v1/signals/{signal_id}/modify", {"stop_loss": "1.0"}, False),
        Target("POST", f"/api/v1/signals/{signal_id}/close", {"fraction": "0.1"}, False),
        Target("GET", f"/api/v1/signals/{signal_id}", None, False),
        Target("POST", "/api/v1/exec/ack", {**report, "ticket": 1, "message": "m"}, True),
        Target("POST", "/api/v1/exec/fill", fill, True),
        Target("POST", "/api/v1/exec/error", {**report, "code": 1, "message": "m"}, True),
        Target("GET", "/api/v1/ea/instructions?wait=0", None, True),
        # Protocol v1.1: the device's state, and a position event.
        Target("POST", "/api/v1/ea/state", state_body(positions=[position(instruction_id)]), True),
        Target(
            "POST",
            "/api/v1/exec/event",
            {**fill, "event": "closed", "reason": "tp", "profit": "1"},
            True,
        ),
        Target("GET", f"/api/v1/exec/status/{signal_id}", None, True),
    ]


def _body(body: dict[str, Any], rng: random.Random) -> bytes:
    """``body`` as JSON with one field (or a new one, or a repeated one) made hostile."""
    items = [(name, json.dumps(value).encode()) for name, value in body.items()]
    value = rng.choice(HOSTILE_VALUES)
    where = rng.randrange(len(items) + 2)
    if where < len(items):
        items[where] = (items[where][0], value)
    elif where == len(items):
        items.append(("extra", value))
    else:
        items.append((items[0][0], value))  # a duplicate key
    return b"{" + b", ".join(json.dumps(k).encode() + b": " + v for k, v in items) + b"}"


def _mutate(target: Target, rng: random.Random, ea: EAClient) -> bytes:
    """One hostile request for ``target``, as the bytes on the wire."""
    path = target.path.encode()
    body = json.dumps(target.body).encode() if target.body is not None else b""
    headers: dict[str, bytes] = {}
    kind = rng.choice(["body", "body", "body", "header", "query", "id", "encoding"])
    if kind == "body" and target.body is not None:
        body = _body(target.body, rng)
    elif kind == "query":
        path = path.split(b"?")[0] + b"?" + rng.choice(HOSTILE_QUERIES)
    elif kind == "id" and path.count(b"/") >= 4:
        parts = path.split(b"/")
        index = 4 if parts[3] == b"signals" else len(parts) - 1
        parts[index] = rng.choice(HOSTILE_IDS)
        path = b"/".join(parts)
    elif kind == "encoding":
        # Not br: without the Brotli package aiohttp's HTTP parser refuses it itself,
        # before the app (a text/plain 400, like any request that is not HTTP).
        headers["Content-Encoding"] = rng.choice([b"gzip", b"deflate", b"x-unknown"])
    if target.device:
        timestamp = int(ea.clock.now.timestamp())
        signed = sign_request(
            ea.device_id,
            ea.secret,
            target.method,
            path.decode("ascii"),
            timestamp,
            new_nonce(),
            body,
        )
        headers.update({name: value.encode() for name, value in signed.items()})
        if kind == "header":
            name = rng.choice(sorted(signed))
            headers[name] = headers[name][:8] + rng.choice(HOSTILE_HEADER_VALUES)
    else:
        headers["Authorization"] = b"Bearer " + PROVIDER_TOKEN.encode()
        if kind == "header":
            headers["Authorization"] = rng.choice(
                [b"Bearer " + PROVIDER_TOKEN.encode() + v for v in HOSTILE_HEADER_VALUES]
                + HOSTILE_HEADER_VALUES
            )
    return http_request(target.method, path, headers, body)


async def test_hostile_requests_never_get_a_5xx(
    container: Container, aiohttp_client: Any, clock: FakeClock
) -> None:
    await add_users(container.sessionmaker, [OWNER], clock.now)
    client: TestClient[Any, Any] = await aiohttp_client(create_app(container))
    _device, ea = await device_ea(container, client, clock, OWNER)
    outcome = await publish(container)
    await approve(container, outcome, OWNER)
    [opened] = (await (await ea.get("/api/v1/ea/instructions")).json())["instructions"]
    targets = _targets(opened["id"], outcome.signal.public_id)

    rng = random.Random(SEED)
    failures: list[str] = []
    started = time.monotonic()
    for _ in range(REQUESTS):
        request = _mutate(rng.choice(targets), rng, ea)
        status, head, body = await exchange(client, request)
        if status >= 500:
            failures.append(f"{status} for {request[:300]!r}")
            continue
        assert b"\r\nx-server-time: " in head.lower(), request[:300]
        if status >= 400:
            error = json.loads(body)
            assert set(error) <= {"error", "message", "fields"}, body
            assert isinstance(error["error"], str) and isinstance(error["message"], str)
    assert failures == [], f"{len(failures)} of {REQUESTS} got a 5xx:\n" + "\n".join(failures[:10])
    assert time.monotonic() - started < 60
