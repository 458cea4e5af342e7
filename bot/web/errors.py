"""The side server's errors: every one is the JSON of EA_PROTOCOL.md
(``{"error": code, "message": text}``), never HTML and never a stack trace."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_STATUS_CODES = {
    400: ("bad_request", "The request could not be understood."),
    401: ("unauthorized", "Authentication is required."),
    403: ("forbidden", "This is not allowed."),
    404: ("not_found", "There is nothing at this path."),
    405: ("method_not_allowed", "This path does not accept that method."),
    413: ("body_too_large", f"The body is larger than {MAX_BODY_BYTES} bytes."),
    415: ("unsupported_media_type", "The body must be JSON."),
    500: ("internal_error", "The server failed; the request was not processed."),
    503: ("unavailable", "The service is unavailable; try again shortly."),
}


def json_error(
    status: int,
    code: str,
    message: str,
    *,
    fields: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body: dict[str, Any] = {"error": code, "message": message}
    if fields:
        body["fields"] = fields
    return web.json_response(body, status=status, headers=headers)


class ApiError(Exception):
    """Raised by views for an error answer in the contract's format."""

    def __init__(
        self, status: int, code: str, message: str, *, fields: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        length = request.content_length
        if length is not None and length > MAX_BODY_BYTES:
            code, message = _STATUS_CODES[413]
            return json_error(413, code, message)
        return await handler(request)
    except ApiError as exc:
        return json_error(exc.status, exc.code, exc.message, fields=exc.fields)
    except web.RequestPayloadError:
        # The body could not be read as sent: a Content-Encoding that does not decode, a
        # chunked body that breaks off. The client's fault, so no traceback in the log.
        response = json_error(400, "bad_request", "The body could not be read as sent.")
        # The rest of the body cannot be read either: this connection takes no other request.
        response.force_close()
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code, message = _STATUS_CODES.get(exc.status, ("http_error", exc.reason))
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return json_error(exc.status, code, message, headers=headers)
    except asyncio.CancelledError:
        raise
    except Exception:
        logger.exception("unhandled error on %s %s", request.method, request.path)
        code, message = _STATUS_CODES[500]
        return json_error(500, code, message)
