"""THE one outbound HTTP client of the shop (aiohttp underneath).

Per call: round-robin over the dependency's healthy replicas (a replica refusing connections is ejected for
`eject_s`), a per-attempt timeout, bounded retries with full-jitter exponential backoff for idempotent calls
only (GET/HEAD/PUT/DELETE, or a POST carrying an Idempotency-Key; the naive profile retries everything at
once), a circuit breaker per dependency, trace context + baggage injection, one client span per attempt, and
the CLIENT_* / BREAKER_STATE metrics. Outbound faults of the replica's registry are applied here, on the
edge they name, before anything reaches the wire.

The policy is read from the PolicyStore on every call, so an admin `/policy` override takes effect at once.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from sample_shop.kit.auth import SERVICE_TOKEN_HEADER
from sample_shop.kit.errors import UpstreamError
from sample_shop.kit.faults import FaultRegistry
from sample_shop.kit.metrics import ShopMetrics, status_class
from sample_shop.kit.policy import ClientPolicy, PolicyStore
from sample_shop.kit.resilience import (
    BreakerSettings,
    BreakerState,
    CircuitBreaker,
    RoundRobinBalancer,
    backoff_delay_s,
)
from sample_shop.kit.telemetry import format_traceparent, request_baggage

log = logging.getLogger("sample_shop.http_client")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
TIMEOUT, CONNECTION_ERROR, CIRCUIT_OPEN = "timeout", "connection_error", "circuit_open"


@dataclass
class UpstreamResponse:
    peer: str
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    injected: bool = False  # produced by an outbound-error fault, never sent

    def json(self) -> Any:
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def breaker_settings(policy: ClientPolicy) -> BreakerSettings:
    return BreakerSettings(
        window_s=policy.breaker_window_s,
        min_calls=policy.breaker_min_calls,
        failure_ratio=policy.breaker_failure_ratio,
        open_s=policy.breaker_open_s,
        half_open_calls=policy.breaker_half_open_calls,
    )


class Upstream:
    """One dependency: its replicas, balancer and breaker."""

    def __init__(self, name: str, urls: tuple[str, ...], policy: ClientPolicy, metrics: ShopMetrics | None):
        self.name = name
        self.balancer = RoundRobinBalancer(urls)
        self.breaker = CircuitBreaker(breaker_settings(policy))
        self.policy_version = -1
        if metrics is not None:
            metrics.set_breaker_state(name, int(BreakerState.CLOSED))
            self.breaker.on_change = lambda state: self._changed(state, metrics)

    def _changed(self, state: BreakerState, metrics: ShopMetrics) -> None:
        metrics.set_breaker_state(self.name, int(state))
        log.warning(
            "circuit breaker %s",
            state.name.lower(),
            extra={"fields": {"event": "breaker", "peer": self.name, "state": state.name.lower()}},
        )


class _Refused(Exception):
    pass


class HttpClient:
    def __init__(
        self,
        service: str,
        upstreams: Mapping[str, tuple[str, ...]],
        policies: PolicyStore,
        *,
        faults: FaultRegistry | None = None,
        metrics: ShopMetrics | None = None,
        tracer: Tracer | None = None,
        rng: random.Random | None = None,
        service_token: str | None = None,
    ) -> None:
        self.service = service
        self.service_token = service_token  # sent on every call: the internal routes require it
        self.policies = policies
        self.faults = faults
        self.metrics = metrics
        self.tracer = tracer
        self.rng = rng or random.Random()
        base = policies.current()
        self.upstreams = {name: Upstream(name, urls, base, metrics) for name, urls in upstreams.items()}
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=256, keepalive_timeout=30.0)
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
            timeout=aiohttp.ClientTimeout(total=None),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("HttpClient.start() was not awaited")
        return self._session

    async def request(
        self,
        peer: str,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str | int] | None = None,
        token: str | None = None,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        route: str | None = None,
        timeout_factor: float = 1.0,
    ) -> UpstreamResponse:
        """Call `peer` (a dependency name). Returns the answer, whatever its status; raises UpstreamError
        when no answer could be had. `timeout_factor` stretches the per-attempt timeout for calls that wrap
        several downstream calls themselves (an outer timeout must exceed the inner ones)."""
        upstream = self.upstreams.get(peer)
        if upstream is None:
            raise ValueError(f"{self.service} has no dependency {peer!r}; known: {', '.join(self.upstreams)}")
        policy = self.policies.current()
        if upstream.policy_version != self.policies.version:
            upstream.breaker.configure(breaker_settings(policy))
            upstream.policy_version = self.policies.version
        send_headers = {"Accept": "application/json"}
        if self.service_token:
            send_headers[SERVICE_TOKEN_HEADER] = self.service_token
        if headers:
            send_headers.update(headers)
        if token:
            send_headers["Authorization"] = f"Bearer {token}"
        if idempotency_key:
            send_headers["Idempotency-Key"] = idempotency_key
        baggage = request_baggage.get()
        if baggage:
            send_headers["baggage"] = baggage
        body: bytes | None = None
        if json_body is not None:
            body = json.dumps(json_body, separators=(",", ":")).encode()
            send_headers["Content-Type"] = "application/json"
        query = "" if not params else "?" + urlencode(params)

        retryable = method in IDEMPOTENT_METHODS or idempotency_key is not None or policy.retry_unsafe
        attempts_allowed = 1 + (policy.retries if retryable else 0)
        metrics = self.metrics
        started = time.perf_counter()
        last_outcome, last_detail, avoid = CONNECTION_ERROR, "", None
        attempt = 0
        try:
            for attempt in range(1, attempts_allowed + 1):
                if attempt > 1:
                    if metrics is not None:
                        metrics.count_retry(peer)
                    delay = backoff_delay_s(
                        attempt - 1, policy.backoff_base_s, policy.backoff_max_s, self.rng
                    )
                    if delay > 0:
                        await asyncio.sleep(delay)
                if policy.breaker and not upstream.breaker.allow():
                    if metrics is not None:
                        metrics.observe_client_attempt(peer, method, CIRCUIT_OPEN)
                    raise UpstreamError(peer, CIRCUIT_OPEN, attempt, "circuit breaker open; failing fast")
                url = upstream.balancer.pick(avoid)
                response, outcome, detail = await self._attempt(
                    peer,
                    url,
                    method,
                    path + query,
                    body,
                    send_headers,
                    policy.timeout_s * timeout_factor,
                    attempt,
                    route,
                )
                failed = response is None or response.status >= 500
                if policy.breaker:
                    upstream.breaker.record(not failed)
                if metrics is not None:
                    metrics.observe_client_attempt(peer, method, outcome)
                if response is not None:
                    if response.status not in policy.retry_statuses or attempt == attempts_allowed:
                        return response
                    last_outcome, last_detail = outcome, f"HTTP {response.status}"
                else:
                    last_outcome, last_detail = (TIMEOUT if outcome == TIMEOUT else CONNECTION_ERROR), detail
                    if detail == "connection refused":
                        upstream.balancer.eject(url, policy.eject_s)
                avoid = url
            raise UpstreamError(peer, last_outcome, attempt, last_detail)
        finally:
            if metrics is not None:
                metrics.observe_client_call(peer, method, time.perf_counter() - started)

    async def _attempt(
        self,
        peer: str,
        base_url: str,
        method: str,
        target: str,
        body: bytes | None,
        headers: dict[str, str],
        timeout_s: float,
        attempt: int,
        route: str | None,
    ) -> tuple[UpstreamResponse | None, str, str]:
        """One try. Returns (response or None, outcome label, detail)."""
        span = None
        if self.tracer is not None:
            span = self.tracer.start_span(
                f"{method} {peer}{route or ''}",
                kind=SpanKind.CLIENT,
                attributes={"http.request.method": method, "peer.service": peer, "server.address": base_url},
            )
            if attempt > 1:
                span.set_attribute("http.request.resend_count", attempt - 1)
            headers = {**headers, "traceparent": format_traceparent(span.get_span_context())}
        else:
            current = trace.get_current_span().get_span_context()
            if current.is_valid:
                headers = {**headers, "traceparent": format_traceparent(current)}
        response: UpstreamResponse | None = None
        outcome, detail = CONNECTION_ERROR, ""
        try:
            async with asyncio.timeout(timeout_s):
                decision = self.faults.outbound_decision(peer) if self.faults is not None else None
                if decision is not None:
                    if decision.delay_s > 0:
                        await asyncio.sleep(decision.delay_s)
                    if decision.refuse:
                        raise _Refused()
                    if decision.reset:
                        raise aiohttp.ServerDisconnectedError("connection reset by peer (injected fault)")
                    if decision.status is not None:
                        payload = {"error": "injected_fault", "message": f"outbound-error fault on {peer}"}
                        response = UpstreamResponse(
                            peer, decision.status, json.dumps(payload).encode(), {}, True
                        )
                if response is None:
                    async with self.session.request(
                        method, base_url + target, data=body, headers=headers
                    ) as r:
                        payload_bytes = await r.read()
                        response = UpstreamResponse(peer, r.status, payload_bytes, r.headers)
            outcome = status_class(response.status)
        except TimeoutError:
            outcome, detail = TIMEOUT, f"no answer within {timeout_s:g} s"
        except _Refused:
            detail = "connection refused"
        except aiohttp.ClientConnectorError as exc:
            refused = getattr(exc.os_error, "errno", None) == errno.ECONNREFUSED
            detail = "connection refused" if refused else f"cannot connect: {exc.os_error}"
        except (aiohttp.ClientError, OSError) as exc:
            detail = f"{type(exc).__name__}: {exc}"
        finally:
            if span is not None:
                if response is not None:
                    span.set_attribute("http.response.status_code", response.status)
                    if response.status >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                else:
                    span.set_attribute("error.type", outcome)
                    span.set_status(Status(StatusCode.ERROR, detail))
                span.end()
        return response, outcome, detail

    async def probe_health(self, peer: str, timeout_s: float = 1.0) -> tuple[bool, str]:
        """Readiness: does any replica of `peer` answer /healthz? Direct, without faults or the breaker:
        it asks whether the dependency is reachable, not whether calls to it currently succeed."""
        upstream = self.upstreams[peer]
        errors = []
        for url in upstream.balancer.urls:
            try:
                async with asyncio.timeout(timeout_s):
                    async with self.session.get(url + "/healthz") as r:
                        await r.read()
                        if r.status == 200:
                            return True, url
                        errors.append(f"{url}: HTTP {r.status}")
            except TimeoutError:
                errors.append(f"{url}: no answer within {timeout_s:g} s")
            except (aiohttp.ClientError, OSError) as exc:
                errors.append(f"{url}: {type(exc).__name__}")
        return False, "; ".join(errors)

    def breakers(self) -> dict[str, dict[str, Any]]:
        return {name: u.breaker.snapshot() for name, u in self.upstreams.items()}

    def reset(self) -> None:
        """Close every breaker and forget ejections: a clean client, as after a restart."""
        for upstream in self.upstreams.values():
            upstream.breaker.reset()
            upstream.balancer.reset()
