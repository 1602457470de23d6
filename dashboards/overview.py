"""Shop overview: rate, errors and duration per service and per route; outbound calls per dependency;
circuit breakers; saturation (in-flight requests, CPU, memory, replicas up, restarts); orders and payments."""

from __future__ import annotations

from dashboards import promql as q
from dashboards.common import NO_STACK, NO_TRAFFIC, SHOP, TAG, trace_links
from dashboards.grafana import (
    Fields,
    Json,
    Panel,
    Row,
    Threshold,
    ValueMapping,
    bargauge,
    dashboard,
    dashboard_links,
    prom,
    query_variable,
    stat,
    state_timeline,
    table,
    timeseries,
)
from sample_shop.topology import (
    BREAKER_STATE,
    CLIENT_DURATION,
    CLIENT_REQUESTS,
    CLIENT_RETRIES,
    HTTP_DURATION,
    HTTP_INFLIGHT,
    HTTP_REQUESTS,
    ORDERS,
    PAYMENTS,
    PROCESS_RESTARTS,
)

UID = "shop-overview"
SERVICE = q.regex("$service")
ROUTE = q.regex("$route")
FAILED_CALL = q.regex("5xx|timeout|connection_error|circuit_open")
BREAKER_MAPPINGS = (
    ValueMapping(0, "closed", "green"),
    ValueMapping(1, "half-open", "yellow"),
    ValueMapping(2, "open", "red"),
)
QUANTILES = (0.5, 0.95, 0.99)
ERROR_THRESHOLDS = (Threshold(None, "green"), Threshold(0.01, "orange"), Threshold(0.05, "red"))


def _requests(**matchers: str | q.Match) -> str:
    return q.sel(HTTP_REQUESTS, service=SERVICE, route=ROUTE, **matchers)


def _buckets() -> str:
    return q.sel(HTTP_DURATION, "_bucket", service=SERVICE, route=ROUTE)


def _error_ratio(labels: list[str]) -> str:
    return q.ratio(
        labels,
        q.sum_rate(labels, _requests(status_class="5xx")),
        q.sum_rate(labels, _requests()),
    )


def _golden_signals() -> list[Panel | Row]:
    per_service = ["service"]
    latency = [
        timeseries(
            f"Latency p{round(qt * 100)} per service",
            f"Server-side request duration, {round(qt * 100)}th percentile over the rate window, from the "
            "shop_http_request_duration_seconds histogram. Click a point to open the service's traces "
            "in Jaeger (all of them, or only those slower than the point).",
            [prom(q.quantile(qt, per_service, _buckets()), "{{service}}", exemplar=qt == 0.99)],
            Fields(unit="s", no_value=NO_TRAFFIC, links=trace_links()),
            w=8,
        )
        for qt in QUANTILES
    ]
    return [
        Row("Golden signals per service"),
        stat(
            "Requests/s",
            "Requests served per second by the selected services (every replica, every route).",
            [prom(q.or_zero(q.sum_rate([], _requests())), "req/s")],
            Fields(unit="reqps", no_value=NO_STACK),
        ),
        stat(
            "5xx ratio",
            "Share of requests answered with a 5xx status over the rate window; 0 when there were none.",
            [prom(_error_ratio([]), "5xx ratio")],
            Fields(unit="percentunit", decimals=2, no_value=NO_TRAFFIC, thresholds=ERROR_THRESHOLDS),
        ),
        stat(
            "p99 latency",
            "99th percentile of the server-side duration over every selected service and route.",
            [prom(q.quantile(0.99, [], _buckets()), "p99")],
            Fields(unit="s", no_value=NO_TRAFFIC),
        ),
        stat(
            "In-flight requests",
            "Requests being served right now, summed over the selected services.",
            [prom(q.sum_by([], q.sel(HTTP_INFLIGHT, service=SERVICE)), "in flight")],
            Fields(unit="short", no_value=NO_STACK),
        ),
        stat(
            "Replicas up",
            "Shop replicas whose /metrics answered the last scrape, out of all scraped replicas.",
            [
                prom(q.sum_by([], q.raw_sel("up", job=SHOP, service=SERVICE)), "up"),
            ],
            Fields(unit="short", no_value=NO_STACK),
        ),
        stat(
            "Open circuit breakers",
            "Outbound circuit breakers of the selected services that are open now (0 is healthy).",
            [prom(q.or_zero(f"count({q.sel(BREAKER_STATE, service=SERVICE)} == 2)"), "open")],
            Fields(
                unit="short", thresholds=(Threshold(None, "green"), Threshold(1, "red")), no_value=NO_STACK
            ),
        ),
        timeseries(
            "Request rate per service",
            "Requests per second served by each service, every route and status.",
            [prom(q.sum_rate(per_service, _requests()), "{{service}}")],
            Fields(unit="reqps", no_value=NO_TRAFFIC),
            w=8,
        ),
        timeseries(
            "5xx ratio per service",
            "Share of each service's requests answered with a 5xx status (0 when it served none).",
            [prom(_error_ratio(per_service), "{{service}}")],
            Fields(unit="percentunit", min=0, no_value=NO_TRAFFIC, thresholds=ERROR_THRESHOLDS),
            w=8,
        ),
        timeseries(
            "Responses by status class",
            "Responses per second by status class over the selected services and routes.",
            [prom(q.sum_rate(["status_class"], _requests()), "{{status_class}}")],
            Fields(unit="reqps", no_value=NO_TRAFFIC),
            w=8,
            stacked=True,
        ),
        *latency,
    ]


