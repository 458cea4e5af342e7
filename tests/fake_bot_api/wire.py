"""Reading a Bot API request as Telegram does: query string, form, multipart or JSON body.

Form values that look like JSON are decoded (``reply_markup`` becomes a dict, a numeric
``chat_id`` an int), except the parameters that are strings in the Bot API; uploaded files
become dicts placed where the request referenced them with ``attach://``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import BodyPartReader, web
from aiohttp.hdrs import CONTENT_TYPE

JSONDict = dict[str, Any]

# Strings in the Bot API, never JSON-decoded even when they look like numbers (callback query
# ids, payloads, secret tokens and message texts often do).
_STRING_PARAMS = frozenset(
    {
        "action",
        "callback_query_id",
        "caption",
        "currency",
        "description",
        "document",
        "error_message",
        "file_id",
        "inline_message_id",
        "ip_address",
        "language_code",
        "parse_mode",
        "payload",
        "photo",
        "pre_checkout_query_id",
        "provider_data",
        "provider_token",
        "secret_token",
        "short_description",
        "start_parameter",
        "telegram_payment_charge_id",
        "text",
        "title",
        "url",
    }
)
_JSON_LIKE = re.compile(r'^\s*(?:[\[{"]|-?\d|true\s*$|false\s*$|null\s*$)')
_ATTACH_PREFIX = "attach://"


async def read_params(request: web.Request) -> JSONDict:
    """The request's parameters, decoded (see the module docstring)."""
    params: JSONDict = {k: _decode_value(k, v) for k, v in request.query.items()}
    files: dict[str, JSONDict] = {}
    if request.content_type == "multipart/form-data":
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or part.name is None:
                continue
            if part.filename is not None:
                data = bytes(await part.read(decode=True))
                files[part.name] = {
                    "filename": part.filename,
                    "content_type": part.headers.get(CONTENT_TYPE, "application/octet-stream"),
                    "size": len(data),
                    "data": data,
                }
            else:
                params[part.name] = _decode_value(part.name, await part.text())
    elif request.content_type == "application/json" and request.can_read_body:
        body = await request.json()
        if isinstance(body, dict):
            params.update(body)
    elif request.can_read_body:
        form = await request.post()
        for key, value in form.items():
            if isinstance(value, str):
                params[key] = _decode_value(key, value)
    used: set[str] = set()
    params = {k: _resolve_attachments(v, files, used) for k, v in params.items()}
    for name, info in files.items():
        if name not in used:
            params.setdefault(name, info)
    return params


def _decode_value(key: str, value: str) -> Any:
    if key in _STRING_PARAMS or value.startswith(_ATTACH_PREFIX) or not _JSON_LIKE.match(value):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _resolve_attachments(value: Any, files: dict[str, JSONDict], used: set[str]) -> Any:
    if isinstance(value, str) and value.startswith(_ATTACH_PREFIX):
        name = value.removeprefix(_ATTACH_PREFIX)
        if name in files:
            used.add(name)
            return files[name]
        return value
    if isinstance(value, dict):
        return {k: _resolve_attachments(v, files, used) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_attachments(v, files, used) for v in value]
    return value
