"""Every Prometheus query of every dashboard, as Grafana would send it, against the session stack's real
Prometheus while the real load generator runs: each must be valid and return data (a finite value)
within seconds of the load starting, for the default selections (All) and for a concrete value of each
variable. Also: the query variables resolve to values Prometheus knows, annotations run (the experiment
phase posted to the control API shows up), and the exemplar queries are accepted.

The Loki and Jaeger panels cannot have data here (no binaries on this machine); test_dashboard_files.py
lists them exactly and docs/dashboards.md explains them."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from dashboards import build
from dashboards import queries as dq
from dashboards.common import GATEWAY
from load.control import LoadHandle, current_load, start_load, stop_load
from sample_shop import topology
from slo.prom import Prometheus
from testbed.runtime.local import LocalTarget

pytestmark = [pytest.mark.stack, pytest.mark.slow]

DASHBOARD_RANGE_S = 15 * 60  # the dashboards' default time range (now-15m)
DATA_DEADLINE_S = 30.0  # every panel must show data this soon after the load starts
EXPERIMENT = "dashboards-live-test"
# A realistic pick for each variable when not All: the busiest value where there is one.
PREFERRED = {"service": GATEWAY, "route": "/api/products", "name": "/api/products", "journey": "browse"}


@dataclass
class Loaded:
    stack: topology.StackDescriptor
    started: float  # unix seconds when the load began
    handle: LoadHandle


def committed_dashboards() -> list[dict[str, Any]]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(build.DASHBOARDS_DIR.glob("*.json"))]


@pytest.fixture(scope="module")
def loaded(
    stack: topology.StackDescriptor,
    stack_target: LocalTarget,
    control: httpx.Client,
    wait_until: Callable[..., Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Loaded]:
    """A phase posted like an experiment would, and a steady load for the module (bounded in time and
    stopped at the end, also on failure), once every replica is up (an earlier test may have killed one)."""
    wait_until(lambda: stack_target.status().healthy, timeout=60, message="every replica of the stack ready")
    leftover = current_load(stack.state_dir)
    if leftover is not None:  # another test's run must not be mistaken for ours
        stop_load(leftover, state_dir=stack.state_dir)
    phase = {"experiment": EXPERIMENT, "phase": "baseline"}
    control.post("/phases", json={**phase, "state": "start"}).raise_for_status()
    try:
        started = time.time()
        handle = start_load(
            "steady", users=5, duration="150s", think_time_factor=0.5,
            out_dir=tmp_path_factory.mktemp("dashboards-load"), state_dir=stack.state_dir,
        )  # fmt: skip
        try:
            yield Loaded(stack, started, handle)
        finally:
            stop_load(handle, state_dir=stack.state_dir)
    finally:
        control.post("/phases", json={**phase, "state": "end"}).raise_for_status()


@pytest.fixture(scope="module")
def prom(stack: topology.StackDescriptor) -> Iterator[Prometheus]:
    with Prometheus(stack.prometheus_url, timeout_s=15) as client:
        yield client


def time_vars() -> dq.TimeVariables:
    return dq.time_variables(DASHBOARD_RANGE_S, topology.SCRAPE_INTERVAL_S)


def finite_values(prom: Prometheus, query: dq.Query, expr: str, since: float) -> int:
    """How many finite values the query returns, run as Grafana runs it (instant at now, or a range
    from `since` to now at the panel's step)."""
    now = time.time()
    if query.instant:
        return sum(math.isfinite(v) for _, v in prom.instant(expr, at=now))
    series = prom.range(expr, since, now, time_vars().interval_s)
    return sum(int(sum(math.isfinite(v) for v in s.values)) for s in series)


def panel_queries(dashboard: dict[str, Any]) -> list[dq.Query]:
    return [q for q in dq.queries(dashboard) if q.kind == "panel" and q.datasource == "prometheus"]


def resolve_variables(prom_url: str, dashboard: dict[str, Any]) -> dict[str, list[str]]:
    """Each query variable's values, as Grafana asks for label_values(selector, label): the label's
    values among the series the selector matches over the dashboard's range. Variables resolve in
    order, each with the defaults of those before it (All)."""
    resolved: dict[str, list[str]] = {}
    end = time.time()
    for variable in dq.variables(dashboard):
        if variable["type"] != "query":
            continue
        lv = dq.parse_label_values(dq.variable_query(variable))
        selector = dq.interpolate(lv.selector, dashboard, {}, time_vars())
        response = httpx.get(
            f"{prom_url}/api/v1/label/{lv.label}/values",
            params={"match[]": selector, "start": end - DASHBOARD_RANGE_S, "end": end},
            timeout=10,
        )
        assert response.status_code == 200, f"{dashboard['uid']} ${variable['name']}: {response.text}"
        resolved[variable["name"]] = list(response.json()["data"])
    return resolved


def preferred_first(resolved: dict[str, list[str]]) -> dict[str, list[str]]:
    ordered = {}
    for name, values in resolved.items():
        pick = PREFERRED.get(name)
        ordered[name] = sorted(values, key=lambda v: v != pick)
    return ordered


def wait_for_data(
    prom: Prometheus, pending: dict[str, tuple[dq.Query, str]], loaded: Loaded
) -> tuple[dict[str, float], dict[str, tuple[dq.Query, str]]]:
    """Run every query until it has data or DATA_DEADLINE_S after the load started. Returns the
    seconds after load start at which each query first had data, and the queries that never had."""
    pending = dict(pending)
    first_data: dict[str, float] = {}
    deadline = loaded.started + DATA_DEADLINE_S
    while pending:
        for key, (q, expr) in list(pending.items()):
            if finite_values(prom, q, expr, since=loaded.started - 1):
                first_data[key] = time.time() - loaded.started
                del pending[key]
        if not pending or time.time() > deadline:
            break
        time.sleep(1.0)
    return first_data, pending


def test_every_panel_query_has_data_within_seconds_of_load_start(loaded: Loaded, prom: Prometheus) -> None:
    queries: dict[str, tuple[dq.Query, str]] = {}
    for dashboard in committed_dashboards():
        for q in panel_queries(dashboard):
            queries[q.where] = (q, dq.interpolate(q.expr, dashboard, {}, time_vars()))
    assert len(queries) > 60, "fewer Prometheus panel queries than the dashboards have"
    first_data, missing = wait_for_data(prom, queries, loaded)
    listing = "\n".join(f"  {where}: {expr}" for where, (_, expr) in missing.items())
    assert not missing, f"no data {DATA_DEADLINE_S:g} s after the load started:\n{listing}"
    slowest = max(first_data, key=first_data.__getitem__)
    print(f"all {len(first_data)} panel queries had data; last after {first_data[slowest]:.1f} s: {slowest}")


def test_variables_resolve_to_values_prometheus_knows(loaded: Loaded) -> None:
    by_uid = {d["uid"]: resolve_variables(loaded.stack.prometheus_url, d) for d in committed_dashboards()}
    for uid, resolved in by_uid.items():
        for name, values in resolved.items():
            assert values, f"{uid}: ${name} has no values"
    overview = by_uid["shop-overview"]
    assert GATEWAY in overview["service"] and set(overview["service"]) <= set(topology.SERVICE_NAMES)
    journey_routes = {route for routes in topology.JOURNEY_ROUTES.values() for _, route in routes}
    assert set(by_uid["experiment-timeline"]["route"]) & journey_routes
    assert set(by_uid["load-generator"]["name"]) & journey_routes
    assert set(by_uid["shop-slos"]["journey"]) <= set(topology.JOURNEY_ROUTES)


def test_panel_queries_have_data_for_a_concrete_value_of_each_variable(
    loaded: Loaded, prom: Prometheus
) -> None:
    queries: dict[str, tuple[dq.Query, str]] = {}
    for dashboard in committed_dashboards():
        resolved = preferred_first(resolve_variables(loaded.stack.prometheus_url, dashboard))
        for selection in dq.selection_sets(dashboard, resolved)[1:]:  # the defaults: the test above
            for q in panel_queries(dashboard):
                if set(selection) & dq.referenced(q.expr):
                    expr = dq.interpolate(q.expr, dashboard, selection, time_vars())
                    queries[f"{q.where} with {selection}"] = (q, expr)
    assert len(queries) > 40
    _, missing = wait_for_data(prom, queries, loaded)
    assert not missing, "no data:\n" + "\n".join(f"  {k}: {expr}" for k, (_, expr) in missing.items())


def test_annotations_run_and_show_the_posted_phase(loaded: Loaded, prom: Prometheus) -> None:
    """Annotations as Grafana's Prometheus annotation support runs them: a range query at the
    annotation's step; every sample > 0 becomes an event."""
    (timeline,) = [d for d in committed_dashboards() if d["uid"] == "experiment-timeline"]
    events: dict[str, list[dict[str, str]]] = {}
    for annotation in timeline["annotations"]["list"][1:]:
        step = float(annotation["step"].removesuffix("s"))
        expr = dq.interpolate(annotation["expr"], timeline, {}, time_vars())
        series = prom.range(expr, loaded.started - 5, time.time(), step)  # raises on an invalid query
        events[annotation["name"]] = [s.labels for s in series if (s.values > 0).any()]
        if annotation["name"] in ("Faults", "Process restarts"):
            assert series, f"{annotation['name']}: no series at all (expected zeros when nothing happens)"
    assert {"experiment": EXPERIMENT, "phase": "baseline"} in events["Experiment phases"]


def test_exemplar_queries_are_accepted(loaded: Loaded) -> None:
    end = time.time()
    exemplar_queries = [
        (q, d) for d in committed_dashboards() for q in panel_queries(d) if q.exemplar
    ]  # fmt: skip
    assert exemplar_queries
    for q, dashboard in exemplar_queries:
        response = httpx.get(
            f"{loaded.stack.prometheus_url}/api/v1/query_exemplars",
            params={
                "query": dq.interpolate(q.expr, dashboard, {}, time_vars()),
                "start": end - DASHBOARD_RANGE_S,
                "end": end,
            },
            timeout=10,
        )
        assert response.status_code == 200 and response.json()["status"] == "success", q.where
