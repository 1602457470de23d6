"""Assembling a service: `create_service_app(service, routers, ...)` wires config, logs, metrics, tracing,
the fault registry, the outbound client, the database, health routes, the request middleware and the admin
API; `run()` serves it with uvicorn on two sockets (application and admin), routed by local port. So each
service package holds only its routes, models and startup hook.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI, Request

from sample_shop import topology
from sample_shop.kit.admin import AdminApp
from sample_shop.kit.asgi import BodyLimit
from sample_shop.kit.auth import (
    SERVICE_TOKEN_HEADER,
    UserClaims,
    bearer_token,
    check_service_token,
    verify_token,
)
from sample_shop.kit.config import ConfigError, ServiceConfig, load_service_config
from sample_shop.kit.errors import ShopError, document_body_errors, install_error_handlers
from sample_shop.kit.faults import FaultEffects, FaultRegistry
from sample_shop.kit.health import install_health_routes
from sample_shop.kit.logs import setup_logging
from sample_shop.kit.metrics import ShopMetrics
from sample_shop.kit.middleware import RouteTable, ShopMiddleware
from sample_shop.kit.policy import PolicyStore

if TYPE_CHECKING:  # heavy modules are imported only by services that use them
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer
    from sqlalchemy import MetaData

    from sample_shop.kit.db import Database
    from sample_shop.kit.http_client import HttpClient

log = logging.getLogger("sample_shop.app")
TICK_S = 0.2  # fault expiry and policy expiry are checked this often (faults are gone within 1 s)


@dataclass
class ServiceContext:
    """Everything a route may need; reach it with `Depends(get_context)`."""

    config: ServiceConfig
    metrics: ShopMetrics
    faults: FaultRegistry
    policies: PolicyStore
    tracer: Tracer | None = None
    client: HttpClient | None = None
    db: Database | None = None
    state: dict[str, Any] = field(default_factory=dict)  # per-service objects (e.g. the payment RNG)


# The dependencies are `async def` although they never await: FastAPI runs a plain `def` dependency in its
# thread pool, a hop that cost ~24 % of a service's CPU in the profile (docs/runtime.md).
async def get_context(request: Request) -> ServiceContext:
    ctx: ServiceContext = request.app.state.ctx
    return ctx


@dataclass(frozen=True)
class AuthenticatedUser:
    claims: UserClaims
    token: str  # forwarded to the services called on the user's behalf

    @property
    def id(self) -> int:
        return self.claims.user_id


def verified_user(request: Request) -> AuthenticatedUser:
    """The verified user of `Authorization: Bearer <jwt>`; AuthError -> 401. An HS256 check takes ~20 us,
    so it runs on the event loop."""
    token = bearer_token(request.headers.get("authorization"))
    return AuthenticatedUser(verify_token(token, request.app.state.ctx.config.jwt_secret), token)


async def require_service(request: Request) -> None:
    """FastAPI dependency of the internal routes: the caller is one of the stack's services."""
    check_service_token(request.headers.get(SERVICE_TOKEN_HEADER), request.app.state.ctx.config.admin_token)


async def require_user(request: Request) -> AuthenticatedUser:
    """FastAPI dependency: the verified user of `Authorization: Bearer <jwt>`; AuthError -> 401."""
    return verified_user(request)


async def require_admin(request: Request) -> AuthenticatedUser:
    """FastAPI dependency for admin routes: a verified user whose token carries the admin role.
    No or a bad token -> 401 (as `require_user`); a shopper's token -> 403 `admin_only`."""
    user = verified_user(request)
    if not user.claims.is_admin:
        raise ShopError(403, "admin_only", "this route is for the shop's administrators only")
    return user


class PortDispatcher:
    """One uvicorn server, two sockets: requests arriving on the admin port go to the admin API."""

    def __init__(self, app: Any, admin: Any, admin_port: int) -> None:
        self.app = app
        self.admin = admin
        self.admin_port = admin_port

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        server = scope.get("server")
        if scope["type"] == "http" and server is not None and server[1] == self.admin_port:
            await self.admin(scope, receive, send)
        else:
            await self.app(scope, receive, send)


