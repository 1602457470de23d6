"""One error body for the whole shop: `{"error": code, "message": text, ...}` (validation errors add
`errors: [{"field", "message"}]`), the exceptions that map to it, and the FastAPI handlers producing it.
Kept free of aiohttp and SQLAlchemy imports so services without a database or dependencies stay lean."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from sample_shop.kit.auth import AuthError


class DatabaseUnavailable(Exception):
    """The database cannot serve statements now (injected `db-unavailable`, or a real connection error)."""


class UpstreamError(Exception):
    """No usable answer from a dependency: every attempt timed out, could not connect, or the breaker is
    open. (An HTTP error answer is returned as an UpstreamResponse, not raised.)"""

    def __init__(self, peer: str, outcome: str, attempts: int, detail: str) -> None:
        super().__init__(f"{peer}: {outcome} after {attempts} attempt(s): {detail}")
        self.peer = peer
        self.outcome = outcome
        self.attempts = attempts
        self.detail = detail


class ShopError(Exception):
    """Raise from a route to answer `status` with a clear body."""

    def __init__(
        self, status: int, error: str, message: str, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.headers = headers
        self.extra = extra

    def response(self) -> JSONResponse:
        return error_response(self.status, self.error, self.message, headers=self.headers, **self.extra)


def error_response(
    status: int, error: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse({"error": error, "message": message, **extra}, status_code=status, headers=headers)


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc)


def _describe(error: dict[str, Any]) -> dict[str, str]:
    loc = tuple(error.get("loc", ()))
    if error.get("type") == "json_invalid":  # loc is ("body", <character position>)
        detail = (error.get("ctx") or {}).get("error", "malformed")
        position = f" at character {loc[1]}" if len(loc) > 1 else ""
        return {"field": "body", "message": f"invalid JSON{position}: {detail}"}
    return {"field": _field(loc), "message": str(error.get("msg", "invalid"))}


HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app answers on this path (for the Allow header of a 405), asked of
    the router itself so included routers count too."""
    allowed = []
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"):
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


def install_error_handlers(app: FastAPI) -> None:
    async def on_shop_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ShopError)
        return exc.response()

    async def on_validation(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [_describe(e) for e in exc.errors()]
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        return error_response(422, "validation_error", summary or "invalid request", errors=errors)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = HTTP_CODES.get(exc.status_code, "http_error")
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = "no such route; see /docs for the API"
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:  # Starlette lists the first matching route's methods only
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return error_response(exc.status_code, code, detail, headers=headers or None)

    async def on_auth(_request: Request, exc: Exception) -> JSONResponse:
        return error_response(401, "unauthorized", str(exc), headers={"WWW-Authenticate": "Bearer"})

    async def on_upstream(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, UpstreamError)
        return error_response(
            503,
            "dependency_unavailable",
            str(exc),
            peer=exc.peer,
            outcome=exc.outcome,
            headers={"Retry-After": "1"},
        )

    async def on_database(_request: Request, exc: Exception) -> JSONResponse:
        return error_response(503, "database_unavailable", str(exc), headers={"Retry-After": "1"})

    app.add_exception_handler(ShopError, on_shop_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(AuthError, on_auth)
    app.add_exception_handler(UpstreamError, on_upstream)
    app.add_exception_handler(DatabaseUnavailable, on_database)


_BODY_ERRORS = {
    "400": "the body is not UTF-8 JSON (`bad_request`)",
    "413": "the body is over the 256 KiB limit of every service (`payload_too_large`)",
}


def document_body_errors(app: FastAPI) -> None:
    """Make the OpenAPI document true about bodies: every operation that takes one can answer 400 (the body
    cannot be parsed: not UTF-8, not JSON) and 413 (over the limit, kit/asgi.py), in the shop's error
    shape. FastAPI does not list either by itself."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                if not isinstance(operation, dict) or "requestBody" not in operation:
                    continue
                responses = operation.setdefault("responses", {})
                for status, description in _BODY_ERRORS.items():
                    responses.setdefault(
                        status,
                        {
                            "description": description,
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["error", "message"],
                                        "properties": {
                                            "error": {"type": "string"},
                                            "message": {"type": "string"},
                                        },
                                    }
                                }
                            },
                        },
                    )
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
