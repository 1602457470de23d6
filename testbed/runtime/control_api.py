"""The control API of the local supervisor (docs/architecture.md, "Control API"), as composable routers.

`create_control_app` assembles:
- GET /healthz, the only route without the bearer token (it tells nothing but "alive");
- the supervisor routes (bearer token): GET /metrics (Prometheus scrapes it with the token file),
  GET /processes, POST /phases;
- the fault routes (bearer token): the fault controller's router (`sample_shop.faultd.create_control_router`,
  see docs/runtime.md), which hands the process kinds back to the ProcessTable.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from testbed.runtime.base import ProcessInfo
from testbed.runtime.metrics import PHASE_STATES, PHASES, PhaseBoard, SupervisorMetrics
from testbed.runtime.processes import ProcessError, ProcessTable


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
        return phases.record(body.experiment, body.phase, body.state)

    return router


def create_control_app(
    processes: ProcessTable,
    phases: PhaseBoard,
    token: str,
    token_file: str,
    fault_router: APIRouter,
    others: Callable[[], list[ProcessInfo]] = list,
) -> FastAPI:
    # the schema is served by our own route below, behind the token: /healthz is the only open route
    app = FastAPI(title="testbed control API", docs_url=None, redoc_url=None, openapi_url=None)
    metrics = SupervisorMetrics(phases, processes.replicas)
    auth = Depends(bearer_auth(token, token_file))

    @app.get("/openapi.json", dependencies=[auth], include_in_schema=False)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

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

    @app.get("/metrics", dependencies=[auth])
    async def get_metrics() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    app.include_router(supervisor_router(processes, phases, others), dependencies=[auth])
    app.include_router(fault_router, dependencies=[auth])
    return app
