"""HTTP face of the fault controller (docs/architecture.md, "Control API").

`fault_router(controller, token)` is mounted by the local supervisor on its control API; `create_app` wraps
the same router into the standalone app of `python -m sample_shop.faultd` (kind), adding /healthz, /metrics
and POST /phases, which the supervisor serves itself locally.

Every route needs `Authorization: Bearer <token>`. Errors are `{"errors": [{"field", "message"}]}`; bodies
are parsed here, not by FastAPI's models, so a wrong body gets the fault vocabulary's own messages.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from sample_shop.faultd.controller import ControlError, FaultController
from sample_shop.faultd.phases import PHASE_STATES, PHASES, PhaseBoard
from sample_shop.topology import MAX_REPLICAS

MAX_BODY_BYTES = 64 * 1024


def _error(status: int, field: str, message: str) -> JSONResponse:
    return JSONResponse({"errors": [{"field": field, "message": message}]}, status_code=status)


class _Unauthorized(Exception):
    pass


def bearer_check(token: str) -> Any:
    async def check(request: Request) -> None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip().encode(), token.encode()):
            raise _Unauthorized()

    return check


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise ControlError(413, "body", f"larger than {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        raise ControlError(
            422, "body", 'empty: send a JSON object such as {"kind": "latency", "params": {"ms": 200}}'
        )
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ControlError(422, "body", f"invalid JSON: {exc}") from None


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


async def _answer(work: Any, status: int = 200) -> JSONResponse:
    try:
        return JSONResponse(await work, status_code=status)
    except ControlError as exc:
        return JSONResponse(exc.to_dict(), status_code=exc.status)


def fault_router(controller: FaultController, token: str) -> APIRouter:
    """The /faults and /policy routes. The token is checked here too, so the router is safe wherever it
    is mounted."""
    router = APIRouter(dependencies=[Depends(bearer_check(token))])

    @router.get("/faults")
    async def list_faults() -> JSONResponse:
        return await _answer(controller.list_faults())

    @router.post("/faults/{service}")
    async def inject(service: str, request: Request) -> JSONResponse:
        try:
            replica = _replica_param(request)
            body = await _json_body(request)
        except ControlError as exc:
            return JSONResponse(exc.to_dict(), status_code=exc.status)
        return await _answer(controller.inject(service, body, replica), status=201)

    @router.delete("/faults")
    async def clear_all() -> JSONResponse:
        return await _answer(controller.clear())

    @router.delete("/faults/{service}")
    async def clear_service(service: str) -> JSONResponse:
        return await _answer(controller.clear(service))

    @router.delete("/faults/{service}/{fault_id}")
    async def clear_one(service: str, fault_id: str) -> JSONResponse:
        return await _answer(controller.clear(service, fault_id))

    @router.get("/policy")
    async def list_policies() -> JSONResponse:
        return await _answer(controller.list_policies())

    @router.put("/policy/{service}")
    async def set_policy(service: str, request: Request) -> JSONResponse:
        try:
            body = await _json_body(request)
        except ControlError as exc:
            return JSONResponse(exc.to_dict(), status_code=exc.status)
        return await _answer(controller.set_policy(service, body))

    @router.delete("/policy")
    async def reset_all_policies() -> JSONResponse:
        return await _answer(controller.clear_policy())

    @router.delete("/policy/{service}")
    async def reset_policy(service: str) -> JSONResponse:
        return await _answer(controller.clear_policy(service))

    return router


def create_app(controller: FaultController, token: str, phases: PhaseBoard | None = None) -> FastAPI:
    """The standalone control API of the fault controller (kind): faults, policy, phases, metrics."""
    board = phases or PhaseBoard()

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        controller.start()
        try:
            yield
        finally:
            await controller.stop()

    # the schema is served by our own route below, behind the token: /healthz is the only open route
    app = FastAPI(
        title="fault controller", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )

    @app.get("/openapi.json", dependencies=[Depends(bearer_check(token))], include_in_schema=False)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.exception_handler(_Unauthorized)
    async def unauthorized(_: Request, __: _Unauthorized) -> JSONResponse:
        return _error(
            401, "Authorization", "missing or wrong bearer token; send 'Authorization: Bearer <token>'"
        )

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {
            "status": "ok",
            "discovery": controller.discovery.name,
            "error": controller.last_discovery_error,
        }

    @app.get("/metrics", dependencies=[Depends(bearer_check(token))])  # Prometheus sends the token
    async def metrics() -> Response:
        return Response(board.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.post("/phases", dependencies=[Depends(bearer_check(token))])
    async def post_phase(request: Request) -> JSONResponse:
        try:
            body = await _json_body(request)
        except ControlError as exc:
            return JSONResponse(exc.to_dict(), status_code=exc.status)
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("experiment"), str)
            or not body["experiment"]
        ):
            return _error(422, "experiment", "required: the experiment's name")
        if body.get("phase") not in PHASES:
            return _error(422, "phase", f"unknown phase {body.get('phase')!r}; one of {', '.join(PHASES)}")
        if body.get("state") not in PHASE_STATES:
            return _error(
                422, "state", f"unknown state {body.get('state')!r}; one of {', '.join(PHASE_STATES)}"
            )
        event = board.record(body["experiment"][:200], body["phase"], body["state"])
        return JSONResponse(event)

    app.include_router(fault_router(controller, token))
    return app
