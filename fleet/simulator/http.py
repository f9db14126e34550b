"""A minimal HTTP/1.1 server side for the simulated node agents, site meters and the simulator's control port.

Only what those three need: one request per connection (`Connection: close`), JSON bodies with Content-Length.
The node agent protocol itself is documented in docs/fleet.md.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

REASONS = {
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
}
MAX_BODY = 1 << 20

Handler = Callable[[str, str, dict, dict | None], tuple[int, dict]]


async def read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict, dict | None]:
    """(method, path, headers lower-cased, JSON body or None); raises ValueError on a malformed request."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _version = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    if length > MAX_BODY:
        raise ValueError("body too large")
    body = None
    if length:
        body = json.loads(await reader.readexactly(length))
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object")
    return method, path, headers, body


def response(status: int, payload: dict) -> bytes:
    body = json.dumps(payload).encode()
    head = (
        f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


async def serve_one(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, handler: Handler, delay_s: float = 0
) -> None:
    try:
        try:
            method, path, headers, body = await asyncio.wait_for(read_request(reader), timeout=10)
        except (ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            writer.write(response(400, {"error": "malformed request"}))
        else:
            status, payload = handler(method, path, headers, body)
            if delay_s:
                await asyncio.sleep(delay_s)
            writer.write(response(status, payload))
        await writer.drain()
    except (ConnectionError, OSError, asyncio.CancelledError):
        pass
    finally:
        writer.close()
