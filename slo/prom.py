"""The only Prometheus I/O of the SLO package (prometheus-api-client), with timeouts and errors that say
what to do. Everything here returns plain arrays; the maths lives in slo/maths.py."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import requests
from prometheus_api_client.exceptions import PrometheusApiClientException
from prometheus_api_client.prometheus_connect import PrometheusConnect
from urllib3.util.retry import Retry

from sample_shop import topology
from slo.errors import SloError

MAX_POINTS_PER_QUERY = 10_000  # Prometheus refuses more than 11,000 points per series and query
SAMPLES_CHUNK_S = 6 * 3600.0  # raw-sample reads: 21,600 samples per series at a 1 s scrape


class PrometheusError(SloError, RuntimeError):
    """Prometheus could not be asked or refused the query. The message says how to fix it."""


@dataclass(frozen=True)
class RawSeries:
    """One time series as a range query returns it."""

    labels: dict[str, str]
    timestamps: np.ndarray
    values: np.ndarray


def default_prometheus_url() -> str:
    return f"http://127.0.0.1:{topology.PROMETHEUS_PORT + topology.port_offset()}"


class Prometheus:
    def __init__(self, url: str, timeout_s: float = 15.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        # One quick retry only: an unreachable Prometheus must fail the gate fast, not after minutes.
        retry = Retry(total=1, backoff_factor=0.2, status_forcelist=(502, 503, 504), allowed_methods=None)
        self._client = PrometheusConnect(url=self.url, disable_ssl=True, retry=retry, timeout=timeout_s)  # type: ignore[arg-type]  # annotated int; requests takes float seconds

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Prometheus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fail(self, what: str, exc: Exception) -> PrometheusError:
        if isinstance(exc, requests.exceptions.ConnectionError):
            return PrometheusError(
                f"cannot reach Prometheus at {self.url} ({what}). Is the stack running? Start it with "
                "`testbed up`, or pass --prometheus URL (or judge a run folder with --run DIR)."
            )
        if isinstance(exc, requests.exceptions.Timeout):
            return PrometheusError(
                f"Prometheus at {self.url} did not answer within {self.timeout_s:g} s ({what}); "
                "it may be overloaded: retry, shorten the window or raise --timeout."
            )
        if isinstance(exc, PrometheusApiClientException):
            return PrometheusError(f"Prometheus at {self.url} rejected {what}: {exc}")
        return PrometheusError(f"query to Prometheus at {self.url} failed ({what}): {exc}")

    def reload(self) -> None:
        """POST /-/reload (Prometheus started with --web.enable-lifecycle, as `testbed up` does)."""
        try:
            response = requests.post(f"{self.url}/-/reload", timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise self._fail("reload", exc) from None
        if response.status_code != 200:
            raise PrometheusError(
                f"Prometheus at {self.url} refused to reload "
                f"({response.status_code}): {response.text.strip()[:200]}"
            )

    def check(self) -> None:
        """Raise PrometheusError unless Prometheus answers a trivial query."""
        self.instant("vector(1)")

    def instant(self, promql: str, at: float | None = None) -> list[tuple[dict[str, str], float]]:
        """An instant query, optionally at an explicit evaluation time (unix seconds)."""
        params = {"time": f"{at:.3f}"} if at is not None else {}
        try:
            result = self._client.custom_query(promql, params=params)
        except (requests.RequestException, PrometheusApiClientException) as exc:
            raise self._fail(f"query {promql!r}", exc) from None
        return [(r.get("metric", {}), float(r["value"][1])) for r in result]

    def samples(self, selector: str, start: float, end: float) -> list[RawSeries]:
        """The raw stored samples of a selector in (start, end]: an instant query of `selector[<N>s]` at
        `end`. Cheaper than a range query (no evaluation per step) and exact (true scrape timestamps);
        for counting it is equivalent to a range query at any step, because a window boundary takes the
        last sample at or before it either way. Long spans are read in chunks."""
        if end < start:
            raise ValueError(f"span end {end} is before its start {start}")
        pieces: dict[str, tuple[dict[str, str], list[np.ndarray], list[np.ndarray]]] = {}
        hi = float(end)
        while hi > start:
            lo = max(float(start), hi - SAMPLES_CHUNK_S)
            width = max(1, math.ceil(hi - lo))
            promql = f"{selector}[{width}s]"
            try:
                result = self._client.custom_query(promql, params={"time": f"{hi:.3f}"})
            except (requests.RequestException, PrometheusApiClientException) as exc:
                raise self._fail(f"query {promql!r}", exc) from None
            for r in result:
                metric = r.get("metric", {})
                values = np.array(r.get("values", []), dtype=float).reshape(-1, 2)
                values = values[values[:, 0] > lo] if lo > start else values
                entry = pieces.setdefault(repr(sorted(metric.items())), (metric, [], []))
                entry[1].append(values[:, 0])
                entry[2].append(values[:, 1])
            hi = lo
        return _stitch(pieces)

    def range(self, promql: str, start: float, end: float, step_s: float) -> list[RawSeries]:
        """A range query over [start, end] (unix seconds), split into chunks below Prometheus' point limit
        and stitched back together per series."""
        if end < start:
            raise ValueError(f"range end {end} is before its start {start}")
        if step_s <= 0:
            raise ValueError("step must be positive")
        start_i, end_i = math.floor(start), math.ceil(end)  # the client sends whole seconds
        chunk = MAX_POINTS_PER_QUERY * step_s
        pieces: dict[str, tuple[dict[str, str], list[np.ndarray], list[np.ndarray]]] = {}
        t0 = float(start_i)
        while t0 <= end_i:
            t1 = min(float(end_i), t0 + chunk)
            try:
                result = self._client.custom_query_range(
                    promql,
                    start_time=datetime.fromtimestamp(t0, UTC),
                    end_time=datetime.fromtimestamp(t1, UTC),
                    step=f"{step_s:g}s",
                )
            except (requests.RequestException, PrometheusApiClientException) as exc:
                raise self._fail(f"range query {promql!r}", exc) from None
            for r in result:
                metric = r.get("metric", {})
                key = repr(sorted(metric.items()))
                values = np.array(r.get("values", []), dtype=float).reshape(-1, 2)
                entry = pieces.setdefault(key, (metric, [], []))
                entry[1].append(values[:, 0])
                entry[2].append(values[:, 1])
            t0 = t1 + step_s
        return _stitch(pieces)


def _stitch(pieces: dict[str, tuple[dict[str, str], list[np.ndarray], list[np.ndarray]]]) -> list[RawSeries]:
    """Chunks of the same series -> one RawSeries in time order (duplicate timestamps dropped)."""
    out = []
    for metric, ts_parts, val_parts in pieces.values():
        ts = np.concatenate(ts_parts)
        vals = np.concatenate(val_parts)
        ts, first = np.unique(ts, return_index=True)
        out.append(RawSeries(metric, ts, vals[first]))
    return out
