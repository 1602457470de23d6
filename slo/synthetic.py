"""Deterministic shop-like metric history for tests, benchmarks and demos.

A `Scenario` says how many requests each gateway route receives per step, and which journeys suffer
which condition (error ratio, latency) when. `write_openmetrics` renders the counters the gateway and
the load generator would have exported (names, labels and buckets from sample_shop.topology) as
OpenMetrics text with timestamps, ready for `promtool tsdb create-blocks-from openmetrics` - so a real
Prometheus can be started on a known history. `expected_counts` gives the exact good/total events
of any SLO over any window from the same model, so tests compare the gate against arithmetic.

As with prometheus_client, a 5xx (or fail) series first appears with the first such request.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx
import numpy as np
import yaml

from sample_shop import topology
from slo.maths import FloatArray
from slo.selector import bucket_label
from slo.spec import SLO


@dataclass(frozen=True)
class Condition:
    error_ratio: float = 0.0
    latency_s: float = 0.02


@dataclass(frozen=True)
class Incident:
    journey: str
    start_s: float  # seconds after the scenario start
    end_s: float
    condition: Condition


@dataclass(frozen=True)
class Scenario:
    start: float  # unix seconds of the first sample
    duration_s: int
    step_s: int = 1
    requests_per_step: int = 2  # per route
    healthy: Condition = Condition()
    incidents: tuple[Incident, ...] = ()
    buckets: tuple[float, ...] = topology.LATENCY_BUCKETS_S
    silent_journeys: tuple[str, ...] = ()  # journeys without any traffic

    @property
    def times(self) -> FloatArray:
        return self.start + self.step_s * np.arange(self.duration_s // self.step_s + 1, dtype=float)

    def condition(self, journey: str, offsets: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Error ratio and latency per step for a journey."""
        err = np.full(len(offsets), self.healthy.error_ratio)
        lat = np.full(len(offsets), self.healthy.latency_s)
        for inc in self.incidents:
            if inc.journey == journey:
                during = (offsets >= inc.start_s) & (offsets < inc.end_s)
                err[during] = inc.condition.error_ratio
                lat[during] = inc.condition.latency_s
        return err, lat


@dataclass
class RouteCounts:
    """Cumulative counters of one route at each sample time."""

    journey: str
    method: str
    route: str
    total: FloatArray
    errors: FloatArray
    under: dict[float, FloatArray] = field(default_factory=dict)  # bucket boundary -> requests <= it
    under_ok: dict[float, FloatArray] = field(default_factory=dict)


def route_counts(s: Scenario) -> list[RouteCounts]:
    offsets = s.times - s.start
    out = []
    for journey, routes in topology.JOURNEY_ROUTES.items():
        err, lat = s.condition(journey, offsets)
        n = (
            np.zeros(len(offsets))
            if journey in s.silent_journeys
            else np.full(len(offsets), s.requests_per_step)
        )
        total = np.cumsum(n)
        errors = np.floor(np.cumsum(n * err) + 1e-9)
        step_errors = np.diff(errors, prepend=0.0)
        for method, route in routes:
            rc = RouteCounts(journey, method, route, total, errors)
            for b in s.buckets:
                fast = lat <= b + 1e-12
                rc.under[b] = np.cumsum(np.where(fast, n, 0.0))
                rc.under_ok[b] = np.cumsum(np.where(fast, n - step_errors, 0.0))
            out.append(rc)
    return out


def slo_buckets(slos: Sequence[SLO]) -> tuple[float, ...]:
    """The bucket boundaries the SLOs' latency thresholds use: enough buckets for a small history."""
    return tuple(sorted({s.threshold_s for s in slos if s.threshold_s is not None}))


def _labels(pairs: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in pairs.items()) + "}"


def _write_series(
    out: TextIO, name: str, labels: dict[str, str], times: FloatArray, values: FloatArray
) -> None:
    present = np.nonzero(values > 0)[0]
    first = (
        0
        if labels.get("status_class") != "5xx" and labels.get("outcome") != "fail"
        else (present[0] if len(present) else len(values))
    )
    lab = _labels(labels)
    out.writelines(f"{name}{lab} {values[i]:.0f} {times[i]:.3f}\n" for i in range(first, len(values)))


