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
