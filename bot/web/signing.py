"""Request signing of EA_PROTOCOL.md section 2, as pure functions on raw bytes.

No aiohttp here: the EA side (tests, benchmarks, a reference client) signs with the same
code the server verifies with.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass

from bot.execution.device_keys import DEVICE_ID_RE

MAX_CLOCK_SKEW_S = 300

HEADER_DEVICE_ID = "X-Device-Id"
HEADER_TIMESTAMP = "X-Timestamp"
HEADER_NONCE = "X-Nonce"
HEADER_SIGNATURE = "X-Signature"

_TIMESTAMP_RE = re.compile(r"^[0-9]{1,12}$")
_NONCE_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_SIGNATURE_RE = re.compile(r"^[0-9a-f]{64}$")
_EMPTY_BODY_SHA256 = hashlib.sha256(b"").hexdigest()

# What each header must look like, for the 401 missing_credentials message.
HEADER_FORMATS = {
    HEADER_DEVICE_ID: "dev_ followed by 16-32 letters and digits",
    HEADER_TIMESTAMP: "Unix time in whole seconds (UTC)",
    HEADER_NONCE: "16-64 characters of [A-Za-z0-9_-]",
    HEADER_SIGNATURE: "64 lowercase hex characters",
}


@dataclass(frozen=True, slots=True)
class SignedHeaders:
    device_id: str
    timestamp: str
    nonce: str
    signature: str

    @property
    def unix_time(self) -> int:
        return int(self.timestamp)


class BadHeader(Exception):
    """A signing header is missing or malformed; ``header`` names it."""

    def __init__(self, header: str, *, missing: bool) -> None:
        super().__init__(header)
        self.header = header
        self.missing = missing

    def describe(self) -> str:
        state = "missing" if self.missing else "malformed"
        return f"{self.header} is {state}: it must be {HEADER_FORMATS[self.header]}."


def parse_headers(headers: Mapping[str, str]) -> SignedHeaders:
    """The four signing headers, checked for shape only; raises :class:`BadHeader`."""
    values = []
    for name, pattern in (
        (HEADER_DEVICE_ID, DEVICE_ID_RE),
        (HEADER_TIMESTAMP, _TIMESTAMP_RE),
        (HEADER_NONCE, _NONCE_RE),
        (HEADER_SIGNATURE, _SIGNATURE_RE),
    ):
        value = headers.get(name)
        if value is None:
            raise BadHeader(name, missing=True)
        if not pattern.fullmatch(value):
            raise BadHeader(name, missing=False)
        values.append(value)
    return SignedHeaders(*values)


def canonical_string(method: str, target: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """METHOD, request target, timestamp, nonce and body SHA-256, joined by newlines.

    The target's bytes are those sent: aiohttp decodes bytes that are not UTF-8 with
    ``surrogateescape``, which encodes them back (a plain ``encode()`` would raise).
    """
    body_hash = hashlib.sha256(body).hexdigest() if body else _EMPTY_BODY_SHA256
    canonical = f"{method.upper()}\n{target}\n{timestamp}\n{nonce}\n{body_hash}"
    return canonical.encode("utf-8", "surrogateescape")


def signature(key: bytes, canonical: bytes) -> str:
    """Lowercase hex HMAC-SHA256; ``key`` is the secret's ASCII bytes."""
    return hmac.new(key, canonical, hashlib.sha256).hexdigest()


def sign_request(
    device_id: str,
    secret: str,
    method: str,
    target: str,
    timestamp: int | str,
    nonce: str,
    body: bytes = b"",
) -> dict[str, str]:
    """The four signing headers for a request (client side: tests, benchmarks, tools)."""
    canonical = canonical_string(method, target, str(timestamp), nonce, body)
    return {
        HEADER_DEVICE_ID: device_id,
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: signature(secret.encode("ascii"), canonical),
    }
