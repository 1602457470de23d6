"""The control API of the local supervisor (docs/architecture.md, "Control API"), as composable routers.

`create_control_app` assembles:
- the open routes: GET /healthz, GET /metrics (loopback listener; read-only);
- the supervisor routes (bearer token): GET /processes, POST /phases;
- the fault routes (bearer token): the fault controller's router when `sample_shop.faultd` provides one
  (see docs/runtime.md), otherwise `process_fault_router`, which handles the process kinds only.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from testbed.runtime.base import ProcessInfo
from testbed.runtime.metrics import PHASE_STATES, PHASES, PhaseBoard, SupervisorMetrics
from testbed.runtime.processes import MAX_PAUSE_S, ProcessError, ProcessTable

PROCESS_FAULT_KINDS: tuple[str, ...] = ("kill", "pause", "restart")


def _errors(status: int, *items: tuple[str, str]) -> JSONResponse:
    return JSONResponse({"errors": [{"field": f, "message": m} for f, m in items]}, status_code=status)


class ApiError(Exception):
    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(message)
        self.status, self.field, self.message = status, field, message


def bearer_auth(token: str, token_file: str) -> Callable[[Request], None]:
    def check(request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip(), token):
            raise ApiError(
                401,
                "Authorization",
                f"missing or wrong bearer token; send 'Authorization: Bearer <{token_file}>'",
            )

    return check


class PhaseIn(BaseModel):
    experiment: str = Field(min_length=1, max_length=200)
    phase: str
    state: str


class ProcessFaultIn(BaseModel):
    kind: str
    params: dict[str, Any] = Field(default_factory=dict)
    ttl_s: float | None = None


def supervisor_router(
    processes: ProcessTable, phases: PhaseBoard, others: Callable[[], list[ProcessInfo]]
) -> APIRouter:
    router = APIRouter()

    @router.get("/processes")
    async def list_processes() -> dict[str, Any]:
        return {
            "processes": [r.to_dict() for r in processes.replicas()],
            "others": [p.to_dict() for p in others()],
        }

    @router.post("/phases")
    async def post_phase(body: PhaseIn) -> dict[str, Any]:
        if body.phase not in PHASES:
            raise ApiError(422, "phase", f"unknown phase {body.phase!r}; one of {', '.join(PHASES)}")
        if body.state not in PHASE_STATES:
            raise ApiError(422, "state", f"unknown state {body.state!r}; one of {', '.join(PHASE_STATES)}")
        event = phases.record(body.experiment, body.phase, body.state)
        return {"experiment": event.experiment, "phase": event.phase, "state": event.state, "at": event.at}

    return router


def process_fault_router(processes: ProcessTable) -> APIRouter:
    """Process faults on the control API (kill, pause, restart). The fault controller replaces this router
    with one that also handles application faults and calls the same ProcessTable for these kinds."""
    router = APIRouter()

    @router.get("/faults")
    async def list_faults() -> dict[str, Any]:
        return {
            "faults": [
                {"service": p.service, "replica": p.replica, "kind": "pause", "expires_at": p.paused_until}
                for p in processes.paused()
            ]
        }

    @router.post("/faults/{service}", status_code=201)
    async def inject(service: str, body: ProcessFaultIn, replica: int | None = None) -> dict[str, Any]:
        if body.kind not in PROCESS_FAULT_KINDS:
            raise ApiError(
                501,
                "kind",
                f"{body.kind!r} is an application fault; this supervisor has no fault controller "
                f"(sample_shop.faultd) mounted. Process kinds available: {', '.join(PROCESS_FAULT_KINDS)}",
            )
        targets = [r.replica for r in processes.replicas(service)] if replica is None else [replica]
        if not targets:
            known = sorted({r.service for r in processes.replicas()})
            raise ApiError(
                404, "service", f"unknown service {service!r}; running services: {', '.join(known)}"
            )
        seconds = 0.0
        if body.kind == "pause":
            raw = body.params.get("seconds", body.ttl_s)
            if not isinstance(raw, int | float) or isinstance(raw, bool) or not 0 < raw <= MAX_PAUSE_S:
                raise ApiError(
                    422, "ttl_s", f"a pause needs ttl_s (or params.seconds) in (0, {MAX_PAUSE_S:g}] seconds"
                )
            seconds = float(raw)
        results = []
        for r in targets:
            if body.kind == "kill":
                results.append(await processes.kill(service, r))
            elif body.kind == "pause":
                results.append(await processes.pause(service, r, seconds))
            else:
                results.append(await processes.restart(service, r))
        return {
            "kind": body.kind,
            "service": service,
            "at": time.time(),
            "replicas": [p.to_dict() for p in results],
        }

    @router.delete("/faults")
    async def clear_all() -> dict[str, Any]:
        cleared = [processes.resume(p.service, p.replica).to_dict() for p in processes.paused()]
        return {"cleared": cleared}

    @router.delete("/faults/{service}")
    async def clear_service(service: str) -> dict[str, Any]:
        cleared = [
            processes.resume(p.service, p.replica).to_dict()
            for p in processes.paused()
            if p.service == service
        ]
        return {"cleared": cleared}

    return router


def create_control_app(
    processes: ProcessTable,
    phases: PhaseBoard,
    token: str,
    token_file: str,
    others: Callable[[], list[ProcessInfo]] = list,
    fault_router: APIRouter | None = None,
) -> FastAPI:
    app = FastAPI(title="testbed control API", docs_url=None, redoc_url=None, openapi_url="/openapi.json")
    metrics = SupervisorMetrics(phases, processes.replicas)
    auth = Depends(bearer_auth(token, token_file))

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _errors(exc.status, (exc.field, exc.message))

    @app.exception_handler(ProcessError)
    async def process_error(_: Request, exc: ProcessError) -> JSONResponse:
        return _errors(exc.status, ("service", exc.message))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        items = [(".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors()]
        return _errors(422, *items)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics")
    async def get_metrics() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    app.include_router(supervisor_router(processes, phases, others), dependencies=[auth])
    app.include_router(fault_router or process_fault_router(processes), dependencies=[auth])
    return app
