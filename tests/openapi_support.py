"""The side server's OpenAPI document as a test oracle: does an answer match it?

``recording(app)`` adds a middleware that keeps every exchange the app answers; ``problems``
lists where one departs from the document (route, status, X-Server-Time, content type,
body schema). The body schemas are checked by jsonschema_rs against the document itself,
so ``$ref`` resolves exactly as any OpenAPI tool would resolve it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import quote

import jsonschema_rs
from aiohttp import web

from bot.web.openapi import document_bytes

DOCUMENT: dict[str, Any] = json.loads(document_bytes())

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Exchange:
    method: str
    route: str | None  # the route template, None when no route matched (404, 405)
    status: int
    headers: Mapping[str, str]
    body: bytes


def documented_operations() -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in DOCUMENT["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }


def recording(app: web.Application) -> list[Exchange]:
    """Every exchange ``app`` answers from now on (call before the app starts)."""
    seen: list[Exchange] = []

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        resource = request.match_info.route.resource
        body = response.body if isinstance(response, web.Response) else b""
        seen.append(
            Exchange(
                request.method,
                None if resource is None else resource.canonical,
                response.status,
                # The response's own headers: X-Server-Time joins them when it is sent.
                response.headers,
                body if isinstance(body, bytes) else b"",
            )
        )
        return response

    # First, so it sees the answer after the error middleware made it JSON.
    app.middlewares.insert(0, record)
    return seen


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = DOCUMENT
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


@cache
def _validator(pointer: str) -> jsonschema_rs.Draft202012Validator:
    # The document itself as the root schema, with the one pointer to check against.
    return jsonschema_rs.Draft202012Validator({**DOCUMENT, "$ref": pointer})


def _escape(part: str) -> str:
    """``part`` as a segment of a JSON pointer in a URI fragment (``{`` is not allowed)."""
    return quote(part.replace("~", "~0").replace("/", "~1"), safe="~")


def problems(exchange: Exchange) -> list[str]:
    """Where ``exchange`` departs from the document; [] when it matches."""
    where = f"{exchange.method} {exchange.route} → {exchange.status}"
    if exchange.route is None:
        return [] if exchange.status in {404, 405} else [f"{where}: unrouted, not 404 or 405"]
    item = DOCUMENT["paths"].get(exchange.route, {})
    operation = item.get(exchange.method.lower())
    if operation is None:
        return [] if exchange.status == 405 else [f"{where}: not in the document"]
    if str(exchange.status) not in operation["responses"]:
        return [f"{where}: status not documented"]
    response = operation["responses"][str(exchange.status)]
    path, method, status = _escape(exchange.route), exchange.method.lower(), exchange.status
    pointer = f"#/paths/{path}/{method}/responses/{status}"
    if "$ref" in response:
        pointer = response["$ref"]
        response = _resolve(response)
    found: list[str] = []
    for name, header in response.get("headers", {}).items():
        if _resolve(header).get("required") and name not in exchange.headers:
            found.append(f"{where}: header {name} missing")
    content = response.get("content", {})
    if not content:
        return found
    media_type = exchange.headers.get("Content-Type", "").split(";")[0].strip()
    if media_type not in content:
        return [*found, f"{where}: content type {media_type!r} not documented"]
    if media_type != "application/json":
        return found
    schema_pointer = f"{pointer}/content/{_escape(media_type)}/schema"
    errors = [
        f"{where}: {error.message}"
        for error in _validator(schema_pointer).iter_errors(json.loads(exchange.body))
    ]
    return found + errors
