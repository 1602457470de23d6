"""Experiment timeline: phases, faults, restarts and SLO alerts as annotations over what the user saw
(the load generator's client-side view) next to what the servers saw, plus errors and resilience."""

from __future__ import annotations

from dashboards import promql as q
from dashboards.common import GATEWAY, NO_EXPERIMENT, NO_LOAD, NO_STACK, NO_TRAFFIC, SHOP, TAG, trace_links
from dashboards.grafana import (
    Fields,
    Json,
    Panel,
    Row,
    ValueMapping,
    dashboard,
    dashboard_links,
    prom,
    prom_annotation,
    query_variable,
    state_timeline,
    timeseries,
)
from dashboards.overview import BREAKER_MAPPINGS, FAILED_CALL
from dashboards.slos import ALERT, ALERT_LABELS, CURRENT_BURN, SLO_LABELS
from sample_shop.topology import (
    BREAKER_STATE,
    CLIENT_REQUESTS,
    EXPERIMENT_PHASE,
    FAULTS_ACTIVE,
    HTTP_DURATION,
    HTTP_REQUESTS,
    LOAD_DURATION,
    LOAD_REQUESTS,
    PROCESS_RESTARTS,
)

UID = "experiment-timeline"
SERVICE = q.regex("$service")
ROUTE = q.regex("$route")
PHASE_MAPPINGS = (ValueMapping(0, "-", "transparent"), ValueMapping(1, "running", "blue"))


def annotations() -> list[Json]:
    restarts = q.sum_by(["service", "replica"], f"changes({q.sel(PROCESS_RESTARTS)}[5s])")
    return [
        prom_annotation(
            "Experiment phases",
            f"max by (experiment, phase) ({q.sel(EXPERIMENT_PHASE)})",
            title="{{experiment}}: {{phase}}",
            tags=("experiment", "phase"),
            color="blue",
        ),
        prom_annotation(
            "Faults",
            q.sum_by(["service", "kind"], q.sel(FAULTS_ACTIVE)),
            title="fault {{kind}} on {{service}}",
            tags=("service", "kind"),
            color="red",
        ),
        prom_annotation(
            "Process restarts",
            restarts,
            title="restart of {{service}}-{{replica}}",
            tags=("service", "replica"),
            color="orange",
        ),
        prom_annotation(
            "SLO alerts",
            q.max_by(
                ["slo", "severity"], q.raw_sel("ALERTS", ALERT_LABELS, alertname=ALERT, alertstate="firing")
            ),
            title="{{slo}} burning ({{severity}})",
            tags=("slo", "severity"),
            color="purple",
        ),
    ]


def _experiment() -> list[Panel | Row]:
    return [
        Row("Experiment"),
        state_timeline(
            "Experiment phases",
            "Warm-up, baseline, fault and recovery of each experiment, as the orchestrator reported them "
            "to the control API (testbed_experiment_phase). The same phases are annotations on every panel.",
            [prom(f"max by (experiment, phase) ({q.sel(EXPERIMENT_PHASE)})", "{{experiment}} {{phase}}")],
            Fields(unit="short", mappings=PHASE_MAPPINGS, color_mode="thresholds", no_value=NO_EXPERIMENT),
            w=24,
            h=6,
        ),
        timeseries(
            "Active faults by kind",
            "Replicas with an application fault active, per kind (latency, errors, CPU, memory, ...); 0 "
            "when none. Process faults (kill, pause, restart) show as replicas down and restarts.",
            [prom(q.sum_by(["kind"], q.sel(FAULTS_ACTIVE, service=SERVICE)), "{{kind}}")],
            Fields(unit="short", decimals=0, no_value=NO_STACK),
            w=8,
        ),
        timeseries(
            "Active faults by service",
            "Application faults active per service (summed over replicas and kinds); 0 when none.",
            [prom(q.sum_by(["service"], q.sel(FAULTS_ACTIVE, service=SERVICE)), "{{service}}")],
            Fields(unit="short", decimals=0, no_value=NO_STACK),
            w=8,
        ),
        timeseries(
            "Replicas up",
            "Replicas answering scrapes per service: a killed or paused replica drops out within a second.",
            [prom(q.sum_by(["service"], q.raw_sel("up", job=SHOP, service=SERVICE)), "{{service}}")],
            Fields(unit="short", decimals=0, min=0, no_value=NO_STACK),
            w=8,
        ),
        timeseries(
            "SLO burn rate now",
            "Burn rate of every SLO over its shortest page window (see the SLO dashboard).",
            [prom(q.raw_sel(CURRENT_BURN, SLO_LABELS), "{{slo}}")],
            Fields(unit="short", no_value=NO_STACK),
            w=8,
        ),
    ]


