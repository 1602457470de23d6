"""Dashboard figures: the slowest panel query over one hour of data (target <= 1 s: the dashboards
refresh every 5 s), the median one, the work of one refresh of the shop overview (target <= 5 s), and
the slowest query relative to a trivial one measured in the same run.

The hour is a shop-like history of 1 s samples backfilled into a real Prometheus TSDB with promtool:
the gateway's and the load generator's series from slo/synthetic.py (the SLO benchmark's model, with a
checkout incident), plus what the other panels read, written here with the topology's names and labels:
every other service's routes and histograms (catalog with two replicas), outbound calls per dependency,
breakers, fault gauges, process metrics, `up`, orders and payments, load users, experiment phases,
restarts, and every record and alert of the SLO rules slo/rules.py generates (values modelled, not
evaluated). About 1,500 series, as many as a loaded local stack exports. Every Prometheus panel query
of every dashboard runs as Grafana would send it for a 1-hour range (step 5 s, $__rate_interval 6 s)
and must return data, so an empty (cheap) answer cannot pass for a fast one. Building the history and
starting Prometheus are not timed; the history is built once per bench run."""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import yaml

from bench.harness import BenchContext, Figure, benchmark, timed
from dashboards import build
from dashboards import queries as dq
from sample_shop import topology
from sample_shop.kit.faultspec import REPLICA_KINDS
from slo.prom import Prometheus
from slo.rules import render_rules
from slo.selector import bucket_label
from slo.spec import load_slos
from slo.synthetic import Condition, Incident, Scenario, prometheus_on, require_binaries, write_openmetrics

SLOWEST_TARGET_S = 1.0
REFRESH_TARGET_S = 5.0  # the dashboards' refresh interval
ROUTES_PER_SERVICE = 3  # internal services; the gateway's routes come from the topology's journeys
REPLICAS = {"catalog": 2}  # as the test suite's stack
BASELINE_QUERY = f'sum(up{{job="{topology.SHOP_JOB}"}})'
Series = tuple[str, dict[str, str], np.ndarray]


@dataclass(frozen=True)
class History:
    data_dir: Path
    start: float
    end: float


# --------------------------------------------------------------------------------------------------
# The history
# --------------------------------------------------------------------------------------------------


def _latency_shares(median_s: float) -> np.ndarray:
    """Share of requests at or under each bucket boundary for a log-normal latency (sigma 0.6)."""
    bounds = np.array(topology.LATENCY_BUCKETS_S)
    z = (np.log(bounds) - math.log(median_s)) / 0.6
    return np.array([0.5 * (1 + math.erf(v / math.sqrt(2))) for v in z])


def _histogram(name: str, labels: dict[str, str], count: np.ndarray, median_s: float) -> Iterator[Series]:
    for bound, share in zip(topology.LATENCY_BUCKETS_S, _latency_shares(median_s), strict=True):
        yield f"{name}_bucket", {**labels, "le": bucket_label(bound)}, np.floor(count * share)
    yield f"{name}_bucket", {**labels, "le": "+Inf"}, count
    yield f"{name}_count", labels, count
    yield f"{name}_sum", labels, count * median_s


def _replicas(service: str) -> Iterator[tuple[int, dict[str, str]]]:
    for r in range(REPLICAS.get(service, 1)):
        port = topology.app_port(service, r, offset=0)
        yield r, {"job": topology.SHOP_JOB, "instance": f"127.0.0.1:{port}", "replica": str(r)}


def _slo_series(times: np.ndarray, incident: tuple[float, float]) -> Iterator[Series]:
    """Every record and alert slo/rules.py generates, with modelled values (the checkout journey's SLOs
    burn during the incident)."""
    n = len(times)
    during = (times >= incident[0]) & (times < incident[1])
    groups = yaml.safe_load(render_rules(load_slos()))["groups"]
    for rule in (r for g in groups for r in g["rules"]):
        labels = {k: str(v) for k, v in rule["labels"].items()}
        hurt = labels.get("journey") == "checkout"
        if "alert" in rule:
            if hurt and labels["severity"] == "page":
                alert = {"alertname": rule["alert"], "alertstate": "firing", **labels}
                yield "ALERTS", alert, np.where(during, 1.0, np.nan)
            continue
        name = rule["record"]
        if name.endswith(("objective:ratio", "error_budget:ratio", "time_period:seconds")):
            value = float(str(rule["expr"]).removeprefix("vector(").removesuffix(")"))
            yield name, labels, np.full(n, value)
        elif "burn" in name or "sli_error" in name:
            base = 0.2 if "burn" in name else 0.002
            yield name, labels, np.where(during & hurt, base * 50, base)
        else:  # budget remaining
            yield name, labels, np.where(during & hurt, -1.0, 0.8)


