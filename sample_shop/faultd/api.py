"""The control API of a stack (docs/architecture.md, "Control API"): one app factory for both targets.

`create_control_app` serves
- GET /healthz, the only route without the bearer token (it says "alive" and which discovery runs);
- GET /openapi.json, GET /metrics, POST /phases;
- the fault controller's /faults and /policy routes;
- and the routes a runtime adds (`routes`): the local supervisor adds GET /processes.
The local supervisor mounts it in its own process (testbed/runtime/supervisor.py); on kind it is
`python -m sample_shop.faultd` (faultd/__main__.py).

The token check, the `{"errors": [{"field", "message"}]}` envelope and body parsing are kit/control.py's,
shared with the per-replica admin API. Fault and policy bodies are parsed here, not by FastAPI's models, so a
wrong body gets the fault vocabulary's own messages (kit/faultspec.py); POST /phases is a pydantic model.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, ValidationInfo, field_validator

from sample_shop.faultd.controller import FaultController
from sample_shop.faultd.phases import PHASE_STATES, PHASES, PhaseBoard
from sample_shop.kit.control import BEARER_CHALLENGE, ControlError, check_bearer, errors_body, parse_json_body
from sample_shop.topology import MAX_REPLICAS

MAX_BODY_BYTES = 64 * 1024
FAULT_EXAMPLE = '{"kind": "latency", "params": {"ms": 200}}'
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
MAX_EXPERIMENT_NAME = 200


class PhaseIn(BaseModel):
    """POST /phases: an experiment's phase starts or ends (the `testbed_experiment_phase` gauge)."""

    experiment: str = Field(min_length=1, max_length=MAX_EXPERIMENT_NAME)
    phase: str
    state: str

    @field_validator("phase", "state")
    @classmethod
    def _known(cls, value: str, info: ValidationInfo) -> str:
        valid = PHASES if info.field_name == "phase" else PHASE_STATES
        if value not in valid:
            raise ValueError(f"unknown {info.field_name} {value!r}; one of {', '.join(valid)}")
        return value


def bearer_dependency(token: str, where: str) -> Callable[[Request], None]:
    """A FastAPI dependency refusing a request without the token (kit/control.py's check)."""

    def check(request: Request) -> None:
        refusal = check_bearer(request.headers.get("authorization"), token, where)
        if refusal is not None:
            raise refusal

    return check


async def _json_body(request: Request) -> Any:
    return parse_json_body(await request.body(), MAX_BODY_BYTES, FAULT_EXAMPLE)


def _replica_param(request: Request) -> int | None:
    raw = request.query_params.get("replica")
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value < MAX_REPLICAS:
        raise ControlError(
            422, "replica", f"must be an integer between 0 and {MAX_REPLICAS - 1}, got {raw!r}"
        )
    return value


def fault_router(controller: FaultController) -> APIRouter:
    """The /faults and /policy routes (the token is checked by the app that includes them)."""
    router = APIRouter()

    @router.get("/faults")
    async def list_faults() -> dict[str, Any]:
        return await controller.list_faults()

    @router.post("/faults/{service}", status_code=201)
    async def inject(service: str, request: Request) -> dict[str, Any]:
        replica = _replica_param(request)
        return await controller.inject(service, await _json_body(request), replica)

    @router.delete("/faults")
    async def clear_all() -> dict[str, Any]:
        return await controller.clear()

    @router.delete("/faults/{service}")
    async def clear_service(service: str) -> dict[str, Any]:
        return await controller.clear(service)

    @router.delete("/faults/{service}/{fault_id}")
    async def clear_one(service: str, fault_id: str) -> dict[str, Any]:
        return await controller.clear(service, fault_id)

    @router.get("/policy")
    async def list_policies() -> dict[str, Any]:
        return await controller.list_policies()

    @router.put("/policy/{service}")
    async def set_policy(service: str, request: Request) -> dict[str, Any]:
        return await controller.set_policy(service, await _json_body(request))

    @router.delete("/policy")
    async def reset_all_policies() -> dict[str, Any]:
        return await controller.clear_policy()

    @router.delete("/policy/{service}")
    async def reset_policy(service: str) -> dict[str, Any]:
        return await controller.clear_policy(service)

    return router


def create_control_app(
    controller: FaultController,
    token: str,
    *,
    phases: PhaseBoard | None = None,
    metrics: Callable[[], bytes] | None = None,
    routes: Sequence[APIRouter] = (),
    token_hint: str = "the stack's token",
    title: str = "control API",
) -> FastAPI:
    """The control API around `controller`. `metrics` renders GET /metrics (default: the phase board);
    `routes` are added behind the token; `token_hint` says in a 401/403 where the token is. The app's
    lifespan starts and stops the controller; a server run without lifespan (the supervisor's) starts it
    itself (`FaultController.start` is idempotent)."""
    board = phases or PhaseBoard()
    render = metrics or board.render
    auth = [Depends(bearer_dependency(token, token_hint))]

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        controller.start()
        try:
            yield
        finally:
            await controller.stop()

    # the schema is served below, behind the token: it maps every route of the control plane
    app = FastAPI(title=title, docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)

    @app.exception_handler(ControlError)
    async def refused(_: Request, exc: ControlError) -> JSONResponse:
        headers = BEARER_CHALLENGE if exc.status == 401 else None
        return JSONResponse(exc.to_dict(), status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        pairs = [(".".join(str(p) for p in e["loc"]), str(e["msg"])) for e in exc.errors()]
        return JSONResponse(errors_body(pairs), status_code=422)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {
            "status": "ok",
            "discovery": controller.discovery.name,
            "error": controller.last_discovery_error,
        }

    @app.get("/openapi.json", dependencies=auth, include_in_schema=False)
    async def openapi() -> dict[str, Any]:
        return app.openapi()

    @app.get("/metrics", dependencies=auth)  # Prometheus sends the token (its scrape config's token file)
    async def get_metrics() -> Response:
        return Response(render(), media_type=PROMETHEUS_TEXT)

    @app.post("/phases", dependencies=auth)
    async def post_phase(body: PhaseIn) -> dict[str, Any]:
        return board.record(body.experiment, body.phase, body.state)

    app.include_router(fault_router(controller), dependencies=auth)
    for router in routes:
        app.include_router(router, dependencies=auth)
    return app
