"""PromQL the experiment collects besides the SLOs' own series (slo.collect.queries_for): what the report's
plots need, per journey, on the client side (the load generator: what shoppers saw) and the server side
(the gateway), plus faults, circuit breakers, users, restarts and the phase gauge. Pure: names in, text out.

Journeys come from `topology.JOURNEY_ROUTES`; each series gets a `journey` label by route (requests that
belong to no journey, such as registering, are `other`)."""

from __future__ import annotations

from dataclasses import dataclass

from sample_shop import topology
from slo import promql
from slo.collect import NamedQuery

RATE_WINDOW = "10s"  # 10 scrapes: smooth enough to read, short enough to show a fault's edges
QUANTILES = (0.5, 0.95, 0.99)
OTHER_JOURNEY = "other"
PLOT_PREFIX = "plot"


@dataclass(frozen=True)
class Side:
    """One side of the measurements: which metrics, which label holds the route, which requests failed."""

    name: str  # client | server
    requests: str  # counter of requests
    duration_bucket: str  # histogram buckets
    route_label: str
    scope: str  # matchers every selector of this side carries
    failed: str  # matcher of failed requests


CLIENT = Side(
    "client",
    topology.LOAD_REQUESTS.name,
    f"{topology.LOAD_DURATION.name}_bucket",
    "name",
    "",
    'outcome="fail"',
)
SERVER = Side(
    "server",
    topology.HTTP_REQUESTS.name,
    f"{topology.HTTP_DURATION.name}_bucket",
    "route",
    'service="gateway"',
    'status_class="5xx"',
)
SIDES = (CLIENT, SERVER)


def journey_regex(journey: str) -> str:
    """Route templates of a journey as an RE2 alternation (braces of `{product_id}` are literal in RE2)."""
    paths = sorted({path for _, path in topology.JOURNEY_ROUTES[journey]})
    return "|".join(path.replace(".", "\\\\.") for path in paths)


def with_journey(expr: str, route_label: str) -> str:
    """Wrap `expr` so each series carries `journey` (label_replace per journey, `other` for the rest)."""
    out = f'label_replace({expr}, "journey", "{OTHER_JOURNEY}", "{route_label}", ".*")'
    for journey in topology.JOURNEY_ROUTES:
        out = f'label_replace({out}, "journey", "{journey}", "{route_label}", "{journey_regex(journey)}")'
    return out


def _selector(metric: str, *matchers: str) -> str:
    inner = ", ".join(m for m in matchers if m)
    return f"{metric}{{{inner}}}" if inner else metric


def name(kind: str, side: str, extra: str = "") -> str:
    """Query names in series.parquet: `plot:rps:client`, `plot:latency_p95:server`, ..."""
    return ":".join(p for p in (PLOT_PREFIX, kind + extra, side) if p)


def quantile_name(q: float, side: str) -> str:
    return name(f"latency_p{q * 100:g}", side)


def plot_queries(experiment_id: str) -> list[NamedQuery]:
    """Everything the report plots, as range queries at the scrape interval."""
    out = []
    for side in SIDES:
        rate_requests = f"rate({_selector(side.requests, side.scope)}[{RATE_WINDOW}])"
        rate_failed = f"rate({_selector(side.requests, side.scope, side.failed)}[{RATE_WINDOW}])"
        rate_buckets = f"rate({_selector(side.duration_bucket, side.scope)}[{RATE_WINDOW}])"
        out.append(
            NamedQuery(
                name("rps", side.name), f"sum by (journey) ({with_journey(rate_requests, side.route_label)})"
            )
        )
        out.append(
            NamedQuery(
                name("errors_rps", side.name),
                f"sum by (journey) ({with_journey(rate_failed, side.route_label)})",
            )
        )
        buckets = f"sum by (le, journey) ({with_journey(rate_buckets, side.route_label)})"
        out.extend(
            NamedQuery(quantile_name(q, side.name), f"histogram_quantile({q:g}, {buckets})")
            for q in QUANTILES
        )
    escaped = experiment_id.replace("\\", "\\\\").replace('"', '\\"')
    out += [
        NamedQuery(name("faults_active", ""), f"sum by (service, kind) ({topology.FAULTS_ACTIVE.name}) > 0"),
        NamedQuery(name("breaker_state", ""), f"max by (service, peer) ({topology.BREAKER_STATE.name})"),
        NamedQuery(
            name("calls_failed_rps", ""),
            f"sum by (service, peer) (rate({topology.CLIENT_REQUESTS.name}"
            f'{{outcome!~"2xx|3xx|4xx"}}[{RATE_WINDOW}])) > 0',
        ),
        NamedQuery(
            name("retries_rps", ""),
            f"sum by (service, peer) (rate({topology.CLIENT_RETRIES.name}[{RATE_WINDOW}])) > 0",
        ),
        NamedQuery(name("users", ""), f"sum({topology.LOAD_USERS.name})"),
        NamedQuery(name("restarts", ""), f"sum by (service) ({topology.PROCESS_RESTARTS.name})"),
        # the host the stack runs on (node_exporter): tells a slow service from a saturated machine
        NamedQuery(name("host_cpu_busy", ""), promql.host_cpu_busy(job=topology.NODE_JOB)),
        NamedQuery(name("host_cpu_waiting", ""), promql.host_cpu_waiting(job=topology.NODE_JOB)),
        # the load generator's own CPU (share of one core; the busiest process when there are several)
        NamedQuery(name("load_cpu", ""), f"max({topology.LOAD_CPU.name})"),
        # a plain selector: stored as raw samples, the data that phases.json must agree with
        NamedQuery(name("phase", ""), f'{topology.EXPERIMENT_PHASE.name}{{experiment="{escaped}"}}'),
    ]
    return out


# Instant queries of the live progress line (client side: what shoppers see now).
LIVE_RPS = f"sum(rate({topology.LOAD_REQUESTS.name}[{RATE_WINDOW}]))"
LIVE_FAILED_RPS = f'sum(rate({topology.LOAD_REQUESTS.name}{{outcome="fail"}}[{RATE_WINDOW}]))'
LIVE_P95 = (
    f"histogram_quantile(0.95, sum by (le) (rate({topology.LOAD_DURATION.name}_bucket[{RATE_WINDOW}])))"
)
LIVE_RETRIES = f"sum(rate({topology.CLIENT_RETRIES.name}[{RATE_WINDOW}]))"
LIVE_SLO_ERROR = "slo:sli_error:ratio_rate33s"
LIVE_SLO_BUDGET = "slo:error_budget:ratio"
LIVE_ALERTS = 'ALERTS{alertstate="firing"}'


def live_phase_query(experiment_id: str) -> str:
    escaped = experiment_id.replace("\\", "\\\\").replace('"', '\\"')
    return f'{topology.EXPERIMENT_PHASE.name}{{experiment="{escaped}"}} == 1'
