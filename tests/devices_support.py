"""Helpers for device tests: a stored owner and device, a signing EA client, waiting on the hub."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from bot.container import Container
from bot.domain.devices import Credentials, DeviceDTO, DeviceService, Platform
from bot.web.signing import sign_request
from db.models import User
from tests.conftest import FakeClock
from tests.fake_bot_api import Call
from tests.fake_bot_api import buttons as keyboard

OWNER_ID = 700_000_001
OTHER_ID = 700_000_002


async def add_user(container: Container, user_id: int = OWNER_ID) -> None:
    async with container.sessionmaker.begin() as session:
        if await session.get(User, user_id) is None:
            now = container.clock()
            session.add(
                User(
                    id=user_id,
                    first_name="Owner",
                    role="user",
                    created_at=now,
                    last_seen_at=now,
                    is_blocked=False,
                )
            )


async def add_device(
    container: Container,
    owner_id: int = OWNER_ID,
    name: str = "Office",
    platform: Platform = Platform.MT5,
) -> tuple[DeviceDTO, Credentials]:
    await add_user(container, owner_id)
    async with container.sessionmaker.begin() as session:
        return await DeviceService(session, container).create(owner_id, name, platform)


def new_nonce() -> str:
    return secrets.token_urlsafe(18)


class EAClient:
    """Signs requests the way an EA does, with the test's clock for X-Timestamp."""

    def __init__(
        self, client: TestClient[Any, Any], clock: FakeClock, device_id: str, secret: str
    ) -> None:
        self.client = client
        self.clock = clock
        self.device_id = device_id
        self.secret = secret

    def headers(
        self,
        method: str,
        target: str,
        body: bytes = b"",
        *,
        timestamp: int | None = None,
        nonce: str | None = None,
        secret: str | None = None,
    ) -> dict[str, str]:
        return sign_request(
            self.device_id,
            secret or self.secret,
            method,
            target,
            int(self.clock.now.timestamp()) if timestamp is None else timestamp,
            nonce or new_nonce(),
            body,
        )

    async def request(
        self,
        method: str,
        target: str,
        body: bytes = b"",
        *,
        headers: dict[str, str] | None = None,
        **signing: Any,
    ) -> ClientResponse:
        sent = headers if headers is not None else self.headers(method, target, body, **signing)
        return await self.client.request(method, target, data=body, headers=sent)

    async def get(self, target: str, **signing: Any) -> ClientResponse:
        return await self.request("GET", target, **signing)

    async def post_json(self, target: str, payload: Any, **signing: Any) -> ClientResponse:
        return await self.request("POST", target, json.dumps(payload).encode(), **signing)


async def until(condition: Callable[[], bool]) -> None:
    """Yield to the loop until ``condition()`` holds (bounded by the caller's timeout)."""
    while not condition():
        await asyncio.sleep(0.005)


async def error_of(response: ClientResponse) -> tuple[int, str]:
    body = await response.json()
    return response.status, body["error"]


def buttons(call: Call) -> dict[str, str]:
    """The inline keyboard of a recorded call, as button text → callback data."""
    return {b["text"]: b["callback_data"] for b in keyboard(call) if "callback_data" in b}
