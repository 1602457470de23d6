"""The shop's one request middleware, pure ASGI (the stock OpenTelemetry FastAPI instrumentation halves
throughput here). Per request, in one place:

- the route template (cached per method and path; UNMATCHED_ROUTE for unknown paths, bounded cardinality);
- one SERVER span named `METHOD /route/{template}`, parented on the caller's W3C traceparent, carrying the
  `synthetic` baggage value; no receive/send child spans;
- HTTP_REQUESTS / HTTP_DURATION / HTTP_INFLIGHT with route template and status class;
- inbound faults (latency, error, hang) from the replica's registry;
- access log lines, by default only for 5xx and slow requests (SHOP_ACCESS_LOG).

With SHOP_TELEMETRY=off only the inflight gauge and inbound faults remain, for the on/off cost comparison.
/healthz, /readyz and /metrics bypass spans, metrics and faults: probes must see the process, not the fault.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from sample_shop.kit.asgi import send_json
from sample_shop.kit.faults import FaultRegistry
from sample_shop.kit.metrics import ShopMetrics
from sample_shop.kit.telemetry import baggage_value, parent_context, request_baggage
from sample_shop.topology import SYNTHETIC_BAGGAGE_KEY, UNMATCHED_ROUTE

access_log = logging.getLogger("sample_shop.access")
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
ROUTE_CACHE_LIMIT = 4096

Scope = dict[str, Any]


class RouteTable:
    """Route template of a request, from the routes' own `path_regex` (FastAPI/Starlette routes). Routes are
    given explicitly (the app's own plus those of the routers it includes) because FastAPI wraps included
    routers in private objects."""

    def __init__(self, routes: Iterable[Any]) -> None:
        self._routes: list[tuple[Any, str, frozenset[str] | None]] = []
        for route in routes:
            regex = getattr(route, "path_regex", None)
            path = getattr(route, "path", None)
            if regex is None or path is None:
                continue
            methods = getattr(route, "methods", None)
            self._routes.append((regex, path, frozenset(methods) if methods else None))
        self._cache: dict[tuple[str, str], str] = {}

    def template(self, method: str, path: str) -> str:
        key = (method, path)
        found = self._cache.get(key)
        if found is not None:
            return found
        found = UNMATCHED_ROUTE
        partial = None
        for regex, template, methods in self._routes:
            if regex.match(path):
                if methods is None or method in methods or (method == "HEAD" and "GET" in methods):
                    found = template
                    break
                partial = partial or template
        else:
            if partial is not None:
                found = partial  # the path exists, the method does not (405)
        if len(self._cache) >= ROUTE_CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = found
        return found


class ShopMiddleware:
    def __init__(
        self,
        app: Any,
        *,
        service: str,
        routes: RouteTable,
        faults: FaultRegistry,
        metrics: ShopMetrics,
        tracer: Tracer | None,
        detailed_metrics: bool,
        access_log_mode: str,
        slow_request_s: float,
    ) -> None:
        self.app = app
        self.service = service
        self.routes = routes
        self.faults = faults
        self.metrics = metrics
        self.tracer = tracer
        self.detailed_metrics = detailed_metrics
        self.access_log_mode = access_log_mode
        self.slow_request_s = slow_request_s
        self.inflight = metrics.http_inflight

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in PROBE_PATHS:
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        route = self.routes.template(method, scope["path"])
        traceparent = baggage = None
        for name, value in scope["headers"]:
            if name == b"traceparent":
                traceparent = value.decode("latin-1")
            elif name == b"baggage":
                baggage = value.decode("latin-1")
        synthetic = "false"
        if baggage is not None:
            synthetic = "true" if baggage_value(baggage, SYNTHETIC_BAGGAGE_KEY) == "true" else "false"
        baggage_token = request_baggage.set(baggage)

        status = 500
        response_started = False

        async def send_wrapper(message: dict[str, Any]) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
            await send(message)

        span = None
        context_token = None
        if self.tracer is not None:
            span = self.tracer.start_span(
                f"{method} {route}",
                context=parent_context(traceparent),
                kind=SpanKind.SERVER,
                attributes={
                    "http.request.method": method,
                    "http.route": route,
                    "synthetic": synthetic,  # few attributes: the SDK validates each one, per span
                },
            )
            context_token = otel_context.attach(trace.set_span_in_context(span))
        self.inflight.inc()
        started = time.perf_counter()
        try:
            decision = self.faults.inbound_decision(route) if self.faults.inbound else None
            if decision is not None:
                if span is not None:
                    span.set_attribute("shop.fault_ids", list(decision.fault_ids))
                if decision.delay_s > 0:
                    await asyncio.sleep(decision.delay_s)
                if decision.hang is not None:
                    remaining = decision.hang.remaining_s(self.faults.clock())
                    with contextlib.suppress(TimeoutError):  # the TTL ran out: the fault ends anyway
                        await asyncio.wait_for(self.faults.ended_event(decision.hang.id).wait(), remaining)
                if decision.status is not None:
                    fault_id = decision.fault_ids[0]
                    await send_json(
                        send_wrapper,
                        decision.status,
                        {
                            "error": "injected_fault",
                            "message": f"injected error {decision.status} (fault {fault_id})",
                        },
                        [(b"x-shop-fault", fault_id.encode())],
                    )
                    return
            await self.app(scope, receive, send_wrapper)
        except BaseException as exc:
            if span is not None:
                span.record_exception(exc)
            if not response_started and isinstance(exc, Exception):
                status = 500
            raise
        finally:
            elapsed = time.perf_counter() - started
            self.inflight.dec()
            request_baggage.reset(baggage_token)
            if self.detailed_metrics:
                trace_id = None
                if span is not None and span.is_recording():  # sampled: its trace will exist
                    trace_id = format(span.get_span_context().trace_id, "032x")
                self.metrics.observe_request(route, method, status, synthetic, elapsed, trace_id)
            if span is not None:
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
                if self.access_log_mode != "off" and (
                    self.access_log_mode == "all" or status >= 500 or elapsed >= self.slow_request_s
                ):
                    self._log_access(method, route, scope, status, elapsed, synthetic)
                span.end()
                if context_token is not None:
                    otel_context.detach(context_token)
            elif self.access_log_mode == "all":
                self._log_access(method, route, scope, status, elapsed, synthetic)

    def _log_access(
        self, method: str, route: str, scope: Scope, status: int, elapsed: float, synthetic: str
    ) -> None:
        level = (
            logging.ERROR
            if status >= 500
            else logging.WARNING
            if elapsed >= self.slow_request_s
            else logging.INFO
        )
        client = scope.get("client")
        access_log.log(
            level,
            "%s %s %d %.1f ms",
            method,
            scope["path"],
            status,
            elapsed * 1000,
            extra={
                "fields": {
                    "event": "access",
                    "method": method,
                    "route": route,
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "synthetic": synthetic,
                    "client": f"{client[0]}:{client[1]}" if client else None,
                }
            },
        )
