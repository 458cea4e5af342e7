"""Request signing (EA_PROTOCOL.md section 2), and the section's two test vectors.

The agent checks the vectors before it sends anything: a build whose HMAC or canonical
string differs from the contract's would only ever be answered ``invalid_signature``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

HEADER_DEVICE_ID = "X-Device-Id"
HEADER_TIMESTAMP = "X-Timestamp"
HEADER_NONCE = "X-Nonce"
HEADER_SIGNATURE = "X-Signature"


def body_sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def canonical_string(method: str, target: str, timestamp: int, nonce: str, body: bytes) -> bytes:
    """METHOD, raw path and query, timestamp, nonce and the body's SHA-256, one per line."""
    return f"{method.upper()}\n{target}\n{timestamp}\n{nonce}\n{body_sha256(body)}".encode()


def signature(secret: str, canonical: bytes) -> str:
    """Lowercase hex HMAC-SHA256; the key is the secret's ASCII bytes, exactly as shown."""
    return hmac.new(secret.encode("ascii"), canonical, hashlib.sha256).hexdigest()


def new_nonce() -> str:
    """24 characters of [A-Za-z0-9_-]: unique per request, retries included."""
    return secrets.token_urlsafe(18)


def signed_headers(
    device_id: str,
    secret: str,
    method: str,
    target: str,
    timestamp: int,
    nonce: str,
    body: bytes,
) -> dict[str, str]:
    canonical = canonical_string(method, target, timestamp, nonce, body)
    return {
        HEADER_DEVICE_ID: device_id,
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: signature(secret, canonical),
    }


@dataclass(frozen=True, slots=True)
class SigningVector:
    method: str
    target: str
    timestamp: int
    nonce: str
    body: bytes
    expected: str


# The contract's published test secret, not a credential.
VECTOR_SECRET = "k3Jd9_vQ2mX8pL5tR7wZ1yB4nC6fH0sA2eG8uI3oK9w"  # noqa: S105
TEST_VECTORS = (
    SigningVector(
        "GET",
        "/api/v1/ea/instructions?wait=20",
        1767225600,
        "n0nce-0001-abcdef",
        b"",
        "711adf5aab004d044f9618b4a8fd990215f5a615d3d3a0d6094ccd8b9c61580e",
    ),
    SigningVector(
        "POST",
        "/api/v1/exec/fill",
        1767225601,
        "n0nce-0002-abcdef",
        b'{"report_id":"r-7f3a9c21","instruction_id":"ins_01","ticket":5012345,'
        b'"price":"1.08512","volume":"0.10"}',
        "f3d1a2543a9f6c61f0564e158c1118752e80fb721dc3e3574e2dab841f00b98f",
    ),
)


class SelfTestFailed(RuntimeError):
    """A test vector of EA_PROTOCOL.md section 2 did not come out as the contract says."""


def self_test() -> None:
    """Compute both test vectors; raise :class:`SelfTestFailed` naming the first that differs."""
    for number, vector in enumerate(TEST_VECTORS, start=1):
        canonical = canonical_string(
            vector.method, vector.target, vector.timestamp, vector.nonce, vector.body
        )
        got = signature(VECTOR_SECRET, canonical)
        if not hmac.compare_digest(got, vector.expected):
            raise SelfTestFailed(
                f"signing test vector {number} gives {got}, the contract says {vector.expected}"
            )
