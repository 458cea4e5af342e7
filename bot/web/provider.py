"""The provider API (EA_PROTOCOL.md section 4): signals in from scripts and TradingView.

Auth: ``Authorization: Bearer <PROVIDER_TOKEN>`` or, for senders that cannot set headers,
``"passphrase": "<PROVIDER_TOKEN>"`` in the JSON body; compared in constant time. When a
header is sent it decides; otherwise the passphrase does. The body is read as JSON
whatever its Content-Type (TradingView posts ``text/plain``), numbers as ``Decimal``.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.signal_dto import SignalCounts, SignalDTO
from bot.domain.signal_rules import (
    SignalValidationError,
    decimal_or_none,
    format_decimal,
    validate_new_signal,
    wire_time,
)
from bot.domain.signals import (
    SignalClosedError,
    SignalNotFoundError,
    SignalService,
    count_signal,
)
from bot.execution.reports import RECORD_ID_RE
from bot.web.errors import ApiError
from bot.web.json_body import JsonBody, NotJson, parse_json
from bot.web.keys import SESSIONMAKER, SETTINGS, SIGNALS

logger = logging.getLogger(__name__)

PREFIX = "/api/v1/signals"


def parse_json_body(raw: bytes) -> JsonBody:
    """A JSON object (an empty body counts as ``{}``) with its field problems; NotJson for
    anything else. Numbers are Decimal or bounded int (see bot.web.json_body)."""
    if not raw.strip():
        return JsonBody({})
    parsed = parse_json(raw)
    if not isinstance(parsed.value, dict):
        raise NotJson("it is not an object")
    return parsed


def _token_matches(candidate: str, expected: bytes) -> bool:
    # surrogatepass: a header's undecodable bytes (surrogateescape) and a JSON "\ud800"
    # both encode, to bytes that can never equal a UTF-8 token.
    return hmac.compare_digest(candidate.encode("utf-8", "surrogatepass"), expected)


async def authenticate(request: web.Request) -> dict[str, Any]:
    """The request's JSON body (without ``passphrase``) once the caller is authenticated.

    401 ``unauthorized`` for a missing or wrong token, before anything else is judged;
    400 ``invalid_json`` for an authenticated body that is not a JSON object; 422
    ``invalid_request`` for one whose values no field can take (lone surrogates, NUL,
    a key given twice).
    """
    settings = request.app[SETTINGS]
    token = settings.provider_token
    expected = token.get_secret_value().encode("utf-8") if token is not None else b""
    raw = await request.read()
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, value = header.strip().partition(" ")
        if (
            not expected
            or scheme.lower() != "bearer"
            or not _token_matches(value.strip(), expected)
        ):
            raise _unauthorized()
        try:
            body = parse_json_body(raw)
        except NotJson as exc:
            raise ApiError(
                400, "invalid_json", f"The body must be a JSON object: {exc.reason}."
            ) from None
    else:
        try:
            body = parse_json_body(raw)
        except NotJson:
            raise _unauthorized() from None
        passphrase = body.value.get("passphrase")
        if (
            not expected
            or "passphrase" in body.problems
            or not isinstance(passphrase, str)
            or not _token_matches(passphrase, expected)
        ):
            raise _unauthorized()
    data: dict[str, Any] = body.value
    data.pop("passphrase", None)
    problems = {name: problem for name, problem in body.problems.items() if name != "passphrase"}
    if problems:
        raise ApiError(422, "invalid_request", "Some fields are missing or wrong.", fields=problems)
    return data


def _unauthorized() -> ApiError:
    return ApiError(
        401,
        "unauthorized",
        "Send the provider token as 'Authorization: Bearer <token>' or as \"passphrase\".",
    )


def iso_utc(moment: datetime | None) -> str | None:
    return None if moment is None else wire_time(moment)


_price = decimal_or_none


def signal_json(signal: SignalDTO, counts: SignalCounts) -> dict[str, Any]:
    return {
        "id": signal.public_id,
        "symbol": signal.symbol,
        "side": signal.side,
        "order_type": signal.order_type,
        "entry": _price(signal.entry),
        "stop_loss": _price(signal.stop_loss),
        "take_profit": [format_decimal(price) for price in signal.take_profit],
        "comment": signal.comment,
        "client_id": signal.client_id,
        "state": signal.state,
        "closed_fraction": format_decimal(signal.closed_fraction),
        "issued_at": iso_utc(signal.issued_at),
        "expires_at": iso_utc(signal.expires_at),
        "modified_at": iso_utc(signal.modified_at),
        "ended_at": iso_utc(signal.ended_at),
        "recipients": counts.recipients,
        "counts": {
            "approvals": counts.approvals,
            "rejections": counts.rejections,
            "pending": counts.pending,
            "expired": counts.expired,
            "fills": counts.fills,
            "errors": counts.errors,
        },
    }


def _invalid(exc: SignalValidationError) -> ApiError:
    return ApiError(422, "invalid_request", "Some fields are missing or wrong.", fields=exc.fields)


async def create_signal(request: web.Request) -> web.Response:
    data = await authenticate(request)
    app = request.app
    try:
        draft = validate_new_signal(data, app[SETTINGS].signals)
    except SignalValidationError as exc:
        raise _invalid(exc) from None
    outcome = await app[SIGNALS].submit(app[SESSIONMAKER], draft, source="provider")
    body = {"id": outcome.signal.public_id, "recipients": outcome.recipients}
    return web.json_response(body, status=201 if outcome.created else 200)


Change = Callable[[SignalService, AsyncSession, dict[str, Any], str], Awaitable[SignalDTO]]


async def _change(request: web.Request, change: Change) -> web.Response:
    data = await authenticate(request)
    public_id = _signal_id(request)
    try:
        async with request.app[SESSIONMAKER].begin() as session:
            signal = await change(request.app[SIGNALS], session, data, public_id)
            counts = await count_signal(session, signal.id)
    except SignalNotFoundError:
        raise _unknown_signal() from None
    except SignalClosedError as exc:
        raise ApiError(
            409, "signal_closed", f"The signal is {exc.state}; it cannot be changed."
        ) from None
    except SignalValidationError as exc:
        raise _invalid(exc) from None
    return web.json_response(signal_json(signal, counts))


def _unknown_signal() -> ApiError:
    return ApiError(404, "unknown_signal", "There is no signal with this id.")


def _signal_id(request: web.Request) -> str:
    """The path's signal id; one this server never hands out is unknown without a query
    (PostgreSQL would refuse a NUL in it)."""
    public_id = request.match_info["signal_id"]
    if not RECORD_ID_RE.fullmatch(public_id):
        raise _unknown_signal()
    return public_id


async def _modify(
    signals: SignalService, session: AsyncSession, data: dict[str, Any], public_id: str
) -> SignalDTO:
    return await signals.modify(session, data, public_id=public_id)


async def _close(
    signals: SignalService, session: AsyncSession, data: dict[str, Any], public_id: str
) -> SignalDTO:
    signal, _fraction = await signals.close(session, data, public_id=public_id)
    return signal


async def _cancel(
    signals: SignalService, session: AsyncSession, data: dict[str, Any], public_id: str
) -> SignalDTO:
    if data:
        raise SignalValidationError(dict.fromkeys(data, "unknown field"))
    return await signals.cancel(session, public_id=public_id)


async def modify_signal(request: web.Request) -> web.Response:
    return await _change(request, _modify)


async def close_signal(request: web.Request) -> web.Response:
    return await _change(request, _close)


async def cancel_signal(request: web.Request) -> web.Response:
    return await _change(request, _cancel)


async def get_signal(request: web.Request) -> web.Response:
    await authenticate(request)
    try:
        async with request.app[SESSIONMAKER].begin() as session:
            signal = await request.app[SIGNALS].get(session, _signal_id(request))
            counts = await count_signal(session, signal.id)
    except SignalNotFoundError:
        raise _unknown_signal() from None
    return web.json_response(signal_json(signal, counts))


def setup(app: web.Application) -> None:
    app.router.add_post(PREFIX, create_signal)
    app.router.add_get(PREFIX + "/{signal_id}", get_signal, allow_head=False)
    app.router.add_post(PREFIX + "/{signal_id}/modify", modify_signal)
    app.router.add_post(PREFIX + "/{signal_id}/close", close_signal)
    app.router.add_post(PREFIX + "/{signal_id}/cancel", cancel_signal)
