"""Updates going to the bot: the getUpdates long poll, and webhook deliveries.

:meth:`UpdateQueue.inject_update` queues an update and wakes a waiting long poll; getUpdates
confirms with ``offset`` and filters by ``allowed_updates`` as Telegram does.
:meth:`UpdateQueue.deliver_webhook` POSTs an update to the bot's own server instead.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from tests.fake_bot_api.calls import Call
from tests.fake_bot_api.failures import FakeApiError

JSONDict = dict[str, Any]

# Update types Telegram leaves out when allowed_updates is not specified (or empty).
_DEFAULT_EXCLUDED_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})


def _as_int(value: Any, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise FakeApiError(400, "Bad Request: wrong parameter value") from None


def _update_type(update: JSONDict) -> str | None:
    return next((key for key in update if key != "update_id"), None)


class UpdateQueue:
    """Injected updates not confirmed yet, served to getUpdates."""

    def __init__(self) -> None:
        self._updates: list[JSONDict] = []
        self._last_update_id = 0
        self._allowed_updates: list[str] | None = None
        self._update_event = asyncio.Event()
        self._polls_end = False

    def inject_update(self, update: dict[str, Any]) -> int:
        """Queue an update for getUpdates and wake a waiting long poll; returns its update_id.

        A missing ``update_id`` is assigned (increasing); the caller's dict is not modified.
        """
        stamped = self._stamp(update)
        self._updates.append(stamped)
        self._updates.sort(key=lambda u: int(u["update_id"]))
        self._wake_polls()
        return int(stamped["update_id"])

    @property
    def pending_updates(self) -> list[JSONDict]:
        """Injected updates not yet confirmed by a getUpdates ``offset``."""
        return list(self._updates)

    def drop_pending_updates(self) -> None:
        """What ``drop_pending_updates`` asks of Telegram: forget every queued update."""
        self._updates.clear()

    def end_polls(self, ended: bool = True) -> None:
        """While ended, long polls answer at once (with what is queued, often ``[]``)."""
        self._polls_end = ended
        self._wake_polls()

    async def get_updates(self, call: Call) -> list[JSONDict]:
        """Answer getUpdates: confirm up to ``offset``, then wait up to ``timeout`` seconds."""
        params = call.params
        offset = _as_int(params.get("offset"), 0)
        limit = min(max(_as_int(params.get("limit"), 100), 1), 100)
        try:
            timeout = max(float(params.get("timeout") or 0), 0.0)
        except (TypeError, ValueError):
            raise FakeApiError(400, "Bad Request: wrong parameter value") from None
        if "allowed_updates" in params:
            allowed = params["allowed_updates"]
            self._allowed_updates = [str(a) for a in allowed] if isinstance(allowed, list) else None
        if offset > 0:
            self._updates = [u for u in self._updates if int(u["update_id"]) >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            ready = self._deliverable()
            if ready or self._polls_end:
                return ready[:limit]
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            event = self._update_event
            try:
                async with asyncio.timeout(remaining):
                    await event.wait()
            except TimeoutError:
                pass

    async def deliver_webhook(
        self,
        url: str,
        update: dict[str, Any],
        *,
        secret_token: str | None = None,
        timeout: float = 10.0,
    ) -> tuple[int, str]:
        """POST ``update`` (``update_id`` added when missing) as JSON to ``url`` like Telegram
        does, with ``X-Telegram-Bot-Api-Secret-Token`` when ``secret_token`` is given.
        Returns (HTTP status, body text)."""
        headers: dict[str, str] = {"Content-Type": "application/json"}
        if secret_token is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret_token
        client_timeout = aiohttp.ClientTimeout(total=timeout)
        body = json.dumps(self._stamp(update))
        async with (
            aiohttp.ClientSession(timeout=client_timeout) as session,
            session.post(url, data=body, headers=headers) as response,
        ):
            return response.status, await response.text()

    def _stamp(self, update: dict[str, Any]) -> JSONDict:
        stamped = dict(update)
        if "update_id" in stamped:
            self._last_update_id = max(self._last_update_id, int(stamped["update_id"]))
        else:
            self._last_update_id += 1
            stamped["update_id"] = self._last_update_id
        return stamped

    def _wake_polls(self) -> None:
        event, self._update_event = self._update_event, asyncio.Event()
        event.set()

    def _deliverable(self) -> list[JSONDict]:
        """Queued updates of the allowed types; the others are dropped, as Telegram does."""
        allowed = self._allowed_updates

        def wanted(update: JSONDict) -> bool:
            kind = _update_type(update)
            return kind in allowed if allowed else kind not in _DEFAULT_EXCLUDED_UPDATES

        self._updates = [update for update in self._updates if wanted(update)]
        return list(self._updates)
