"""Signed device requests (EA_PROTOCOL.md sections 1-2) through the real side server."""

from __future__ import annotations

import base64
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import event, select, text
from sqlalchemy.engine import make_url

from bot.container import Container
from bot.domain.devices import DeviceService
from bot.execution.device_keys import DEVICE_ID_RE, derive_secret
from bot.web.signing import canonical_string, sign_request, signature
from db.base import Base
from db.models import Device
from tests.conftest import FakeClock
from tests.devices_support import OWNER_ID, EAClient, add_device, error_of, new_nonce
from webhook_server import create_app

VECTOR_SECRET = "k3Jd9_vQ2mX8pL5tR7wZ1yB4nC6fH0sA2eG8uI3oK9w"
VECTOR_FILL_BODY = (
    b'{"report_id":"r-7f3a9c21","instruction_id":"ins_01","ticket":5012345,'
    b'"price":"1.08512","volume":"0.10"}'
)
POLL = "/api/v1/ea/instructions?wait=0"


@pytest.fixture
async def server(container: Container, aiohttp_client: Any) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(container))


@pytest.fixture
async def ea(server: TestClient[Any, Any], container: Container, clock: FakeClock) -> EAClient:
    _device, credentials = await add_device(container)
    return EAClient(server, clock, credentials.device_id, credentials.secret)


# --- section 1: credentials ---


def test_secret_derivation_shape() -> None:
    secret = derive_secret(b"m" * 43, "dev_" + "a" * 24, 1)
    assert len(secret) == 43 and set(secret) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
    )
    assert derive_secret(b"m" * 43, "dev_" + "a" * 24, 2) != secret
    assert derive_secret(b"n" * 43, "dev_" + "a" * 24, 1) != secret
    assert derive_secret(b"m" * 43, "dev_" + "b" * 24, 1) != secret


async def test_new_device_credentials_follow_the_contract(container: Container) -> None:
    device, credentials = await add_device(container)
    assert DEVICE_ID_RE.match(credentials.device_id)
    assert credentials.device_id == device.public_id
    assert 32 <= len(credentials.secret) <= 64
    assert len(base64.urlsafe_b64decode(credentials.secret + "=")) == 32


# --- section 2: the test vectors, on the pure functions and through the server ---


def test_vectors_pure() -> None:
    get = sign_request(
        "dev_x",
        VECTOR_SECRET,
        "GET",
        "/api/v1/ea/instructions?wait=20",
        1767225600,
        "n0nce-0001-abcdef",
    )
    assert get["X-Signature"] == "711adf5aab004d044f9618b4a8fd990215f5a615d3d3a0d6094ccd8b9c61580e"
    canonical = canonical_string(
        "POST", "/api/v1/exec/fill", "1767225601", "n0nce-0002-abcdef", VECTOR_FILL_BODY
    )
    assert canonical.endswith(b"32f873fa79f963954b3b42867bb267807a6e5307bbe6ba98f05a951f7f6ec1c2")
    assert (
        signature(VECTOR_SECRET.encode(), canonical)
        == "f3d1a2543a9f6c61f0564e158c1118752e80fb721dc3e3574e2dab841f00b98f"
    )


