"""Where the evaluator gets its events: a live Prometheus (`--from T --to T`) or a run folder (`--run DIR`).

Both fetch the same raw counter series (slo/collect.py `queries_for`) and turn them into cumulative
good/total curves with the same pure function, so they agree to the event.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from sample_shop import topology
from sample_shop.basics import parse_duration, parse_iso
from slo.collect import (
    ALERTS_QUERY,
    ALERTS_QUERY_NAME,
    BURN_RATE_QUERY_NAME,
    LOOKBACK_S,
    NOISE_QUERIES,
    SeriesFileError,
    read_series,
    selector_query_name,
)
from slo.errors import SloError
from slo.maths import FloatArray, cumulative_events
from slo.prom import Prometheus, PrometheusError, RawSeries
from slo.runfolder import RunPaths
from slo.selector import Selector
from slo.spec import SLO

PHASE_NAMES = ("warmup", "baseline", "fault", "recovery")
PREFETCH_WORKERS = 4
DEFAULT_JUDGED_PHASES = ("baseline", "fault", "recovery")


@dataclass(frozen=True)
class Window:
    """A named time span in unix seconds (an experiment phase, or the whole --from/--to window)."""

    name: str
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class EventSeries:
    """Cumulative good and total events of one SLO on a common time grid."""

    grid: FloatArray
    good: FloatArray
    total: FloatArray


@dataclass(frozen=True)
class AlertSeries:
    times: FloatArray
    firing: np.ndarray  # bool per time: any burn-rate alert of the SLO firing


class Source(Protocol):
    description: str
    span: Window  # what the data covers

    def prepare(self, slos: Sequence[SLO]) -> None:
        """Fetch what the SLOs will need up front (a source may do it concurrently)."""
        ...

    def events(self, slo: SLO) -> EventSeries: ...

    def alerts(self, slo: SLO) -> AlertSeries | None: ...

    def instruments(self, window: Window) -> dict[str, FloatArray]:
        """The noise guard's samples inside `window`, by NOISE_QUERIES name (absent: not measured)."""
        ...


def _inside(series: list[RawSeries], window: Window) -> FloatArray:
    values = [s.values[(s.timestamps >= window.start) & (s.timestamps <= window.end)] for s in series]
    return np.concatenate(values).astype(float) if values else np.array([], dtype=float)


class SourceError(SloError, ValueError):
    """The source cannot be read (bad run folder, bad time, ...). The message says how to fix it."""


def _grid(span: Window, step_s: float) -> FloatArray:
    n = int(np.floor((span.end - span.start) / step_s + 1e-9)) + 1
    grid = span.start + step_s * np.arange(n, dtype=float)
    return grid if grid[-1] >= span.end - 1e-9 else np.append(grid, span.end)


def _event_series(
    slo: SLO, fetch: dict[str, list[RawSeries]], grid: FloatArray, data_start: float
) -> EventSeries:
    def series_of(sel: Selector) -> list[RawSeries]:
        if sel is slo.total or not slo.part_within_total:
            return fetch.get(selector_query_name(sel.promql()), [])
        extra = [m for m in sel.matchers if m not in slo.total.matchers]
        total_series = fetch.get(selector_query_name(slo.total.promql()), [])
        return [s for s in total_series if all(m.matches(s.labels.get(m.label, "")) for m in extra)]

    def cum(sel: Selector) -> FloatArray:
        return cumulative_events(grid, [(s.timestamps, s.values) for s in series_of(sel)], data_start)

    total = cum(slo.total)
    good = cum(slo.good) if slo.good is not None else total - cum(slo.part)
    return EventSeries(grid, np.minimum(good, total), total)


def _alert_series(
    slo: SLO, alerts: list[RawSeries], burn_rates: list[RawSeries], grid: FloatArray
) -> AlertSeries | None:
    """Firing state of the SLO's burn-rate alerts on the grid; None when Prometheus evidently did not
    evaluate this SLO's rules (no slo:current_burn_rate:ratio series), so "never fired" would be a lie."""
    if not any(s.labels.get("slo") == slo.name for s in burn_rates):
        return None
    firing = np.zeros(len(grid), dtype=bool)
    for s in alerts:
        if s.labels.get("slo") != slo.name:
            continue
        idx = np.searchsorted(grid, s.timestamps[s.values > 0], side="right") - 1
        firing[idx[idx >= 0]] = True
    return AlertSeries(grid, firing)


