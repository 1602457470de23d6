"""The one way the kit's raw ASGI layers (the telemetry/fault middleware and the admin API) answer with JSON,
without going through FastAPI."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any


async def send_json(send: Any, status: int, body: Any, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


# Every service refuses request bodies above this (413) before reading them into memory: the shop's
# largest legitimate body (a checkout, a product) is a few KiB. Documented in docs/shop.md.
MAX_BODY_BYTES = 256 * 1024


class _TooLarge(Exception):
    pass


class BodyLimit:
    """ASGI layer: 413 `payload_too_large` for a body over `max_bytes`. A declared Content-Length is checked
    before any byte is read; a chunked body is read up to the limit and no further, then handed on whole
    (so the application never holds more than the limit)."""

    def __init__(self, app: Any, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _refuse(self, send: Any) -> None:
        await send_json(
            send,
            413,
            {
                "error": "payload_too_large",
                "message": f"the request body is over {self.max_bytes} bytes "
                f"({self.max_bytes // 1024} KiB), the limit of every service; send less",
            },
            [(b"connection", b"close")],
        )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0  # the server itself refuses a malformed Content-Length
                if declared > self.max_bytes:
                    await self._refuse(send)
                    return
        try:
            first = await self._read_body(receive)
        except _TooLarge:
            await self._refuse(send)
            return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return first
            message: dict[str, Any] = await receive()  # http.disconnect, when it comes
            return message

        await self.app(scope, replay, send)

    async def _read_body(self, receive: Any) -> dict[str, Any]:
        chunks: list[bytes] = []
        size = 0
        while True:
            message: dict[str, Any] = await receive()
            if message["type"] != "http.request":
                return message  # a disconnect: pass it on as it is
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