async def test_vectors_accepted_by_the_server(
    server: TestClient[Any, Any],
    container: Container,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The server's canonical string is the contract's: the vectors' exact headers pass."""
    _device, credentials = await add_device(container)
    monkeypatch.setattr(container.device_keys, "secret", lambda _id, _version: VECTOR_SECRET)
    instruction = {"id": "ins_01", "signal_id": "sig_1", "action": "cancel", "symbol": "EURUSD"}

    async def one_pending(_session: Any, _device: Any, _now: Any) -> list[dict[str, Any]]:
        return [instruction]

    monkeypatch.setattr("bot.web.ea.pending_instructions", one_pending)
    clock.now = datetime.fromtimestamp(1767225600, UTC)
    headers = {
        "X-Device-Id": credentials.device_id,
        "X-Timestamp": "1767225600",
        "X-Nonce": "n0nce-0001-abcdef",
        "X-Signature": "711adf5aab004d044f9618b4a8fd990215f5a615d3d3a0d6094ccd8b9c61580e",
    }
    response = await server.get("/api/v1/ea/instructions?wait=20", headers=headers)
    assert response.status == 200
    assert await response.json() == {"instructions": [instruction], "server_time": 1767225600}

    headers = {
        "X-Device-Id": credentials.device_id,
        "X-Timestamp": "1767225601",
        "X-Nonce": "n0nce-0002-abcdef",
        "X-Signature": "f3d1a2543a9f6c61f0564e158c1118752e80fb721dc3e3574e2dab841f00b98f",
    }
    response = await server.post("/api/v1/exec/fill", data=VECTOR_FILL_BODY, headers=headers)
    # Signature accepted; check 6 (the endpoint's own) answers: no such instruction yet.
    assert await error_of(response) == (404, "unknown_instruction")


# --- section 2: every check, in order ---


async def test_valid_request_passes(ea: EAClient) -> None:
    response = await ea.get(POLL)
    assert response.status == 200
    body = await response.json()
    assert body == {"instructions": [], "server_time": int(ea.clock.now.timestamp())}
    assert "X-Server-Time" in response.headers


async def test_body_too_large_comes_first(ea: EAClient) -> None:
    big = b"x" * (64 * 1024 + 1)
    # No signing headers at all: the size check still answers first.
    response = await ea.request("POST", "/api/v1/exec/ack", big, headers={})
    assert await error_of(response) == (413, "body_too_large")
    response = await ea.request("POST", "/api/v1/exec/ack", big)
    assert await error_of(response) == (413, "body_too_large")

    async def chunks() -> Any:
        for _ in range(70):
            yield b"y" * 1024

    response = await ea.client.post(
        "/api/v1/exec/ack", data=chunks(), headers=ea.headers("POST", "/api/v1/exec/ack")
    )
    assert await error_of(response) == (413, "body_too_large")


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("X-Device-Id", None),
        ("X-Device-Id", "dev_short"),
        ("X-Device-Id", "device_" + "a" * 20),
        ("X-Device-Id", "dev_" + "a" * 33),
        ("X-Timestamp", None),
        ("X-Timestamp", "yesterday"),
        ("X-Timestamp", "-1767225600"),
        ("X-Timestamp", "1767225600.5"),
        ("X-Nonce", None),
        ("X-Nonce", "short"),
        ("X-Nonce", "has spaces in the nonce!"),
        ("X-Nonce", "n" * 65),
        ("X-Signature", None),
        ("X-Signature", "A" * 64),
        ("X-Signature", "ab" * 31),
    ],
)
async def test_missing_or_malformed_header(ea: EAClient, header: str, value: str | None) -> None:
    headers = ea.headers("GET", POLL)
    if value is None:
        del headers[header]
    else:
        headers[header] = value
    response = await ea.get(POLL, headers=headers)
    assert await error_of(response) == (401, "missing_credentials")
    assert header in (await response.json())["message"]


async def test_missing_header_comes_before_stale_timestamp(ea: EAClient) -> None:
    headers = ea.headers("GET", POLL, timestamp=1)
    del headers["X-Nonce"]
    assert await error_of(await ea.get(POLL, headers=headers)) == (401, "missing_credentials")


@pytest.mark.parametrize(
    ("offset", "accepted"), [(-300, True), (300, True), (-301, False), (301, False)]
)
async def test_clock_skew(ea: EAClient, offset: int, accepted: bool) -> None:
    now = int(ea.clock.now.timestamp())
    response = await ea.get(POLL, timestamp=now + offset)
    if accepted:
        assert response.status == 200
    else:
        assert await error_of(response) == (401, "stale_timestamp")


async def test_stale_timestamp_comes_before_signature_and_device(ea: EAClient) -> None:
    stale = int(ea.clock.now.timestamp()) - 3600
    response = await ea.get(POLL, timestamp=stale, secret="wrong-" + "s" * 40)
    assert await error_of(response) == (401, "stale_timestamp")
    stranger = EAClient(ea.client, ea.clock, "dev_" + "Z" * 24, "s" * 43)
    assert await error_of(await stranger.get(POLL, timestamp=stale)) == (401, "stale_timestamp")


@pytest.mark.parametrize("tamper", ["secret", "body", "target", "method", "nonce", "timestamp"])
async def test_wrong_signature(ea: EAClient, tamper: str) -> None:
    target, body = "/api/v1/exec/ack", b'{"report_id": "r-00000001"}'
    headers = ea.headers("POST", target, body)
    if tamper == "secret":
        headers = ea.headers("POST", target, body, secret=ea.secret[:-1] + "x")
    elif tamper == "body":
        body = b'{"report_id": "r-00000002"}'
    elif tamper == "target":
        target = "/api/v1/exec/fill"
    elif tamper == "method":
        headers = ea.headers("PUT", target, body)
    elif tamper == "nonce":
        headers["X-Nonce"] = new_nonce()
    else:
        headers["X-Timestamp"] = str(int(headers["X-Timestamp"]) - 1)
    response = await ea.request("POST", target, body, headers=headers)
    assert await error_of(response) == (401, "invalid_signature")