def extra_series(times: np.ndarray, incident: tuple[float, float]) -> Iterator[Series]:
    """What the panels read beyond the gateway and load series of slo/synthetic.py."""
    n = len(times)
    steps = np.arange(1, n + 1, dtype=float)
    for spec in topology.SERVICES.values():
        for r, target in _replicas(spec.name):
            base = {"service": spec.name, **target}
            if not spec.public:  # the gateway's own routes come from slo/synthetic.py
                for i in range(ROUTES_PER_SERVICE):
                    route = {
                        "route": f"/{spec.name}/{i}",
                        "method": "GET",
                        "status_class": "2xx",
                        "synthetic": "true",
                    }
                    count = 2 * steps
                    yield topology.HTTP_REQUESTS.name, {**base, **route}, count
                    yield from _histogram(
                        topology.HTTP_DURATION.name, {**base, **route}, count, 0.01 * (i + 1)
                    )
            for peer in spec.depends_on:
                edge = {**base, "peer": peer}
                calls = 3 * steps
                yield topology.CLIENT_REQUESTS.name, {**edge, "method": "GET", "outcome": "2xx"}, calls
                yield topology.CLIENT_RETRIES.name, edge, np.floor(steps / 100)
                yield from _histogram(topology.CLIENT_DURATION.name, {**edge, "method": "GET"}, calls, 0.02)
                yield topology.BREAKER_STATE.name, edge, np.zeros(n)
            for kind in REPLICA_KINDS:
                yield topology.FAULTS_ACTIVE.name, {**base, "kind": kind}, np.zeros(n)
            yield topology.HTTP_INFLIGHT.name, base, (steps % 5)
            yield "process_cpu_seconds_total", base, 0.05 * steps
            yield "process_resident_memory_bytes", base, np.full(n, 80e6 + 1e6 * r)
            yield "up", base, np.ones(n)
            yield (
                topology.PROCESS_RESTARTS.name,
                {"service": spec.name, "replica": str(r), **_testbed()},
                np.zeros(n),
            )
    yield (
        topology.ORDERS.name,
        {"service": "orders", "outcome": "ok", **next(_replicas("orders"))[1]},
        0.3 * steps,
    )
    yield (
        topology.PAYMENTS.name,
        {"service": "payment", "outcome": "ok", **next(_replicas("payment"))[1]},
        0.3 * steps,
    )
    load = {"job": topology.LOAD_JOB, "instance": f"127.0.0.1:{topology.LOAD_METRICS_PORT}"}
    yield topology.LOAD_USERS.name, load, np.full(n, 10.0)
    quarter = n // 4
    for index, phase in enumerate(("warmup", "baseline", "fault", "recovery")):
        active = (np.arange(n) >= index * quarter) & (np.arange(n) < (index + 1) * quarter)
        labels = {"experiment": "bench", "phase": phase, **_testbed()}
        yield topology.EXPERIMENT_PHASE.name, labels, active.astype(float)
    yield from _slo_series(times, incident)


def _testbed() -> dict[str, str]:
    return {"job": topology.TESTBED_JOB, "instance": f"127.0.0.1:{topology.CONTROL_PORT}"}


def write_series(series: Iterator[Series], times: np.ndarray, out: TextIO) -> int:
    """OpenMetrics text, one family per sample name (declared `unknown`, as slo/synthetic.py does);
    NaN samples are left out (a series that is absent then). Returns the number of series."""
    by_name: dict[str, list[tuple[dict[str, str], np.ndarray]]] = {}
    for name, labels, values in series:
        by_name.setdefault(name, []).append((labels, values))
    stamps = [f"{t:.3f}" for t in times]
    count = 0
    for name, items in by_name.items():
        out.write(f"# TYPE {name} unknown\n")
        for labels, values in items:
            text = name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
            out.writelines(
                f"{text} {v:.10g} {t}\n"
                for v, t in zip(values.tolist(), stamps, strict=True)
                if not math.isnan(v)
            )
            count += 1
    out.write("# EOF\n")
    return count


def _promtool_blocks(openmetrics: Path, data: Path) -> None:
    subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(openmetrics), str(data)],
        check=True, capture_output=True, timeout=900,
    )  # fmt: skip
    openmetrics.unlink()


