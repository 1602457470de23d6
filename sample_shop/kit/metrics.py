"""Prometheus metrics of a service, built from the topology's metric specs (names, labels, buckets are
never repeated here). Labelled children are cached so the hot path costs one dict lookup per observation.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.exposition import CONTENT_TYPE_LATEST, choose_encoder
from prometheus_client.registry import REGISTRY

from sample_shop import topology
from sample_shop.topology import MetricSpec

__all__ = ["CONTENT_TYPE_LATEST", "ShopMetrics", "build_metric", "render"]

# `*_created` series double the exposition (and the time Prometheus' 1 s scrape costs the event loop)
# while no query of ours reads them.
disable_created_metrics()


def build_metric(spec: MetricSpec, registry: CollectorRegistry) -> Any:
    if spec.kind == "counter":
        return Counter(spec.name, spec.help, spec.labels, registry=registry)
    if spec.kind == "histogram":
        return Histogram(spec.name, spec.help, spec.labels, buckets=spec.buckets, registry=registry)
    return Gauge(spec.name, spec.help, spec.labels, registry=registry)


def status_class(status: int) -> str:
    return f"{status // 100}xx"


class ShopMetrics:
    """Every metric a service exports. One instance per process (prometheus_client registries are global)."""

    def __init__(self, service: str, registry: CollectorRegistry = REGISTRY) -> None:
        self.service = service
        self.registry = registry
        self.http_requests = build_metric(topology.HTTP_REQUESTS, registry)
        self.http_duration = build_metric(topology.HTTP_DURATION, registry)
        self.http_inflight = build_metric(topology.HTTP_INFLIGHT, registry).labels(service)
        self.client_requests = build_metric(topology.CLIENT_REQUESTS, registry)
        self.client_duration = build_metric(topology.CLIENT_DURATION, registry)
        self.client_retries = build_metric(topology.CLIENT_RETRIES, registry)
        self.breaker_state = build_metric(topology.BREAKER_STATE, registry)
        self.faults_active = build_metric(topology.FAULTS_ACTIVE, registry)
        self.orders = build_metric(topology.ORDERS, registry)
        self.payments = build_metric(topology.PAYMENTS, registry)
        self._server: dict[tuple[str, str, int, str], tuple[Any, Any]] = {}
        self._client: dict[tuple[str, str, str], Any] = {}
        self._client_duration: dict[tuple[str, str], Any] = {}

    def observe_request(
        self,
        route: str,
        method: str,
        status: int,
        synthetic: str,
        seconds: float,
        trace_id: str | None = None,
    ) -> None:
        """Count and time one request; `trace_id` (of a sampled trace) becomes the latency's exemplar, the
        link from a point on a latency panel to the trace that explains it."""
        key = (route, method, status // 100, synthetic)
        children = self._server.get(key)
        if children is None:
            labels = (self.service, route, method, status_class(status), synthetic)
            children = (self.http_requests.labels(*labels), self.http_duration.labels(*labels))
            self._server[key] = children
        children[0].inc()
        if trace_id is None:
            children[1].observe(seconds)
        else:
            children[1].observe(seconds, {"trace_id": trace_id})

    def observe_client_attempt(self, peer: str, method: str, outcome: str) -> None:
        key = (peer, method, outcome)
        child = self._client.get(key)
        if child is None:
            child = self._client[key] = self.client_requests.labels(self.service, peer, method, outcome)
        child.inc()

    def observe_client_call(self, peer: str, method: str, seconds: float) -> None:
        key = (peer, method)
        child = self._client_duration.get(key)
        if child is None:
            child = self._client_duration[key] = self.client_duration.labels(self.service, peer, method)
        child.observe(seconds)

    def count_retry(self, peer: str) -> None:
        self.client_retries.labels(self.service, peer).inc()

    def set_breaker_state(self, peer: str, state_value: int) -> None:
        self.breaker_state.labels(self.service, peer).set(state_value)

    def set_faults_active(self, counts: dict[str, int]) -> None:
        for kind, count in counts.items():
            self.faults_active.labels(self.service, kind).set(count)

    def count_order(self, outcome: str) -> None:
        self.orders.labels(self.service, outcome).inc()

    def count_payment(self, outcome: str) -> None:
        self.payments.labels(self.service, outcome).inc()


def render(registry: CollectorRegistry = REGISTRY, accept: str | None = None) -> tuple[bytes, str]:
    """The exposition and its content type. Prometheus asks for OpenMetrics, the only text format that
    carries exemplars; anything else (curl, a browser) gets the classic text format."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type