def _client_vs_server() -> list[Panel | Row]:
    client_buckets = q.sel(LOAD_DURATION, "_bucket", name=ROUTE)
    server_buckets = q.sel(HTTP_DURATION, "_bucket", service=GATEWAY, route=ROUTE)
    client = q.sel(LOAD_REQUESTS, name=ROUTE)
    server = q.sel(HTTP_REQUESTS, service=GATEWAY, route=ROUTE)
    return [
        Row("What users saw and what the servers saw"),
        timeseries(
            "Latency: client side vs server side",
            f"p95 and p99 as the load generator measured them (network, queueing and client included) "
            f"and as the {GATEWAY} measured them. A gap that opens during a fault is time users lost "
            f"outside the server. Click a point for the {GATEWAY}'s traces.",
            [
                prom(q.quantile(0.95, [], client_buckets), "client p95"),
                prom(q.quantile(0.99, [], client_buckets), "client p99"),
                prom(q.quantile(0.95, [], server_buckets), f"{GATEWAY} p95"),
                prom(q.quantile(0.99, [], server_buckets), f"{GATEWAY} p99", exemplar=True),
            ],
            Fields(unit="s", no_value=NO_LOAD, links=trace_links(GATEWAY)),
        ),
        timeseries(
            "Request rate: client side vs server side",
            f"Requests per second sent by the load generator and served by the {GATEWAY}.",
            [
                prom(q.sum_rate([], client), "client sent"),
                prom(q.sum_rate([], server), f"{GATEWAY} served"),
            ],
            Fields(unit="reqps", no_value=NO_LOAD),
        ),
        timeseries(
            "Errors: client failures vs server 5xx",
            f"Requests per second the load generator counted as failed (wrong status, bad body, no answer) "
            f"and responses the {GATEWAY} answered with 5xx; 0 when none.",
            [
                prom(
                    q.or_zero(q.sum_rate([], q.sel(LOAD_REQUESTS, name=ROUTE, outcome="fail"))),
                    "client failures",
                ),
                prom(
                    q.or_zero(
                        q.sum_rate([], q.sel(HTTP_REQUESTS, service=GATEWAY, route=ROUTE, status_class="5xx"))
                    ),
                    f"{GATEWAY} 5xx",
                ),
            ],
            Fields(unit="reqps", no_value=NO_LOAD),
        ),
        timeseries(
            "5xx per service",
            "5xx responses per second of every service (0 when none): where an error starts and how far "
            "it travels up the call chain.",
            [
                prom(
                    q.zero_filled(
                        ["service"],
                        q.sum_rate(["service"], q.sel(HTTP_REQUESTS, service=SERVICE, status_class="5xx")),
                        q.sum_rate(["service"], q.sel(HTTP_REQUESTS, service=SERVICE)),
                    ),
                    "{{service}}",
                )
            ],
            Fields(unit="reqps", no_value=NO_TRAFFIC),
        ),
    ]


def _resilience() -> list[Panel | Row]:
    edge = ["service", "peer"]
    return [
        Row("Resilience"),
        state_timeline(
            "Circuit breakers",
            "Outbound circuit breakers: closed, half-open or open.",
            [
                prom(
                    f"max by (service, peer) ({q.sel(BREAKER_STATE, service=SERVICE)})",
                    "{{service}} → {{peer}}",
                )
            ],
            Fields(unit="short", mappings=BREAKER_MAPPINGS, color_mode="thresholds", no_value=NO_STACK),
        ),
        timeseries(
            "Failed outbound calls by outcome",
            "Timeouts, connection errors, 5xx answers and calls refused by an open breaker, per second.",
            [
                prom(
                    q.zero_filled(
                        edge,
                        q.sum_rate(
                            [*edge, "outcome"], q.sel(CLIENT_REQUESTS, service=SERVICE, outcome=FAILED_CALL)
                        ),
                        q.sum_rate(edge, q.sel(CLIENT_REQUESTS, service=SERVICE)),
                    ),
                    "{{service}} → {{peer}} {{outcome}}",
                )
            ],
            Fields(unit="reqps", no_value=NO_TRAFFIC),
        ),
    ]


def build() -> Json:
    return dashboard(
        uid=UID,
        title="Experiment timeline",
        description="Phases, faults, restarts and SLO alerts as annotations over client-side and "
        "server-side latency, errors and resilience. Open it while `make experiment` runs.",
        tags=[TAG, "chaos", "experiment"],
        items=[*_experiment(), *_client_vs_server(), *_resilience()],
        variables=[
            query_variable(
                "service",
                "Service",
                f"label_values({q.sel(HTTP_REQUESTS)}, service)",
                description="Services for the fault, error and breaker panels",
            ),
            query_variable(
                "route",
                "Gateway route",
                f"label_values({q.sel(HTTP_REQUESTS, service=GATEWAY)}, route)",
                description=f"Public routes of the {GATEWAY} (the load generator's request names)",
            ),
        ],
        annotations=annotations(),
        links=dashboard_links(TAG),
    )
