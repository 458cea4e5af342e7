"""GET /api/v1/openapi.json: the OpenAPI 3.1 document of the side server, unsigned.

The document is ``bot/web/openapi.json`` (tests/test_openapi.py keeps it true: every route
is in it and every answer of the suite matches it). Served as stored, with an ETag and a
day's Cache-Control, so tools and people can fetch it as often as they like.
"""

from __future__ import annotations

import hashlib
from importlib.resources import files

from aiohttp import web

PATH = "/api/v1/openapi.json"
CACHE_CONTROL = "public, max-age=86400"


def document_bytes() -> bytes:
    return files("bot.web").joinpath("openapi.json").read_bytes()


def setup(app: web.Application) -> None:
    body = document_bytes()
    etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'

    async def openapi(request: web.Request) -> web.Response:
        headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
        if etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers=headers)
        return web.Response(body=body, content_type="application/json", headers=headers)

    app.router.add_get(PATH, openapi, allow_head=False)