class PrometheusSource:
    """Reads the raw samples of the SLOs' selectors from a live Prometheus, from one staleness lookback
    before the span, so the first window has a sample at its start."""

    def __init__(self, prom: Prometheus, span: Window, step_s: float = topology.SCRAPE_INTERVAL_S) -> None:
        self.prom, self.span, self.step_s = prom, span, step_s
        self.description = f"Prometheus {prom.url}"
        self._lookback = 2 * step_s
        self._grid = _grid(Window(span.name, span.start - self._lookback, span.end), step_s)
        self._cache: dict[str, list[RawSeries]] = {}

    def prepare(self, slos: Sequence[SLO]) -> None:
        """Read every selector concurrently: Prometheus works in its own process, so a few queries in
        flight hide most of the HTTP and JSON time."""
        wanted = {sel.promql() for slo in slos for sel in slo.queried_selectors} | {
            ALERTS_QUERY,
            BURN_RATE_QUERY_NAME,
        }
        todo = sorted(wanted - set(self._cache))
        with ThreadPoolExecutor(max_workers=PREFETCH_WORKERS) as pool:
            results = pool.map(self._query, todo)
            self._cache.update(zip(todo, results, strict=True))

    def _query(self, selector: str) -> list[RawSeries]:
        # from one lookback before the grid, so that the first grid point has a sample at or before it
        return self.prom.samples(selector, self._grid[0] - LOOKBACK_S, self.span.end)

    def _fetch(self, promql: str) -> list[RawSeries]:
        if promql not in self._cache:
            self._cache[promql] = self._query(promql)
        return self._cache[promql]

    def events(self, slo: SLO) -> EventSeries:
        fetched = {sel.promql(): self._fetch(sel.promql()) for sel in slo.queried_selectors}
        return _event_series(slo, fetched, self._grid, self._grid[0])

    def alerts(self, slo: SLO) -> AlertSeries | None:
        return _alert_series(slo, self._fetch(ALERTS_QUERY), self._fetch(BURN_RATE_QUERY_NAME), self._grid)

    def instruments(self, window: Window) -> dict[str, FloatArray]:
        out: dict[str, FloatArray] = {}
        for query in NOISE_QUERIES:
            if query.name not in self._cache:
                try:
                    self._cache[query.name] = self.prom.range(
                        query.promql, self.span.start, self.span.end, self.step_s
                    )
                except PrometheusError:
                    self._cache[query.name] = []  # not measured: the guard says so, never a pass
            out[query.name] = _inside(self._cache[query.name], window)
        return out


class RunFolderSource:
    """Reads runs/<id>/metrics/series.parquet (written by the collector with slo.collect)."""

    def __init__(self, run_dir: Path, step_s: float = topology.SCRAPE_INTERVAL_S) -> None:
        self.run_dir = Path(run_dir)
        self.description = f"run folder {self.run_dir}"
        series_file = RunPaths(self.run_dir).series_parquet
        try:
            self._series = read_series(series_file)
        except SeriesFileError as exc:
            raise SourceError(str(exc)) from None
        stamps = [s.timestamps for group in self._series.values() for s in group if len(s.timestamps)]
        if not stamps:
            raise SourceError(
                f"{series_file} holds no samples: nothing was scraped during the run "
                "(was Prometheus scraping the shop and the load generator?)"
            )
        lo = float(min(t.min() for t in stamps))
        hi = float(max(t.max() for t in stamps))
        self.span = Window("run", lo, hi)
        self._grid = _grid(self.span, step_s)

    def prepare(self, slos: Sequence[SLO]) -> None:
        """Everything is in memory already."""

    def events(self, slo: SLO) -> EventSeries:
        return _event_series(slo, self._series, self._grid, self._grid[0])

    def alerts(self, slo: SLO) -> AlertSeries | None:
        return _alert_series(
            slo,
            self._series.get(ALERTS_QUERY_NAME, []),
            self._series.get(BURN_RATE_QUERY_NAME, []),
            self._grid,
        )

    def instruments(self, window: Window) -> dict[str, FloatArray]:
        return {q.name: _inside(self._series.get(q.name, []), window) for q in NOISE_QUERIES}


# --------------------------------------------------------------------------------------------------
# Phases and times
# --------------------------------------------------------------------------------------------------


def parse_time(text: str, now: datetime) -> float:
    """ISO 8601 (naive = UTC), unix seconds, 'now', 'now-10m' or '-10m' -> unix seconds."""
    raw = text.strip()
    rel = re.fullmatch(r"(?:now)?\s*-\s*(\S+)", raw)
    if raw == "now":
        return now.timestamp()
    if rel:
        try:
            return (now - timedelta(seconds=parse_duration(rel.group(1)))).timestamp()
        except ValueError:
            pass
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        return parse_iso(raw)
    except ValueError:
        raise SourceError(
            f"cannot read time {text!r}: give ISO 8601 (2024-05-01T12:00:00Z), unix seconds, now or now-10m"
        ) from None


def load_run_json(path: Path) -> dict[str, Any]:
    """run.json as a JSON object: the one reader of that file (the gate, `testbed report` and the notebooks
    go through it, so they accept and refuse the same files). Raises SourceError naming file and line."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SourceError(f"{path} does not exist") from None
    except UnicodeDecodeError:
        raise SourceError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise SourceError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise SourceError(f"{path}: must be a JSON object (found {type(data).__name__})")
    return data


def load_phases(path: Path) -> list[Window]:
    """phases.json: [{"name", "start", "end"}] with ISO times. Raises SourceError naming file and entry."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SourceError(f"{path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise SourceError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    if not isinstance(data, list):
        raise SourceError(f'{path}: must be a JSON list of {{"name", "start", "end"}} objects')
    out = []
    for i, entry in enumerate(data):
        where = f"{path}: entry [{i}]"
        if not isinstance(entry, dict) or not {"name", "start", "end"} <= set(entry):
            raise SourceError(f'{where}: needs "name", "start" and "end"')
        try:
            s, e = parse_iso(entry["start"]), parse_iso(entry["end"])
        except ValueError:
            raise SourceError(f"{where}: start/end must be ISO 8601 times") from None
        if e <= s:
            raise SourceError(f"{where} ({entry['name']}): end is not after start")
        out.append(Window(str(entry["name"]), s, e))
    return out