async def test_signature_covers_the_query(ea: EAClient) -> None:
    headers = ea.headers("GET", "/api/v1/ea/instructions?wait=0")
    response = await ea.request("GET", "/api/v1/ea/instructions?wait=1", headers=headers)
    assert await error_of(response) == (401, "invalid_signature")


async def test_unknown_device_is_answered_exactly_like_a_bad_signature(ea: EAClient) -> None:
    bad = await ea.get(POLL, secret="not-the-secret-" + "x" * 30)
    stranger = EAClient(ea.client, ea.clock, "dev_" + "Q" * 24, ea.secret)
    unknown = await stranger.get(POLL)
    assert bad.status == unknown.status == 401
    assert await bad.read() == await unknown.read()
    assert (await bad.json())["error"] == "invalid_signature"
    skip = {"X-Server-Time", "Date"}
    assert {k: v for k, v in bad.headers.items() if k not in skip} == {
        k: v for k, v in unknown.headers.items() if k not in skip
    }


async def test_bad_signature_comes_before_replayed_nonce(ea: EAClient) -> None:
    nonce = new_nonce()
    assert (await ea.get(POLL, nonce=nonce)).status == 200
    response = await ea.get(POLL, nonce=nonce, secret="x" * 43)
    assert await error_of(response) == (401, "invalid_signature")


async def test_a_bad_signature_does_not_use_up_the_nonce(ea: EAClient) -> None:
    """Only signed requests reach the nonce store: nobody without the secret can burn the
    nonces a device is about to send."""
    nonce = new_nonce()
    response = await ea.get(POLL, nonce=nonce, secret="x" * 43)
    assert await error_of(response) == (401, "invalid_signature")
    assert (await ea.get(POLL, nonce=nonce)).status == 200


async def test_replay_within_and_after_600_s(ea: EAClient) -> None:
    nonce = new_nonce()
    headers = ea.headers("GET", POLL, nonce=nonce)
    assert (await ea.get(POLL, headers=headers)).status == 200
    # The very same request again.
    assert await error_of(await ea.get(POLL, headers=headers)) == (401, "replayed_nonce")
    # Re-signed later with the same nonce, still within 600 s.
    ea.clock.advance(seconds=599)
    assert await error_of(await ea.get(POLL, nonce=nonce)) == (401, "replayed_nonce")
    ea.clock.advance(seconds=2)
    assert (await ea.get(POLL, nonce=nonce)).status == 200
    # Accepted again, so remembered again from now on.
    assert await error_of(await ea.get(POLL, nonce=nonce)) == (401, "replayed_nonce")


async def test_same_nonce_on_two_devices(ea: EAClient, container: Container) -> None:
    _device, credentials = await add_device(container, name="Laptop")
    other = EAClient(ea.client, ea.clock, credentials.device_id, credentials.secret)
    nonce = new_nonce()
    assert (await ea.get(POLL, nonce=nonce)).status == 200
    assert (await other.get(POLL, nonce=nonce)).status == 200


async def test_rotated_key_old_refused_new_accepted(ea: EAClient, container: Container) -> None:
    assert (await ea.get(POLL)).status == 200  # the old key is cached now
    async with container.sessionmaker.begin() as session:
        device_pk = (
            await session.scalars(select(Device.id).where(Device.public_id == ea.device_id))
        ).one()
        _dto, fresh = await DeviceService(session, container).rotate_key(
            OWNER_ID, device_pk, seen_version=1
        )
    assert fresh.device_id == ea.device_id and fresh.secret != ea.secret
    assert await error_of(await ea.get(POLL)) == (401, "invalid_signature")
    assert (await ea.get(POLL, secret=fresh.secret)).status == 200


async def test_rotation_rolled_back_keeps_the_old_key(ea: EAClient, container: Container) -> None:
    assert (await ea.get(POLL)).status == 200
    with pytest.raises(RuntimeError):
        async with container.sessionmaker.begin() as session:
            device_pk = (
                await session.scalars(select(Device.id).where(Device.public_id == ea.device_id))
            ).one()
            await DeviceService(session, container).rotate_key(OWNER_ID, device_pk, seen_version=1)
            raise RuntimeError("the update failed after the rotation")
    assert (await ea.get(POLL)).status == 200


