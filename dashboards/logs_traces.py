"""Logs (Loki) and traces (Jaeger) of one service, with the links between them: a latency point opens the
service's traces, a log line's trace_id opens its trace (Loki derived field), a span opens its logs
(Jaeger tracesToLogs on the trace id). Both datasources are provisioned by dashboards/provisioning.

Loki and Jaeger run on kind (or locally when their binaries are on PATH); without them only the
Prometheus panels here have data, and the logs and spans stay in the state folder (docs/dashboards.md)."""

from __future__ import annotations

from dashboards import promql as q
from dashboards.common import NO_TRAFFIC, TAG, trace_links
from dashboards.grafana import (
    Fields,
    Json,
    Panel,
    Row,
    custom_variable,
    dashboard,
    dashboard_links,
    jaeger_search,
    jaeger_trace,
    logs,
    loki,
    prom,
    text,
    textbox_variable,
    timeseries,
    trace_search,
    traces,
)
from dashboards.overview import QUANTILES
from sample_shop.topology import HTTP_DURATION, HTTP_REQUESTS, SERVICE_NAMES

UID = "logs-traces"
# Log streams carry `service` everywhere: testbed/runtime/logship.py locally, promtail on kind.
STREAM = '{service="$service"}'
# A line filter works whether trace_id is a JSON field (local) or structured metadata (kind); an empty
# $trace_id matches every line.
LINES = STREAM + ' |= "$trace_id"'
WARNINGS = 'level=~"warning|error"'

HELP = """\
**Logs and traces of `$service`.** Pick a service; paste a trace id into *Trace id* to narrow the logs
to one request and open its trace. Click a point of the latency panel to search the service's traces,
a `trace_id` in a log line to open the trace, and a span's log icon to see its logs.

Loki and Jaeger run on kind (`make deploy`). On a local stack without them the logs are JSON lines in
`.testbed/logs/<service>-<replica>.log` and the spans OTLP-JSON lines in `.testbed/traces/`;
`runs/<id>/logs/` and `runs/<id>/traces/` keep those of each experiment."""


def _metrics() -> list[Panel | Row]:
    service = q.Match("=", "$service")
    return [
        timeseries(
            "Latency of $service (click a point for its traces)",
            "Server-side p50/p95/p99 of the service. Each point links to the service's traces in Jaeger, "
            "all of them or only those slower than the point.",
            [
                prom(
                    q.quantile(qt, ["service"], q.sel(HTTP_DURATION, "_bucket", service=service)),
                    f"{{{{service}}}} p{round(qt * 100)}",
                    exemplar=qt == 0.99,
                )
                for qt in QUANTILES
            ],
            Fields(unit="s", no_value=NO_TRAFFIC, links=trace_links()),
        ),
        timeseries(
            "Responses of $service by status class",
            "Responses per second by status class.",
            [prom(q.sum_rate(["status_class"], q.sel(HTTP_REQUESTS, service=service)), "{{status_class}}")],
            Fields(unit="reqps", no_value=NO_TRAFFIC),
            stacked=True,
        ),
    ]


def _logs() -> list[Panel | Row]:
    no_loki = "No log lines: is Loki provisioned and running (kind), and does $trace_id match a request?"
    return [
        Row("Logs (Loki)"),
        timeseries(
            "Log lines per second by level",
            "Log lines of the service per level (JSON field `level`; a stream label on kind).",
            [loki(f"sum by (level) (count_over_time({LINES} | json [$__interval]))", "{{level}}")],
            Fields(unit="short", no_value=no_loki),
            stacked=True,
        ),
        timeseries(
            "Warnings and errors per second",
            "Log lines at level warning or error: fault starts and ends are logged at warning.",
            [
                loki(
                    f"sum by (level) (count_over_time({LINES} | json | {WARNINGS} [$__interval]))",
                    "{{level}}",
                )
            ],
            Fields(unit="short", no_value=no_loki),
        ),
        logs(
            "Log lines of $service",
            "JSON log lines, newest first. A line's trace_id links to the trace in Jaeger.",
            [loki(LINES)],
        ),
    ]


def _traces() -> list[Panel | Row]:
    return [
        Row("Traces (Jaeger)"),
        trace_search(
            "Recent traces of $service",
            "The latest traces whose spans include the service; click one to open it.",
            [jaeger_search("$service")],
            Fields(no_value="No traces: is Jaeger provisioned and running (kind), and is there traffic?"),
        ),
        traces(
            "Trace $trace_id",
            "The trace pasted into Trace id; each span links to its log lines in Loki.",
            [jaeger_trace("$trace_id")],
        ),
    ]


def build() -> Json:
    return dashboard(
        uid=UID,
        title="Logs and traces",
        description="Logs (Loki) and traces (Jaeger) of one service, linked both ways, with the service's "
        "latency as the way in.",
        tags=[TAG, "logs", "traces"],
        items=[text("How to use", HELP, h=5), *_metrics(), *_logs(), *_traces()],
        variables=[
            custom_variable("service", "Service", SERVICE_NAMES, description="Shop service (one at a time)"),
            textbox_variable("trace_id", "Trace id", description="32 hex digits; empty for every line"),
        ],
        links=dashboard_links(TAG),
    )
