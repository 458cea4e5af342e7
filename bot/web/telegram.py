"""POST webhook.path: Telegram's deliveries, authenticated by the secret token header."""

from __future__ import annotations

import hmac
import logging

from aiohttp import web

from bot.intake.webhook import InvalidUpdate, Receipt
from bot.web.errors import ApiError
from bot.web.keys import SETTINGS, WEBHOOK_INTAKE

logger = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 (a header name)
SECRET: web.AppKey[bytes] = web.AppKey("webhook_secret", bytes)


def secret_matches(given: str | None, expected: bytes) -> bool:
    """Constant-time comparison of the header with the configured secret."""
    if given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected)


async def telegram_update(request: web.Request) -> web.Response:
    if not secret_matches(request.headers.get(SECRET_HEADER), request.app[SECRET]):
        raise ApiError(401, "unauthorized", "The secret token is missing or wrong.")
    body = await request.read()
    try:
        receipt = await request.app[WEBHOOK_INTAKE].receive(body.decode("utf-8"))
    except (UnicodeDecodeError, InvalidUpdate):
        raise ApiError(400, "bad_request", "The body is not a Telegram update.") from None
    except Exception as exc:
        # Not stored, so not answered 200: Telegram delivers it again later.
        logger.warning("webhook update not stored: %s", type(exc).__name__)
        raise ApiError(503, "unavailable", "The update could not be stored; retry.") from exc
    if receipt is Receipt.BUSY:
        raise ApiError(503, "unavailable", "Too many updates waiting; retry shortly.")
    return web.json_response({"ok": True, "result": receipt.value})


def setup(app: web.Application) -> None:
    """Mount the webhook route when the app was created with an intake (webhook mode)."""
    if WEBHOOK_INTAKE not in app:
        return
    settings = app[SETTINGS]
    _url, secret = settings.require_webhook()
    app[SECRET] = secret.encode()
    app.router.add_post(settings.webhook.path, telegram_update)