async def test_revoked_device(ea: EAClient, container: Container) -> None:
    assert (await ea.get(POLL)).status == 200
    async with container.sessionmaker.begin() as session:
        device_pk = (
            await session.scalars(select(Device.id).where(Device.public_id == ea.device_id))
        ).one()
        await DeviceService(session, container).revoke(OWNER_ID, device_pk)
    response = await ea.get(POLL)
    assert await error_of(response) == (401, "invalid_signature")
    ea.clock.advance(seconds=3600)
    assert await error_of(await ea.get(POLL)) == (401, "invalid_signature")


async def test_errors_never_leak_the_secret(ea: EAClient) -> None:
    for response in (
        await ea.get(POLL, secret="y" * 43),
        await ea.get(POLL, timestamp=1),
        await ea.request("POST", "/api/v1/exec/ack", b"{not json"),
    ):
        assert ea.secret not in await response.text()


# --- secrets at rest, last seen, the hot path ---


async def _database_bytes(container: Container, tmp_path: Path) -> bytes:
    url = make_url(container.settings.database.url)
    if url.get_backend_name() == "sqlite":
        await container.engine.dispose()  # checkpoints the WAL into the file
        copy = tmp_path / "copy.sqlite3"
        shutil.copyfile(str(url.database), copy)
        data = copy.read_bytes()
        wal = Path(f"{url.database}-wal")
        return data + (wal.read_bytes() if wal.exists() else b"")
    dump: list[str] = []
    async with container.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            rows = await connection.execute(text(f'SELECT * FROM "{table.name}"'))
            dump.extend(repr(tuple(row)) for row in rows)
    return "\n".join(dump).encode()


async def test_database_copy_holds_no_secret(
    ea: EAClient, container: Container, tmp_path: Path
) -> None:
    issued = [ea.secret]
    _device, second = await add_device(container, name="Laptop")
    issued.append(second.secret)
    async with container.sessionmaker.begin() as session:
        device_pk = (
            await session.scalars(select(Device.id).where(Device.public_id == ea.device_id))
        ).one()
        _dto, rotated = await DeviceService(session, container).rotate_key(
            OWNER_ID, device_pk, seen_version=1
        )
    issued.append(rotated.secret)
    assert (await ea.get(POLL, secret=rotated.secret)).status == 200
    await container.device_activity.flush()

    data = await _database_bytes(container, tmp_path)
    assert ea.device_id.encode() in data  # the copy is real: public ids are there
    for secret in issued:
        assert secret.encode() not in data
        assert base64.urlsafe_b64decode(secret + "=") not in data


async def test_last_seen_written_at_most_once_per_flush(
    ea: EAClient, container: Container, clock: FakeClock
) -> None:
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    assert (await ea.get(POLL)).status == 200  # key cached, device marked idle
    event.listen(container.engine.sync_engine, "before_cursor_execute", record)
    try:
        for _ in range(20):
            clock.advance(seconds=0.1)
            assert (await ea.get(POLL)).status == 200
        # The hot path: cached key, idle device, last-seen in memory: no SQL at all.
        assert statements == []
        assert await container.device_activity.flush() == 1
        assert await container.device_activity.flush() == 0
    finally:
        event.remove(container.engine.sync_engine, "before_cursor_execute", record)
    updates = [s for s in statements if s.lstrip().upper().startswith("UPDATE DEVICES")]
    assert len(updates) == 1
    async with container.sessionmaker() as session:
        seen = (
            await session.scalars(
                select(Device.last_seen_at).where(Device.public_id == ea.device_id)
            )
        ).one()
    assert seen == clock.now


async def test_failed_requests_do_not_count_as_seen(ea: EAClient, container: Container) -> None:
    await ea.get(POLL, secret="z" * 43)
    await ea.get(POLL, timestamp=1)
    assert await container.device_activity.flush() == 0
    async with container.sessionmaker() as session:
        seen = (
            await session.scalars(
                select(Device.last_seen_at).where(Device.public_id == ea.device_id)
            )
        ).one()
    assert seen is None


async def test_pending_flush_written_at_shutdown(
    container: Container, aiohttp_client: Any, clock: FakeClock
) -> None:
    server = await aiohttp_client(create_app(container))
    _device, credentials = await add_device(container)
    ea = EAClient(server, clock, credentials.device_id, credentials.secret)
    assert (await ea.get(POLL)).status == 200
    await server.close()
    async with container.sessionmaker() as session:
        seen = (
            await session.scalars(
                select(Device.last_seen_at).where(Device.public_id == credentials.device_id)
            )
        ).one()
    assert seen == clock.now
