"""Device authentication for side-server views: ``@signed`` (EA_PROTOCOL.md section 2).

The checks run in the contract's order, on the raw body bytes before any JSON parsing:

1. body over 64 KiB → 413 body_too_large (``Content-Length`` is refused earlier by the
   error middleware; a chunked body is cut off while it is read here);
2. a signing header missing or malformed → 401 missing_credentials;
3. ``|server time - X-Timestamp| > 300 s`` → 401 stale_timestamp;
4. unknown device, revoked device or wrong signature → 401 invalid_signature, one answer
   for all three, with the same HMAC work done for an unknown id;
5. nonce used by this device in the last 600 s → 401 replayed_nonce.

For the owner's health alerts (bot/execution/device_health.py) a stale request is still
looked up and its signature checked, though it is answered stale_timestamp all the same:
a wrong signature naming an existing device counts as a bad signature, a right one as a
stale clock (with how far off it is). Both are counted in memory, never stored per
request; an unknown id counts nothing.

A view decorated with :func:`signed` finds the device in ``request[DEVICE]`` and the
body in ``await request.read()`` (aiohttp keeps it). On the hot path (key cached) this
costs one HMAC, one SHA-256 of the body and no database round trip.
"""

from __future__ import annotations

import functools
import hmac
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.execution.device_keys import DeviceIdentity, DeviceKey
from bot.web.errors import ApiError
from bot.web.keys import CLOCK, DEVICE_ACTIVITY, DEVICE_HEALTH, DEVICE_KEYS, NONCES, SETTINGS
from bot.web.signing import MAX_CLOCK_SKEW_S, BadHeader, canonical_string, parse_headers

DEVICE: web.RequestKey[DeviceIdentity] = web.RequestKey("device", DeviceIdentity)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Verified against when the device id is unknown, so that answer takes as long as a
# wrong signature does.
_DECOY = DeviceKey.of(DeviceIdentity(0, "", 0, 0), secrets.token_urlsafe(32))

INVALID_SIGNATURE_MESSAGE = (
    "The signature does not match, or this device is unknown or revoked. "
    "Check the Device ID and Secret in the EA's inputs."
)


async def authenticate(request: web.Request) -> DeviceIdentity:
    """Run checks 1-5 on ``request``; raise the contract's ApiError at the first failure."""
    body = await request.read() if request.body_exists else b""
    try:
        headers = parse_headers(request.headers)
    except BadHeader as exc:
        raise ApiError(401, "missing_credentials", exc.describe()) from None

    app = request.app
    now = app[CLOCK]()
    server_time = now.timestamp()
    stale = abs(server_time - headers.unix_time) > MAX_CLOCK_SKEW_S
    if stale and not app[SETTINGS].device_health.enabled:
        raise _stale_timestamp(server_time)

    found = await app[DEVICE_KEYS].lookup(headers.device_id)
    canonical = canonical_string(
        request.method, request.raw_path, headers.timestamp, headers.nonce, body
    )
    expected = (found or _DECOY).signature(canonical)
    valid = hmac.compare_digest(expected, headers.signature) and found is not None
    if found is not None and not valid:
        # Counted for the owner's alert (memory only); the answer stays the same for all.
        app[DEVICE_HEALTH].bad_signature(found.device.pk, now)
    if stale:
        if found is not None and valid:
            skew = int(server_time) - headers.unix_time
            app[DEVICE_HEALTH].stale_clock(found.device.pk, now, skew, MAX_CLOCK_SKEW_S)
        raise _stale_timestamp(server_time)
    if found is None or not valid:
        raise ApiError(401, "invalid_signature", INVALID_SIGNATURE_MESSAGE)

    device = found.device
    if not await app[NONCES].remember(device.pk, headers.nonce, server_time):
        raise ApiError(
            401,
            "replayed_nonce",
            "This X-Nonce was already used; send a new random nonce with every request.",
        )
    app[DEVICE_ACTIVITY].seen(device.pk, now)
    return device


def _stale_timestamp(server_time: float) -> ApiError:
    return ApiError(
        401,
        "stale_timestamp",
        f"X-Timestamp is more than {MAX_CLOCK_SKEW_S} s away from the server time "
        f"({int(server_time)}); sign with TimeGMT() and check the computer's clock.",
    )


def signed(handler: Handler) -> Handler:
    """Authenticate the device before ``handler`` runs; errors in the contract's JSON."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        request[DEVICE] = await authenticate(request)
        return await handler(request)

    return wrapper