@dataclass
class ServiceApp:
    asgi: PortDispatcher
    api: FastAPI
    context: ServiceContext


StartupHook = Callable[[ServiceContext], Awaitable[None]]


def create_service_app(
    service: str,
    routers: Sequence[APIRouter],
    *,
    config: ServiceConfig | None = None,
    metadata: MetaData | None = None,
    on_startup: StartupHook | None = None,
    description: str = "",
) -> ServiceApp:
    config = config or load_service_config(service)
    metrics = ShopMetrics(service)
    effects = FaultEffects(service, metrics.set_faults_active)
    faults = FaultRegistry(service, listeners=[effects])
    ctx = ServiceContext(
        config=config, metrics=metrics, faults=faults, policies=PolicyStore(config.client_policy)
    )
    provider = _tracing(ctx)
    _outbound_client(ctx)
    _database(ctx, metadata)
    api = _api(ctx, routers, description, _lifespan(ctx, effects, provider, on_startup))
    return ServiceApp(
        asgi=PortDispatcher(_middleware(ctx, api, routers), BodyLimit(_admin(ctx)), config.admin_port),
        api=api,
        context=ctx,
    )


def _tracing(ctx: ServiceContext) -> TracerProvider | None:
    """The tracer provider (telemetry on), set as OpenTelemetry's global one; ctx.tracer from it."""
    config = ctx.config
    if not config.telemetry:
        return None
    from opentelemetry import trace

    from sample_shop.kit.telemetry import SCOPE_NAME, create_tracer_provider

    provider = create_tracer_provider(
        config.service,
        config.replica,
        sample_ratio=config.trace_sample_ratio,
        traces_file=config.traces_file,
        otlp_endpoint=config.otlp_endpoint,
        trace_files=config.trace_files,
    )
    trace.set_tracer_provider(provider)
    ctx.tracer = provider.get_tracer(SCOPE_NAME)
    return provider


def _outbound_client(ctx: ServiceContext) -> None:
    """ctx.client, for a service with upstreams: timeouts, retries, breaker, faults on outbound calls."""
    if not ctx.config.upstreams:
        return
    from sample_shop.kit.http_client import HttpClient

    ctx.client = HttpClient(
        ctx.config.service,
        ctx.config.upstreams,
        ctx.policies,
        faults=ctx.faults,
        metrics=ctx.metrics,
        tracer=ctx.tracer,
        service_token=ctx.config.admin_token,
    )


def _database(ctx: ServiceContext, metadata: MetaData | None) -> None:
    """ctx.db, for a service that declares tables (it must own a database in the topology)."""
    if metadata is None:
        return
    if ctx.config.database_url is None:
        raise ConfigError(f"{ctx.config.service} declares tables but owns no database in the topology")
    from sample_shop.kit.db import Database

    ctx.db = Database(ctx.config.database_url, metadata, faults=ctx.faults)


def _lifespan(
    ctx: ServiceContext,
    effects: FaultEffects,
    provider: TracerProvider | None,
    on_startup: StartupHook | None,
) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    """Start the fault ticker, the schema, the client and the service's hook; stop it all, faults cleared."""
    config = ctx.config

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        ticker = asyncio.create_task(_tick(ctx))
        if ctx.db is not None:
            await asyncio.get_running_loop().run_in_executor(None, ctx.db.create_schema)
        if ctx.client is not None:
            await ctx.client.start()
        if on_startup is not None:
            await on_startup(ctx)
        log.info(
            "started",
            extra={
                "fields": {
                    "event": "started",
                    "port": config.port,
                    "admin_port": config.admin_port,
                    "telemetry": config.telemetry,
                    "resilience": config.client_policy.profile,
                }
            },
        )
        try:
            yield
        finally:
            ticker.cancel()
            ctx.faults.clear()
            effects.stop_all()
            if ctx.client is not None:
                await ctx.client.close()
            if ctx.db is not None:
                ctx.db.close()
            if provider is not None:
                provider.shutdown()

    return lifespan


