"""/healthz (the process is alive and its event loop answers), /readyz (its database answers and every
dependency answers /healthz on at least one replica) and /metrics."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from sample_shop.kit.metrics import render

if TYPE_CHECKING:
    from sample_shop.kit.app import ServiceContext


async def readiness(ctx: ServiceContext) -> tuple[bool, dict[str, str]]:
    checks: dict[str, str] = {}
    ready = True
    if ctx.db is not None:
        try:
            await asyncio.wait_for(ctx.db.ping(), timeout=2.0)
            checks["database"] = "ok"
        except Exception as exc:  # any failure means "not ready"; the message says which
            ready = False
            checks["database"] = f"failed: {type(exc).__name__}: {exc}"[:300]
    if ctx.client is not None:
        peers = list(ctx.client.upstreams)
        results = await asyncio.gather(*(ctx.client.probe_health(peer) for peer in peers))
        for peer, (ok, detail) in zip(peers, results, strict=True):
            checks[peer] = f"ok ({detail})" if ok else f"failed: {detail}"
            ready = ready and ok
    return ready, checks


def install_health_routes(app: FastAPI, ctx: ServiceContext) -> None:
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "service": ctx.config.service, "replica": ctx.config.replica}

    async def readyz() -> JSONResponse:
        ready, checks = await readiness(ctx)
        body = {
            "status": "ready" if ready else "not_ready",
            "service": ctx.config.service,
            "replica": ctx.config.replica,
            "checks": checks,
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    async def metrics(request: Request) -> Response:
        body, content_type = render(ctx.metrics.registry, request.headers.get("accept"))
        return Response(body, media_type=content_type)

    app.add_api_route("/healthz", healthz, methods=["GET"], summary="liveness", tags=["health"])
    app.add_api_route(
        "/readyz",
        readyz,
        methods=["GET"],
        summary="readiness",
        tags=["health"],
        responses={503: {"description": "not ready"}},
    )
    app.add_api_route(
        "/metrics",
        metrics,
        methods=["GET"],
        summary="Prometheus metrics",
        tags=["health"],
        response_class=Response,
    )