def _families(s: Scenario) -> Iterator[tuple[str, list[tuple[str, dict[str, str], FloatArray]]]]:
    counts = route_counts(s)
    shop = {"job": topology.SHOP_JOB, "instance": f"127.0.0.1:{topology.SERVICES['gateway'].port}"}
    load = {"job": topology.LOAD_JOB, "instance": f"127.0.0.1:{topology.LOAD_METRICS_PORT}"}
    http: list[tuple[str, dict[str, str], FloatArray]] = []
    hist: list[tuple[str, dict[str, str], FloatArray]] = []
    lreq: list[tuple[str, dict[str, str], FloatArray]] = []
    lhist: list[tuple[str, dict[str, str], FloatArray]] = []
    for rc in counts:
        for status, cum, under in (
            ("2xx", rc.total - rc.errors, rc.under_ok),
            ("5xx", rc.errors, {b: rc.under[b] - rc.under_ok[b] for b in s.buckets}),
        ):
            base = {
                "service": "gateway",
                "route": rc.route,
                "method": rc.method,
                "status_class": status,
                "synthetic": "true",
                **shop,
            }
            http.append((topology.HTTP_REQUESTS.name, base, cum))
            for b in s.buckets:
                hist.append(
                    (f"{topology.HTTP_DURATION.name}_bucket", {**base, "le": bucket_label(b)}, under[b])
                )
            hist.append((f"{topology.HTTP_DURATION.name}_bucket", {**base, "le": "+Inf"}, cum))
            hist.append((f"{topology.HTTP_DURATION.name}_count", base, cum))
        lbase = {"name": rc.route, "method": rc.method, **load}
        lreq.append((topology.LOAD_REQUESTS.name, {**lbase, "outcome": "ok"}, rc.total - rc.errors))
        lreq.append((topology.LOAD_REQUESTS.name, {**lbase, "outcome": "fail"}, rc.errors))
        for b in s.buckets:
            lhist.append(
                (f"{topology.LOAD_DURATION.name}_bucket", {**lbase, "le": bucket_label(b)}, rc.under[b])
            )
        lhist.append((f"{topology.LOAD_DURATION.name}_count", lbase, rc.total))
    # Families are declared `unknown` so that their sample names need no OpenMetrics suffix checks.
    yield "shop_http_requests_total", http
    yield "shop_http_request_duration_seconds", hist
    yield "load_requests_total", lreq
    yield "load_request_duration_seconds", lhist


def write_openmetrics(s: Scenario, path: Path) -> int:
    """Write the scenario as OpenMetrics text; returns the number of samples."""
    times = s.times
    samples = 0
    with Path(path).open("w") as out:
        for _family, series in _families(s):
            by_name: dict[str, list[tuple[dict[str, str], FloatArray]]] = {}
            for name, labels, values in series:
                by_name.setdefault(name, []).append((labels, values))
            for name, items in by_name.items():
                out.write(f"# TYPE {name} unknown\n")
                for labels, values in items:
                    _write_series(out, name, labels, times, values)
                    samples += len(values)
        out.write("# EOF\n")
    return samples


def expected_counts(s: Scenario, slo: SLO, start: float, end: float) -> tuple[float, float]:
    """Exact (good, total) events of the SLO in (start, end] according to the model."""
    counts = route_counts(s)
    times = s.times

    def at(cum: FloatArray, t: float) -> float:
        i = int(np.searchsorted(times, t, side="right")) - 1
        return float(cum[i]) if i >= 0 else 0.0

    label = "route" if slo.source == "server" else "name"
    matcher = slo.total.matcher(label)
    method = slo.total.matcher("method")
    good = total = 0.0
    for rc in counts:
        if matcher is not None and not matcher.matches(rc.route):
            continue
        if method is not None and not method.matches(rc.method):
            continue
        total += at(rc.total, end) - at(rc.total, start)
        if slo.threshold_s is not None:
            good += at(rc.under[slo.threshold_s], end) - at(rc.under[slo.threshold_s], start)
        else:
            ok = rc.total - rc.errors
            good += at(ok, end) - at(ok, start)
    return good, total


def phase_offsets(durations: Sequence[tuple[str, float]]) -> list[tuple[str, float, float]]:
    """[('warmup', 60), ('baseline', 120), ...] -> [(name, start offset, end offset), ...]."""
    out, t = [], 0.0
    for name, d in durations:
        out.append((name, t, t + d))
        t += d
    return out


# --------------------------------------------------------------------------------------------------
# A real Prometheus on a synthetic history (tests, benchmarks, demos)
# --------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def require_binaries() -> None:
    for tool in ("prometheus", "promtool"):
        if shutil.which(tool) is None:
            raise FileNotFoundError(f"{tool} is not installed; run `make setup` (apt-get install prometheus)")


@contextlib.contextmanager
def prometheus_on(
    data_dir: Path, rule_files: Sequence[Path] = (), scrape_configs: list[dict[str, Any]] | None = None
) -> Iterator[str]:
    """Run a real Prometheus on `data_dir` (127.0.0.1, free port) until the block exits."""
    require_binaries()
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": scrape_configs or [],
    }
    config_file = data_dir.parent / f"{data_dir.name}-prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    port = free_port()
    log = (data_dir.parent / f"{data_dir.name}-prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={config_file}",
            f"--storage.tsdb.path={data_dir}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=3650d",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {proc.returncode}; see {log.name}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"prometheus did not become ready in 60 s; see {log.name}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def backfill(scenario: Scenario, workdir: Path) -> Path:
    """OpenMetrics -> TSDB blocks with promtool; returns the data folder."""
    require_binaries()
    om = workdir / "history.om"
    write_openmetrics(scenario, om)
    data = workdir / "tsdb"
    subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(om), str(data)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    om.unlink()
    return data