def _api(
    ctx: ServiceContext,
    routers: Sequence[APIRouter],
    description: str,
    lifespan: Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]],
) -> FastAPI:
    """The FastAPI app: the service's routers, health routes, the shop's error bodies."""
    # FastAPI's native OpenTelemetry support is off: ShopMiddleware does tracing and metrics in one cheaper
    # pass, and the native one would add dependency/endpoint child spans to every request.
    api = FastAPI(
        title=f"shop: {ctx.config.service}",
        description=description,
        version="0.1.0",
        lifespan=lifespan,
        redoc_url=None,
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    api.state.ctx = ctx
    install_error_handlers(api)
    install_health_routes(api, ctx)
    for router in routers:
        api.include_router(router)
    document_body_errors(api)
    return api


def _middleware(ctx: ServiceContext, api: FastAPI, routers: Sequence[APIRouter]) -> ShopMiddleware:
    """Tracing, metrics, access log and inbound faults around the app, in one pass per request."""
    config = ctx.config
    return ShopMiddleware(
        BodyLimit(api),  # inside the middleware, so a 413 is counted and traced like any answer
        service=config.service,
        routes=RouteTable([*api.routes, *(route for router in routers for route in router.routes)]),
        faults=ctx.faults,
        metrics=ctx.metrics,
        tracer=ctx.tracer,
        detailed_metrics=config.telemetry,
        access_log_mode=config.access_log if config.telemetry else "off",
        slow_request_s=config.slow_request_s,
    )


def _admin(ctx: ServiceContext) -> AdminApp:
    """The per-replica admin API (kit/admin.py) on this replica's faults, policy and client."""
    client = ctx.client
    return AdminApp(
        ctx.config.service,
        ctx.config.replica,
        ctx.config.admin_token,
        ctx.faults,
        ctx.policies,
        status=lambda: {"breakers": client.breakers() if client else {}},
        reset_breakers=client.reset if client else None,
    )


async def _tick(ctx: ServiceContext) -> None:
    while True:
        await asyncio.sleep(TICK_S)
        try:
            ctx.faults.expire_due()
            ctx.policies.current()
        except Exception:  # the ticker must survive anything, or faults would outlive their TTL
            log.exception("fault ticker failed")


def _bind(host: str, port: int, what: str, variable: str) -> socket.socket:
    try:
        sock = socket.create_server((host, port), backlog=2048)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port} for the {what} ({exc.strerror}); another process may "
            f"hold it - pick another with {variable} or TESTBED_PORT_OFFSET"
        ) from None
    sock.set_inheritable(True)
    return sock


def run(service: str, build: Callable[[ServiceConfig], ServiceApp]) -> None:
    """Entry point of `python -m sample_shop.<service>`: exit 2 with a one-line message on bad config."""
    if service not in topology.SERVICES:
        raise SystemExit(f"unknown service {service!r}")
    try:
        config = load_service_config(service)
        setup_logging(service, config.replica, config.log_level)
        app = build(config)
        sockets = [
            _bind(config.host, config.port, "application", "SHOP_PORT"),
            _bind(config.admin_host, config.admin_port, "admin API", "SHOP_ADMIN_PORT"),
        ]
    except ConfigError as exc:
        print(f"{service}: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(
            app.asgi,
            lifespan="on",
            log_config=None,
            access_log=False,
            timeout_keep_alive=75,  # longer than the client's pool keep-alive: no reuse-after-close races
            server_header=False,
            http="auto",  # httptools and uvloop when installed
            loop="auto",
            backlog=2048,
        )
    )
    server.run(sockets=sockets)