def history(ctx: BenchContext, duration_s: int) -> History:
    """Build (once per bench run) the backfilled TSDB of `duration_s` seconds ending two hours ago."""
    folder = ctx.workdir / f"dashboards-history-{duration_s}"
    meta = folder / "history.json"
    if meta.exists():
        saved = json.loads(meta.read_text())
        return History(folder / "tsdb", saved["start"], saved["end"])
    require_binaries()
    folder.mkdir(parents=True, exist_ok=True)
    start = float(int(time.time()) - 2 * 3600 - duration_s)
    incident = (start + duration_s / 2, start + duration_s * 3 / 4)
    scenario = Scenario(
        start=start,
        duration_s=duration_s,
        incidents=(Incident("checkout", incident[0] - start, incident[1] - start, Condition(0.3, 0.8)),),
    )
    data = folder / "tsdb"
    write_openmetrics(scenario, folder / "gateway-and-load.om")
    _promtool_blocks(folder / "gateway-and-load.om", data)
    with (folder / "rest.om").open("w") as out:
        write_series(extra_series(scenario.times, incident), scenario.times, out)
    _promtool_blocks(folder / "rest.om", data)
    end = float(scenario.times[-1])
    meta.write_text(json.dumps({"start": start, "end": end}))
    return History(data, start, end)


# --------------------------------------------------------------------------------------------------
# The queries
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    where: str
    dashboard: str
    seconds: float


def panel_queries(range_s: int) -> list[tuple[dq.Query, str]]:
    time_vars = dq.time_variables(range_s, topology.SCRAPE_INTERVAL_S)
    out = []
    for path in sorted(build.DASHBOARDS_DIR.glob("*.json")):
        dashboard: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        for q in dq.queries(dashboard):
            if q.kind == "panel" and q.datasource == "prometheus":
                out.append((q, dq.interpolate(q.expr, dashboard, {}, time_vars)))
    return out


def run_query(prom: Prometheus, query: dq.Query | None, expr: str, h: History, step_s: float) -> int:
    """Run as Grafana does (instant at the end of the range, or the range at the panel's step); returns
    the number of series."""
    if query is not None and query.instant:
        return len(prom.instant(expr, at=h.end))
    return len(prom.range(expr, h.start, h.end, step_s))


def time_query(
    prom: Prometheus, query: dq.Query | None, expr: str, h: History, step_s: float, runs: int
) -> float:
    samples = []
    for _ in range(runs):
        with timed() as elapsed:
            run_query(prom, query, expr, h, step_s)
        samples.append(elapsed())
    return statistics.median(samples)


@benchmark("dashboards.queries", repeat=3, order=70)
def panel_queries_over_an_hour(ctx: BenchContext) -> list[Figure]:
    """Every Prometheus panel query of every dashboard over one hour of 1 s data: slowest, median, one
    overview refresh, and the slowest relative to a trivial query."""
    duration_s = int(ctx.duration(full_s=3600, smoke_s=120))
    runs = 1 if ctx.smoke else 2  # per query and repeat; the harness repeats the whole benchmark 3 times
    h = history(ctx, duration_s)
    step_s = dq.time_variables(duration_s, topology.SCRAPE_INTERVAL_S).interval_s
    queries = panel_queries(duration_s)
    with prometheus_on(h.data_dir) as url, Prometheus(url, timeout_s=120) as prom:
        prom.check()
        series = int(prom.instant('count({__name__=~".+"})', at=h.end)[0][1])
        empty = [q.where for q, expr in queries if run_query(prom, q, expr, h, step_s) == 0]  # also warms up
        if empty:
            raise AssertionError("panel queries without data over the history:\n  " + "\n  ".join(empty))
        timings = [
            Timing(q.where, q.dashboard, time_query(prom, q, expr, h, step_s, runs)) for q, expr in queries
        ]
        baseline = time_query(prom, None, BASELINE_QUERY, h, step_s, runs)
    slowest = max(timings, key=lambda t: t.seconds)
    overview = sum(t.seconds for t in timings if t.dashboard == "shop-overview")
    data = f"{duration_s / 60:.0f} min of 1 s samples, {series} series, step {step_s:g} s"
    return [
        Figure("slowest panel query, 1 h of data", slowest.seconds, "s", SLOWEST_TARGET_S,
               note=f"{slowest.where}; {len(timings)} queries over {data}"),
        Figure("median panel query, 1 h of data", statistics.median(t.seconds for t in timings), "s"),
        Figure("shop overview: one refresh, all queries in sequence", overview, "s", REFRESH_TARGET_S,
               note="Grafana runs them in parallel; the sum bounds the work of one refresh"),
        Figure("slowest panel query / trivial query", slowest.seconds / baseline, "x",
               note=f"trivial query: {BASELINE_QUERY} over the same range"),
    ]  # fmt: skip
