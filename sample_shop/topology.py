"""The one source of truth for names: services, ports, metric names, label sets, histogram buckets,
datasource UIDs and the stack descriptor.

Everything that must agree - the services, the local runtime, the generated Prometheus configuration,
the SLO validator, the dashboards' tests and the kind manifests' tests - reads this module. Drift between
those is what makes other demo shops' dashboards show "No data", so nothing here is repeated elsewhere.

This module is pure data plus tiny helpers; it imports nothing heavier than the standard library.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from sample_shop.basics import write_text_atomic

# --------------------------------------------------------------------------------------------------
# Services
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    port: int  # replica 0's application port; replica r listens on port + REPLICA_PORT_STRIDE * r
    depends_on: tuple[str, ...] = ()
    owns_database: bool = False
    public: bool = False  # reachable by users (only the gateway)


SERVICES: dict[str, ServiceSpec] = {
    s.name: s
    for s in (
        ServiceSpec("gateway", 8080, ("users", "catalog", "cart", "orders", "recommendations"), public=True),
        ServiceSpec("users", 8081, owns_database=True),
        ServiceSpec("catalog", 8082, owns_database=True),
        ServiceSpec("cart", 8083, ("catalog",), owns_database=True),
        ServiceSpec("orders", 8084, ("cart", "catalog", "payment"), owns_database=True),
        ServiceSpec("payment", 8085),
        ServiceSpec("recommendations", 8086, ("catalog",)),
    )
}
SERVICE_NAMES: tuple[str, ...] = tuple(SERVICES)

REPLICA_PORT_STRIDE = 10  # replica r of a service listens on port + 10 * r
MAX_REPLICAS = 5
ADMIN_PORT_OFFSET = 10_000  # each replica's fault/admin API listens on its app port + 10000 (loopback)

# Ports of the rest of the stack (before TESTBED_PORT_OFFSET is added).
CONTROL_PORT = 18_000  # supervisor + fault controller API (local); the fault controller on kind
PROMETHEUS_PORT = 9090
LOAD_METRICS_PORT = 9646  # the load generator's client-side metrics exporter
JAEGER_UI_PORT = 16686
JAEGER_OTLP_HTTP_PORT = 4318
LOKI_PORT = 3100
GRAFANA_PORT = 3000
NODE_EXPORTER_PORT = 9100  # host CPU, memory and pressure (node_exporter), scraped by the local Prometheus
ALERTMANAGER_PORT = 9093
ALERT_WEBHOOK_PORT = 9097  # the testbed's receiver of Alertmanager's notifications (AM clusters on 9094)
SMTP_PORT = 2525  # the local SMTP server the notifications function sends to (loopback; a Maildir)

# --------------------------------------------------------------------------------------------------
# Functions: run on demand by the function runner (testbed/runtime/functions.py), not always on
# --------------------------------------------------------------------------------------------------

NOTIFICATIONS_FUNCTION = "notifications"  # consumes orders' outbox, sends the order e-mails

SCRAPE_INTERVAL_S = 1.0  # the issue demands <= 2 s; 1 s lets short experiments see their faults
RULE_EVALUATION_INTERVAL_S = 1.0

# --------------------------------------------------------------------------------------------------
# Public API routes of the gateway, grouped by user journey (SLOs and dashboards key on these)
# --------------------------------------------------------------------------------------------------

JOURNEY_ROUTES: dict[str, tuple[tuple[str, str], ...]] = {
    "browse": (
        ("GET", "/api/products"),
        ("GET", "/api/products/{product_id}"),
        ("GET", "/api/products/{product_id}/recommendations"),
    ),
    "cart": (
        ("GET", "/api/cart"),
        ("POST", "/api/cart/items"),
        ("DELETE", "/api/cart/items/{product_id}"),
    ),
    "checkout": (("POST", "/api/checkout"),),
    "login": (("POST", "/api/auth/login"),),
}

# --------------------------------------------------------------------------------------------------
# Metrics: names, label sets and buckets
# --------------------------------------------------------------------------------------------------

# Latency buckets in seconds. Every SLO latency threshold must be one of these (a threshold that is
# not a boundary silently selects nothing; slo/ rejects such files at load time).
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0,
)  # fmt: skip

STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx")
UNMATCHED_ROUTE = "<unmatched>"  # route label for requests that match no route (bounded cardinality)


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: Literal["counter", "histogram", "gauge"]
    labels: tuple[str, ...]
    help: str
    buckets: tuple[float, ...] = LATENCY_BUCKETS_S  # histograms only: the boundaries, in seconds


# Notifications are slower than requests: seconds to minutes, with the SLO's 30 s among the boundaries.
NOTIFICATION_BUCKETS_S: tuple[float, ...] = (
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0,
)  # fmt: skip


# Server side, exported by every service on /metrics (label `replica` and `instance` come from the scrape).
HTTP_REQUESTS = MetricSpec(
    "shop_http_requests_total",
    "counter",
    ("service", "route", "method", "status_class", "synthetic"),
    "HTTP requests served, by route template and status class",
)
HTTP_DURATION = MetricSpec(
    "shop_http_request_duration_seconds",
    "histogram",
    ("service", "route", "method", "status_class", "synthetic"),
    "HTTP request latency as seen by the server",
)
HTTP_INFLIGHT = MetricSpec("shop_http_inflight_requests", "gauge", ("service",), "Requests being served now")
CLIENT_REQUESTS = MetricSpec(
    "shop_client_requests_total",
    "counter",
    ("service", "peer", "method", "outcome"),
    "Outbound calls by dependency; outcome is a status class, timeout, connection_error or circuit_open",
)
CLIENT_DURATION = MetricSpec(
    "shop_client_request_duration_seconds",
    "histogram",
    ("service", "peer", "method"),
    "Outbound call latency per dependency, retries included",
)
CLIENT_RETRIES = MetricSpec("shop_client_retries_total", "counter", ("service", "peer"), "Outbound retries")
BREAKER_STATE = MetricSpec(
    "shop_circuit_breaker_state",
    "gauge",
    ("service", "peer"),
    "Circuit breaker state per dependency: 0 closed, 1 half-open, 2 open",
)
FAULTS_ACTIVE = MetricSpec("shop_faults_active", "gauge", ("service", "kind"), "Injected faults now active")
ORDERS = MetricSpec("shop_orders_total", "counter", ("service", "outcome"), "Checkouts by outcome")
PAYMENTS = MetricSpec("shop_payments_total", "counter", ("service", "outcome"), "Payment charges by outcome")
# The asynchronous path, exported by orders (the outbox's owner outlives the function's instances).
NOTIFICATION_BACKLOG = MetricSpec(
    "shop_notification_backlog",
    "gauge",
    ("service", "state"),
    "Order events in the outbox by state (pending, leased: undelivered; parked: given up)",
)
NOTIFICATION_LATENCY = MetricSpec(
    "shop_notification_latency_seconds",
    "histogram",
    ("service", "type"),
    "From an order's status change to its e-mail accepted by the SMTP server (observed at the ack)",
    NOTIFICATION_BUCKETS_S,
)

# Client side, exported by the load generator while it runs.
LOAD_REQUESTS = MetricSpec(
    "load_requests_total",
    "counter",
    ("name", "method", "outcome"),
    "Requests made by the load generator; outcome is ok or fail",
)
LOAD_DURATION = MetricSpec(
    "load_request_duration_seconds",
    "histogram",
    ("name", "method"),
    "Latency seen by the load generator (the user's side)",
)
LOAD_USERS = MetricSpec("load_users", "gauge", (), "Simulated users now running")
# Locust warns when its own process passes 90 % of a core: a CPU-bound load generator inflates the latency
# it measures. The verdicts' noise guard reads this (slo/noise.py).
LOAD_CPU = MetricSpec(
    "load_generator_cpu_ratio",
    "gauge",
    (),
    "CPU used by the load generator process, as a share of one core (1.0 = one core busy)",
)

# Exported by the local supervisor (process faults, restarts, experiment phases for annotations).
EXPERIMENT_PHASE = MetricSpec(
    "testbed_experiment_phase",
    "gauge",
    ("experiment", "phase"),
    "1 while an experiment phase (warmup, baseline, fault, recovery) is running",
)
PROCESS_RESTARTS = MetricSpec(
    "testbed_process_restarts_total",
    "counter",
    ("service", "replica"),
    "Restarts by the supervisor",
)

ALL_METRICS: tuple[MetricSpec, ...] = (
    HTTP_REQUESTS,
    HTTP_DURATION,
    HTTP_INFLIGHT,
    CLIENT_REQUESTS,
    CLIENT_DURATION,
    CLIENT_RETRIES,
    BREAKER_STATE,
    FAULTS_ACTIVE,
    ORDERS,
    PAYMENTS,
    NOTIFICATION_BACKLOG,
    NOTIFICATION_LATENCY,
    LOAD_REQUESTS,
    LOAD_DURATION,
    LOAD_USERS,
    LOAD_CPU,
    EXPERIMENT_PHASE,
    PROCESS_RESTARTS,
)

# Prometheus scrape job names.
SHOP_JOB = "shop"
LOAD_JOB = "load"
TESTBED_JOB = "testbed"
NODE_JOB = "node"  # node_exporter: the host the stack runs on

# Traffic from the load generator carries W3C baggage `synthetic=true`.
SYNTHETIC_BAGGAGE_KEY = "synthetic"

# --------------------------------------------------------------------------------------------------
# Grafana datasources (fixed UIDs, used by dashboards/ and deploy/)
# --------------------------------------------------------------------------------------------------

DATASOURCE_UIDS: dict[str, str] = {
    "prometheus": "shop-prometheus",
    "loki": "shop-loki",
    "jaeger": "shop-jaeger",
}

# --------------------------------------------------------------------------------------------------
# Ports with the user's offset applied
# --------------------------------------------------------------------------------------------------


def port_offset() -> int:
    """TESTBED_PORT_OFFSET shifts every default port (tests use it to stay clear of a user's stack)."""
    raw = os.environ.get("TESTBED_PORT_OFFSET", "0")
    try:
        offset = int(raw)
    except ValueError as exc:
        raise ValueError(f"TESTBED_PORT_OFFSET must be an integer, got {raw!r}") from exc
    if not 0 <= offset <= 30_000:
        raise ValueError(f"TESTBED_PORT_OFFSET must be between 0 and 30000, got {offset}")
    return offset


def app_port(service: str, replica: int = 0, offset: int | None = None) -> int:
    if service not in SERVICES:
        raise KeyError(f"unknown service {service!r}; known: {', '.join(SERVICE_NAMES)}")
    if not 0 <= replica < MAX_REPLICAS:
        raise ValueError(f"replica index must be in [0, {MAX_REPLICAS - 1}], got {replica}")
    shift = port_offset() if offset is None else offset
    return SERVICES[service].port + REPLICA_PORT_STRIDE * replica + shift


def admin_port(service: str, replica: int = 0, offset: int | None = None) -> int:
    return app_port(service, replica, offset) + ADMIN_PORT_OFFSET


# --------------------------------------------------------------------------------------------------
# The stack descriptor: where a running stack can be reached. Written by the runtime target that
# brought the stack up (local or kind) to <state dir>/stack.json; read by the chaos extension, the
# load generator and the CLI, so that nothing below the edge has to ask which target it is on.
# --------------------------------------------------------------------------------------------------


@dataclass
class ReplicaEndpoint:
    service: str
    replica: int
    url: str  # application base URL
    admin_url: str | None = None  # fault/admin API (None when only reachable through the controller)
    pid: int | None = None


@dataclass
class StackDescriptor:
    target: Literal["local", "kind"]
    gateway_url: str
    prometheus_url: str
    control_url: str  # fault controller (+ process control on local)
    token_file: str  # bearer token for control_url and the admin APIs (0600)
    replicas: list[ReplicaEndpoint] = field(default_factory=list)
    jaeger_url: str | None = None
    loki_url: str | None = None
    grafana_url: str | None = None
    load_metrics_port: int = LOAD_METRICS_PORT
    state_dir: str = ""
    traces_dir: str | None = None  # OTLP-JSON lines (kept besides a user's --otlp-endpoint unless told not)
    otlp_endpoint: str | None = None  # `testbed up --otlp-endpoint`: every service also sends traces there
    logs_dir: str | None = None  # JSON log lines of every process
    kubernetes_context: str | None = None
    kubernetes_namespace: str | None = None
    # False when this stack's Prometheus does not scrape the load generator's exporter (kind: the load runs
    # on the host, Prometheus in the cluster), so the client-side SLOs (`source: client`) cannot be judged
    client_metrics_scraped: bool = True
    alertmanager_url: str | None = None
    # JSON lines, one per notification Alertmanager delivered to the testbed's webhook receiver
    alerts_file: str | None = None
    node_exporter_url: str | None = None  # None: the host is not measured (node_exporter not installed)

    FILE_NAME = "stack.json"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    def write(self, state_dir: Path) -> Path:
        path = Path(state_dir) / self.FILE_NAME
        write_text_atomic(path, self.to_json())  # readers never see half a file
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StackDescriptor:
        data = dict(data)
        data["replicas"] = [ReplicaEndpoint(**r) for r in data.get("replicas", [])]
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def load(cls, state_dir: Path | None = None) -> StackDescriptor:
        path = Path(state_dir or default_state_dir()) / cls.FILE_NAME
        if not path.exists():
            raise FileNotFoundError(
                f"no running stack: {path} does not exist. Start one with `make up` (or `testbed up`)."
            )
        return cls.from_dict(json.loads(path.read_text()))

    def token(self) -> str:
        return Path(self.token_file).read_text().strip()

    def replicas_of(self, service: str) -> list[ReplicaEndpoint]:
        return [r for r in self.replicas if r.service == service]


def default_state_dir() -> Path:
    """TESTBED_STATE_DIR, else `.testbed/` in the current directory."""
    return Path(os.environ.get("TESTBED_STATE_DIR", ".testbed")).resolve()
