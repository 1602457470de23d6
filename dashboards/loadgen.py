"""Load generator: users, requests per second, failures and latency per request name, from the load
generator's own exporter (job `load`; its series exist only while a load run is active)."""

from __future__ import annotations

from dashboards import promql as q
from dashboards.common import NO_LOAD, TAG
from dashboards.grafana import (
    Fields,
    Json,
    Panel,
    Row,
    dashboard,
    dashboard_links,
    prom,
    query_variable,
    stat,
    table,
    timeseries,
)
from dashboards.overview import ERROR_THRESHOLDS, QUANTILES
from sample_shop.topology import LOAD_DURATION, LOAD_REQUESTS, LOAD_USERS

UID = "load-generator"
NAME = q.regex("$name")
REQUEST = ["method", "name"]
LEGEND = "{{method}} {{name}}"


def _requests(**matchers: str | q.Match) -> str:
    return q.sel(LOAD_REQUESTS, name=NAME, **matchers)


def _buckets() -> str:
    return q.sel(LOAD_DURATION, "_bucket", name=NAME)


def _failures(labels: list[str]) -> str:
    return q.zero_filled(
        labels, q.sum_rate(labels, _requests(outcome="fail")), q.sum_rate(labels, _requests())
    )


def _failure_ratio(labels: list[str]) -> str:
    return q.ratio(labels, q.sum_rate(labels, _requests(outcome="fail")), q.sum_rate(labels, _requests()))


def _now() -> list[Panel | Row]:
    return [
        Row("Now"),
        stat(
            "Users",
            "Simulated users running now.",
            [prom(q.sum_by([], q.sel(LOAD_USERS)), "users")],
            Fields(unit="short", decimals=0, no_value=NO_LOAD),
        ),
        stat(
            "Requests/s",
            "Requests per second sent by the load generator.",
            [prom(q.sum_rate([], _requests()), "req/s")],
            Fields(unit="reqps", no_value=NO_LOAD),
        ),
        stat(
            "Failures/s",
            "Requests per second the journeys judged failed; 0 when none.",
            [prom(_failures([]), "failures/s")],
            Fields(unit="reqps", no_value=NO_LOAD),
        ),
        stat(
            "Failure ratio",
            "Share of requests that failed over the rate window.",
            [prom(_failure_ratio([]), "failed")],
            Fields(unit="percentunit", decimals=2, thresholds=ERROR_THRESHOLDS, no_value=NO_LOAD),
        ),
        stat(
            "p95 latency",
            "95th percentile of the latency users saw, over every request name.",
            [prom(q.quantile(0.95, [], _buckets()), "p95")],
            Fields(unit="s", no_value=NO_LOAD),
        ),
        stat(
            "p99 latency",
            "99th percentile of the latency users saw, over every request name.",
            [prom(q.quantile(0.99, [], _buckets()), "p99")],
            Fields(unit="s", no_value=NO_LOAD),
        ),
    ]


def _per_name() -> list[Panel | Row]:
    latency = [
        timeseries(
            f"Latency p{round(qt * 100)} per request name",
            f"Client-side latency, {round(qt * 100)}th percentile, per request name (the gateway's route "
            "template, so it lines up with the server-side panels).",
            [prom(q.quantile(qt, REQUEST, _buckets()), LEGEND)],
            Fields(unit="s", no_value=NO_LOAD),
            w=8,
        )
        for qt in QUANTILES
    ]
    return [
        Row("Per request name"),
        timeseries(
            "Users",
            "Simulated users over time (the load profile's shape).",
            [prom(q.sum_by([], q.sel(LOAD_USERS)), "users")],
            Fields(unit="short", decimals=0, no_value=NO_LOAD),
            w=8,
        ),
        timeseries(
            "Requests/s per request name",
            "Requests per second per request name and method.",
            [prom(q.sum_rate(REQUEST, _requests()), LEGEND)],
            Fields(unit="reqps", no_value=NO_LOAD),
            w=8,
            stacked=True,
        ),
        timeseries(
            "Failures/s per request name",
            "Failed requests per second per request name (0 when none). Reasons are in the run's "
            "load/failures.csv.",
            [prom(_failures(REQUEST), LEGEND)],
            Fields(unit="reqps", no_value=NO_LOAD),
            w=8,
        ),
        *latency,
        table(
            "Request names now",
            "Per request name: requests/s, failure ratio and p95 latency over the last rate window.",
            [
                prom(q.sum_rate(REQUEST, _requests()), instant=True, table=True),
                prom(_failure_ratio(REQUEST), instant=True, table=True),
                prom(q.quantile(0.95, REQUEST, _buckets()), instant=True, table=True),
            ],
            Fields(unit="short", decimals=3, no_value=NO_LOAD),
            {"Value #A": "req/s", "Value #B": "failure ratio", "Value #C": "p95 (s)"},
        ),
    ]


def build() -> Json:
    return dashboard(
        uid=UID,
        title="Load generator",
        description="What the simulated users did and saw: users, requests, failures and latency per "
        "request name, from the load generator's exporter (only while a load run is active).",
        tags=[TAG, "load"],
        items=[*_now(), *_per_name()],
        variables=[
            query_variable(
                "name",
                "Request name",
                f"label_values({q.sel(LOAD_REQUESTS)}, name)",
                description="Request names (gateway route templates) the load generator used",
            )
        ],
        links=dashboard_links(TAG),
    )