def _per_route() -> list[Panel | Row]:
    labels = ["service", "method", "route"]
    legend = "{{service}} {{method}} {{route}}"
    return [
        Row("Per route"),
        table(
            "Routes now",
            "One row per service, method and route: request rate, 5xx ratio and p95 latency over the last "
            "rate window.",
            [
                prom(q.sum_rate(labels, _requests()), instant=True, table=True),
                prom(_error_ratio(labels), instant=True, table=True),
                prom(q.quantile(0.95, labels, _buckets()), instant=True, table=True),
            ],
            Fields(unit="short", no_value=NO_TRAFFIC),
            {"Value #A": "req/s", "Value #B": "5xx ratio", "Value #C": "p95 (s)"},
            h=9,
        ),
        timeseries(
            "Request rate per route",
            "Requests per second per route template (the route label is the template, e.g. "
            "/api/products/{product_id}, so its cardinality stays bounded).",
            [prom(q.sum_rate(labels, _requests()), legend)],
            Fields(unit="reqps", no_value=NO_TRAFFIC),
        ),
        timeseries(
            "5xx ratio per route",
            "Share of each route's requests answered with a 5xx status.",
            [prom(_error_ratio(labels), legend)],
            Fields(unit="percentunit", min=0, no_value=NO_TRAFFIC, thresholds=ERROR_THRESHOLDS),
        ),
        timeseries(
            "Latency p95 per route",
            "Server-side duration, 95th percentile per route. Click a point for the service's traces.",
            [prom(q.quantile(0.95, labels, _buckets()), legend, exemplar=True)],
            Fields(unit="s", no_value=NO_TRAFFIC, links=trace_links()),
        ),
        timeseries(
            "Latency p99 per route",
            "Server-side duration, 99th percentile per route. Click a point for the service's traces.",
            [prom(q.quantile(0.99, labels, _buckets()), legend, exemplar=True)],
            Fields(unit="s", no_value=NO_TRAFFIC, links=trace_links()),
        ),
    ]


def _dependencies() -> list[Panel | Row]:
    edge = ["service", "peer"]
    no_calls = "No outbound calls: the selected services call no other service, or there is no traffic"
    return [
        Row("Dependencies (outbound calls)"),
        timeseries(
            "Outbound calls per dependency",
            "Attempts per second from each service to each dependency (retries are separate attempts). "
            "0 when the selected services made no call.",
            [
                prom(
                    q.or_zero(q.sum_rate(edge, q.sel(CLIENT_REQUESTS, service=SERVICE))),
                    "{{service}} → {{peer}}",
                )
            ],
            Fields(unit="reqps", no_value=no_calls),
            w=8,
        ),
        timeseries(
            "Failed outbound calls by outcome",
            "Attempts per second that failed: 5xx answers, timeouts, connection errors, and calls refused "
            "by an open circuit breaker. 0 when none failed.",
            [
                prom(
                    q.or_zero(
                        q.sum_rate(
                            [*edge, "outcome"], q.sel(CLIENT_REQUESTS, service=SERVICE, outcome=FAILED_CALL)
                        )
                    ),
                    "{{service}} → {{peer}} {{outcome}}",
                )
            ],
            Fields(unit="reqps", no_value=no_calls),
            w=8,
        ),
        timeseries(
            "Retries per dependency",
            "Retries per second by the outbound client (resilient profile). 0 when none.",
            [
                prom(
                    q.or_zero(q.sum_rate(edge, q.sel(CLIENT_RETRIES, service=SERVICE))),
                    "{{service}} → {{peer}}",
                )
            ],
            Fields(unit="reqps", no_value=no_calls),
            w=8,
        ),
        timeseries(
            "Outbound latency p95 per dependency",
            "Duration of outbound calls as the caller sees them, retries included, 95th percentile. "
            "Compare with the callee's own server-side latency to see time lost on the way.",
            [
                prom(
                    q.quantile(0.95, edge, q.sel(CLIENT_DURATION, "_bucket", service=SERVICE)),
                    "{{service}} → {{peer}}",
                )
            ],
            Fields(unit="s", no_value=no_calls),
        ),
        state_timeline(
            "Circuit breakers",
            "State of each outbound circuit breaker: closed (calls pass), half-open (probing), open "
            "(calls refused at once).",
            [
                prom(
                    f"max by (service, peer) ({q.sel(BREAKER_STATE, service=SERVICE)})",
                    "{{service}} → {{peer}}",
                )
            ],
            Fields(unit="short", mappings=BREAKER_MAPPINGS, color_mode="thresholds", no_value=no_calls),
        ),
    ]


