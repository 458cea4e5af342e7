"""Signed HTTP requests to the side server (EA_PROTOCOL.md sections 2-3).

Every response, success or error, moves the :class:`ServerClock`; a ``stale_timestamp``
or ``replayed_nonce`` answer is re-signed and sent once more at once (with the corrected
clock, and a new nonce as always). Other errors reach the caller as :class:`ApiError`;
a network failure or a timeout as :class:`Unreachable`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from signalbridge_agent.clock import ServerClock
from signalbridge_agent.signing import new_nonce, signed_headers

logger = logging.getLogger(__name__)

# How long past the server's own wait a long poll may take before it counts as lost.
POLL_GRACE_S = 15.0
REQUEST_TIMEOUT_S = 20.0
_RESIGN = {"stale_timestamp", "replayed_nonce"}
# Answers after which nothing can work until the owner changes the credentials.
REFUSED = frozenset({"invalid_signature", "missing_credentials"})


@dataclass(frozen=True, slots=True)
class Credentials:
    server_url: str
    device_id: str
    secret: str

    def __repr__(self) -> str:  # never the secret, wherever it is printed
        return f"Credentials(server_url={self.server_url!r}, device_id={self.device_id!r})"

    __str__ = __repr__


class ApiError(Exception):
    """The server answered with an error of the contract (``{"error", "message"}``)."""

    def __init__(self, status: int, code: str, message: str, fields: dict[str, str]) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields

    @property
    def retryable(self) -> bool:
        """Worth sending again later: the server or the path to it failed."""
        return self.status >= 500 or self.status == 429 or self.code in _RESIGN


class Unreachable(Exception):
    """No answer: the network failed, or the request timed out."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: Any


class DeviceClient:
    def __init__(
        self,
        credentials: Credentials,
        clock: ServerClock,
        *,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.credentials = credentials
        self.clock = clock
        self._session = session
        self._own_session = session is None
        base = urlsplit(credentials.server_url)
        self._origin = f"{base.scheme}://{base.netloc}"
        self._prefix = base.path.rstrip("/")

    async def __aenter__(self) -> DeviceClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
        self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
            self._own_session = True
        return self._session

    async def poll(self, wait: int) -> list[Any]:
        """``GET /api/v1/ea/instructions?wait=N``: the instructions pending now."""
        answer = await self.request(
            "GET", f"/api/v1/ea/instructions?wait={wait}", limit=wait + POLL_GRACE_S
        )
        instructions = answer.body.get("instructions") if isinstance(answer.body, dict) else None
        if not isinstance(instructions, list):
            raise ApiError(answer.status, "bad_answer", "the answer has no instruction list", {})
        return instructions

    async def report(self, kind: str, body: bytes) -> Answer:
        """``POST /api/v1/exec/<kind>`` with exactly these bytes (a resend is byte-equal)."""
        return await self.request("POST", f"/api/v1/exec/{kind}", body)

    async def request(
        self, method: str, path: str, body: bytes = b"", *, limit: float = REQUEST_TIMEOUT_S
    ) -> Answer:
        """One signed request; ``limit`` seconds at most for the whole exchange."""
        try:
            return await self._send(method, path, body, limit)
        except ApiError as exc:
            if exc.code not in _RESIGN:
                raise
            logger.info("server answered %s; signing again", exc.code)
            return await self._send(method, path, body, limit)

    async def _send(self, method: str, path: str, body: bytes, limit: float) -> Answer:
        target = self._prefix + path
        headers = signed_headers(
            self.credentials.device_id,
            self.credentials.secret,
            method,
            target,
            self.clock.unix(),
            new_nonce(),
            body,
        )
        if body:
            headers["Content-Type"] = "application/json"
        try:
            async with self._http().request(
                method,
                URL(self._origin + target, encoded=True),
                data=body or None,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=limit),
            ) as response:
                self.clock.observe(response.headers.get("X-Server-Time"))
                raw = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise Unreachable(f"{type(exc).__name__}: {exc}") from exc
        try:
            decoded: Any = json.loads(raw) if raw else None
        except ValueError:
            decoded = None
        if status >= 400:
            error = decoded if isinstance(decoded, dict) else {}
            raise ApiError(
                status,
                str(error.get("error") or f"http_{status}"),
                str(error.get("message") or raw[:200].decode("utf-8", "replace")),
                dict(error.get("fields") or {}),
            )
        return Answer(status, decoded)
