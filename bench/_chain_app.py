"""`python -m bench._chain_app front|back --port P [--upstream URL] [--calls N]`: the bare floor the shop is
compared with. The same frameworks and server settings as a shop service (FastAPI on uvicorn with
uvloop + httptools, aiohttp for the outbound calls with one pooled session), none of the kit: no
middleware, metrics, tracing, logging, faults, resilience or database. `front` answers GET /page after N
sequential GETs to `back`'s /item/{i}; `back` answers /item/{i} with a small JSON body."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse


def back_app() -> FastAPI:
    app = FastAPI()

    @app.get("/item/{item_id}")
    async def item(item_id: int) -> JSONResponse:
        return JSONResponse({"id": item_id, "name": f"item {item_id}", "price_cents": 100 * item_id})

    return app


def front_app(upstream: str, calls: int) -> FastAPI:
    state: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=100, keepalive_timeout=30)
        async with aiohttp.ClientSession(upstream, connector=connector) as session:
            state["session"] = session
            yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/page")
    async def page() -> JSONResponse:
        session: aiohttp.ClientSession = state["session"]
        items = []
        for i in range(1, calls + 1):
            async with session.get(f"/item/{i}", timeout=aiohttp.ClientTimeout(total=5)) as response:
                items.append(await response.json())
        return JSONResponse({"items": items})

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench._chain_app", description=__doc__)
    parser.add_argument("role", choices=("front", "back"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", default="", help="back's base URL (front only)")
    parser.add_argument("--calls", type=int, default=3, help="outbound calls per request (front only)")
    args = parser.parse_args(argv)
    app = back_app() if args.role == "back" else front_app(args.upstream, args.calls)
    uvicorn.run(
        app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False, http="auto", loop="auto"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