def _saturation() -> list[Panel | Row]:
    replica = ["service", "replica"]
    process = {"job": SHOP, "service": SERVICE}
    return [
        Row("Saturation"),
        timeseries(
            "In-flight requests per service",
            "Requests being served at each moment; a rising line under constant load means the service "
            "is falling behind.",
            [prom(q.sum_by(["service"], q.sel(HTTP_INFLIGHT, service=SERVICE)), "{{service}}")],
            Fields(unit="short", no_value=NO_STACK),
            w=8,
        ),
        timeseries(
            "CPU per replica",
            "CPU time used per second by each replica's process (1 = one full core).",
            [
                prom(
                    q.sum_rate(replica, q.raw_sel("process_cpu_seconds_total", **process)),
                    "{{service}}-{{replica}}",
                )
            ],
            Fields(unit="percentunit", no_value=NO_STACK),
            w=8,
        ),
        timeseries(
            "Resident memory per replica",
            "Resident set size of each replica's process.",
            [
                prom(
                    q.sum_by(replica, q.raw_sel("process_resident_memory_bytes", **process)),
                    "{{service}}-{{replica}}",
                )
            ],
            Fields(unit="bytes", no_value=NO_STACK),
            w=8,
        ),
        timeseries(
            "Replicas up per service",
            "Replicas whose /metrics answered each scrape: a killed or paused replica drops out within "
            "one scrape interval.",
            [prom(q.sum_by(["service"], q.raw_sel("up", job=SHOP, service=SERVICE)), "{{service}}")],
            Fields(unit="short", min=0, no_value=NO_STACK),
        ),
        bargauge(
            "Process restarts in range",
            "Restarts of each replica by the local supervisor over the dashboard's time range (process "
            "faults kill and restart). Counted by the local supervisor only.",
            [
                prom(
                    q.sum_by(replica, f"increase({q.sel(PROCESS_RESTARTS, service=SERVICE)}[$__range])"),
                    "{{service}}-{{replica}}",
                    instant=True,
                )
            ],
            Fields(
                unit="short",
                decimals=0,
                thresholds=(Threshold(None, "green"), Threshold(1, "orange")),
                color_mode="thresholds",
                no_value="Counted by the local supervisor only; on kind see `kubectl -n shop get pods`",
            ),
        ),
    ]


def _business() -> list[Panel | Row]:
    return [
        Row("Orders and payments"),
        timeseries(
            "Checkouts by outcome",
            "Checkouts per second by outcome, as counted by the orders service. 0 when none.",
            [prom(q.or_zero(q.sum_rate(["outcome"], q.sel(ORDERS))), "{{outcome}}")],
            Fields(unit="reqps", no_value=NO_TRAFFIC),
            stacked=True,
        ),
        timeseries(
            "Payment charges by outcome",
            "Charges per second by outcome, as counted by the payment service. 0 when none.",
            [prom(q.or_zero(q.sum_rate(["outcome"], q.sel(PAYMENTS))), "{{outcome}}")],
            Fields(unit="reqps", no_value=NO_TRAFFIC),
            stacked=True,
        ),
    ]


def build() -> Json:
    return dashboard(
        uid=UID,
        title="Shop overview",
        description="Rate, errors and duration of every shop service and route, outbound calls, circuit "
        "breakers and saturation. Prometheus only: every panel has data within seconds of load starting.",
        tags=[TAG, "shop", "red"],
        items=[*_golden_signals(), *_per_route(), *_dependencies(), *_saturation(), *_business()],
        variables=[
            query_variable(
                "service",
                "Service",
                f"label_values({q.sel(HTTP_REQUESTS)}, service)",
                description="Shop services that served requests in the time range",
            ),
            query_variable(
                "route",
                "Route",
                f"label_values({q.sel(HTTP_REQUESTS, service=SERVICE)}, route)",
                description="Route templates of the selected services",
            ),
        ],
        links=dashboard_links(TAG),
    )
