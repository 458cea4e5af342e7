"""HTTP requests byte for byte over a socket: headers no client library would send."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient


def http_request(method: str, target: bytes, headers: dict[str, bytes], body: bytes) -> bytes:
    """A whole HTTP/1.1 request as bytes, closing the connection after it."""
    lines = [method.encode() + b" " + target + b" HTTP/1.1", b"Host: test"]
    lines += [name.encode() + b": " + value for name, value in headers.items()]
    lines += [b"Content-Length: " + str(len(body)).encode(), b"Connection: close"]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


async def exchange(client: TestClient[Any, Any], request: bytes) -> tuple[int, bytes, bytes]:
    """Send ``request`` to the test server as it is; the status, head and body of the answer."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    try:
        writer.write(request)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=20)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head, body
