"""Everything the report shows, read from a run folder alone (never from a live Prometheus). What cannot be
read becomes a `problem` the report prints, so a partial run still renders."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from load.results import read_requests, read_summary
from sample_shop.basics import parse_iso
from testbed.report.traces import TraceView, phase_at, slowest_traces
from testbed.runfolder import (
    Phase,
    RunFolderError,
    RunInfo,
    RunPaths,
    read_json,
    read_logs,
    read_phases,
    read_run_info,
    read_series_frame,
    read_spans,
)

Curve = tuple[np.ndarray, np.ndarray]  # (seconds since the origin, values)
LOG_LEVELS_SHOWN = ("warning", "error", "critical", "raw")
MIN_SLICES = 6
MIN_SLICE_S = 2.0


@dataclass
class ReportData:
    run: RunPaths
    info: RunInfo
    phases: list[Phase] = field(default_factory=list)
    origin: float = 0.0  # unix time that plots call 0 (the first phase's start)
    series: pd.DataFrame | None = None
    gate: dict[str, Any] | None = None
    comparison: dict[str, Any] | None = None
    traces: list[TraceView] = field(default_factory=list)
    span_count: int = 0
    log_rows: list[dict[str, Any]] = field(default_factory=list)
    log_count: int = 0
    load_summary: dict[str, Any] | None = None
    phase_stats: list[dict[str, Any]] = field(default_factory=list)
    host_cpu: dict[str, dict[str, float | None]] = field(default_factory=dict)  # phase -> host CPU figures
    problems: list[str] = field(default_factory=list)

    def x_range(self) -> tuple[float, float] | None:
        """What the plots show, relative to the origin: the run from its start to a little after the last
        phase (the stored series reach back further, for the SLOs' counting)."""
        if not self.phases:
            return None
        try:
            started = parse_iso(self.info.started) - self.origin
        except ValueError:
            started = 0.0
        return (min(0.0, max(started, -30.0)) - 2.0, self.phases[-1].end - self.origin + 5.0)

    def phase_spans(self) -> list[tuple[str, float, float]]:
        """(name, start, end) relative to the origin."""
        return [(p.name, p.start - self.origin, p.end - self.origin) for p in self.phases]


def curves(frame: pd.DataFrame | None, query: str, label: str, origin: float) -> dict[str, Curve]:
    """Series of one query in series.parquet, keyed by one label's value, time relative to `origin`.
    NaN samples (a quantile with no traffic) are dropped."""
    if frame is None or frame.empty:
        return {}
    rows = frame[frame["query"] == query]
    out: dict[str, Curve] = {}
    for labels_json, group in rows.groupby("labels", sort=True, observed=True):
        labels = json.loads(labels_json) if labels_json else {}
        key = str(labels.get(label, "")) if label else ""
        group = group.sort_values("t")
        values = group["value"].to_numpy(dtype=float)
        keep = np.isfinite(values)
        if keep.any():
            out[key] = (group["t"].to_numpy(dtype=float)[keep] - origin, values[keep])
    return out


def curves_by(
    frame: pd.DataFrame | None, query: str, labels: Sequence[str], origin: float
) -> dict[str, Curve]:
    """Like `curves`, keyed by several labels joined with ' → '."""
    if frame is None or frame.empty:
        return {}
    rows = frame[frame["query"] == query]
    out: dict[str, Curve] = {}
    for labels_json, group in rows.groupby("labels", sort=True, observed=True):
        parsed = json.loads(labels_json) if labels_json else {}
        key = " → ".join(str(parsed.get(name, "")) for name in labels)
        group = group.sort_values("t")
        out[key] = (group["t"].to_numpy(dtype=float) - origin, group["value"].to_numpy(dtype=float))
    return out


def ratio(numerator: dict[str, Curve], denominator: dict[str, Curve]) -> dict[str, Curve]:
    """numerator/denominator per key on the denominator's times (a missing numerator counts 0)."""
    out = {}
    for key, (t, total) in denominator.items():
        bad = np.zeros_like(total)
        if key in numerator:  # both come from range queries on the same grid: match by timestamp
            nt, nv = numerator[key]
            exact = dict(zip(np.round(nt, 3).tolist(), nv.tolist(), strict=True))
            bad = np.array([exact.get(x, 0.0) for x in np.round(t, 3).tolist()])
        with np.errstate(divide="ignore", invalid="ignore"):
            values = np.where(total > 0, bad / total, np.nan)
        out[key] = (t, values)
    return out


def log_summary(logs: Sequence[dict[str, Any]], phases: Sequence[Phase]) -> list[dict[str, Any]]:
    """Warnings, errors and raw (non-JSON, e.g. traceback) lines per service and phase."""
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for entry in logs:
        level = str(entry.get("level", "")).lower()
        level = "warning" if level == "warn" else level
        if level not in LOG_LEVELS_SHOWN:
            continue
        try:
            t = parse_iso(str(entry.get("timestamp")))
        except ValueError:
            continue
        key = (str(entry.get("service", "?")), phase_at(phases, t) or "-")
        bucket = counts.setdefault(key, {})
        bucket[level] = bucket.get(level, 0) + 1
    order = {p.name: i for i, p in enumerate(phases)}
    rows = [{"service": s, "phase": p, **c} for (s, p), c in counts.items()]
    return sorted(rows, key=lambda r: (r["service"], order.get(r["phase"], 99)))


def phase_request_stats(requests: pd.DataFrame, phases: Sequence[Phase]) -> list[dict[str, Any]]:
    """Per phase, from the load generator's own record of every request (what shoppers saw): requests,
    failures, error ratio, throughput and latency percentiles."""
    if requests.empty:
        return []
    times = (requests["timestamp"] - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(dtype=float)
    rows = []
    for phase in phases:
        chunk = requests[(times >= phase.start) & (times < phase.end)]
        n = len(chunk)
        latency = chunk["response_time_ms"].to_numpy(dtype=float)
        failures = int((~chunk["ok"]).sum()) if n else 0
        rows.append(
            {
                "phase": phase.name,
                "requests": n,
                "failures": failures,
                "error_ratio": failures / n if n else None,
                "rps": n / phase.seconds if phase.seconds > 0 else None,
                **{f"p{q}_ms": float(np.percentile(latency, q)) if n else None for q in (50, 95, 99)},
            }
        )
    return rows


HOST_CPU_BUSY_QUERY = "plot:host_cpu_busy"
HOST_CPU_WAITING_QUERY = "plot:host_cpu_waiting"


def _phase_values(frame: pd.DataFrame, query: str, phase: Phase) -> np.ndarray:
    rows = frame[(frame["query"] == query) & (frame["t"] >= phase.start) & (frame["t"] < phase.end)]
    values = rows["value"].to_numpy(dtype=float)
    finite: np.ndarray = values[np.isfinite(values)]
    return finite


def phase_host_cpu(frame: pd.DataFrame | None, phases: Sequence[Phase]) -> dict[str, dict[str, float | None]]:
    """Per phase, the host's CPU as node_exporter saw it: mean and peak busy share, and the mean share of
    time some task waited for a CPU (PSI). Empty when the host was not measured (no node_exporter)."""
    if frame is None or frame.empty or not (frame["query"] == HOST_CPU_BUSY_QUERY).any():
        return {}
    out: dict[str, dict[str, float | None]] = {}
    for phase in phases:
        busy = _phase_values(frame, HOST_CPU_BUSY_QUERY, phase)
        waiting = _phase_values(frame, HOST_CPU_WAITING_QUERY, phase)
        out[phase.name] = {
            "busy_mean": float(busy.mean()) if busy.size else None,
            "busy_max": float(busy.max()) if busy.size else None,
            "waiting_mean": float(waiting.mean()) if waiting.size else None,
        }
    return out


def comparison_slice_s(baseline_s: float, fault_s: float) -> float:
    """Slices short enough that the shorter phase holds MIN_SLICES of them (the comparison needs at least
    3 per side), but no shorter than MIN_SLICE_S (a few scrapes) nor longer than slo.compare's default."""
    from slo.compare import DEFAULT_SLICE_S

    return max(MIN_SLICE_S, min(DEFAULT_SLICE_S, min(baseline_s, fault_s) / MIN_SLICES))


def _comparison(run: RunPaths, phases: Sequence[Phase]) -> dict[str, Any] | None:
    from slo.compare import compare
    from slo.sources import RunFolderSource, Window
    from slo.spec import load_slos

    by_name = {p.name: p for p in phases}
    if "baseline" not in by_name or "fault" not in by_name:
        return None
    source = RunFolderSource(run.root)
    base, fault = by_name["baseline"], by_name["fault"]
    report = compare(
        load_slos(),
        (source, Window("baseline", base.start, base.end)),
        (source, Window("fault", fault.start, fault.end)),
        slice_s=comparison_slice_s(base.seconds, fault.seconds),
    )
    return report.to_dict()


def load_report_data(run: RunPaths, trace_count: int = 5) -> ReportData:
    info = read_run_info(run)
    data = ReportData(run, info)
    try:
        data.phases = read_phases(run)
    except RunFolderError as exc:
        data.problems.append(f"phases: {exc}")
    try:
        started = parse_iso(info.started)
    except ValueError:
        started = 0.0
    data.origin = data.phases[0].start if data.phases else started
    try:
        data.series = read_series_frame(run)
    except (RunFolderError, OSError, ValueError) as exc:
        data.problems.append(f"metrics: {exc}")
    if data.phases:
        data.host_cpu = phase_host_cpu(data.series, data.phases)
    if run.slo_report_json.is_file():
        try:
            data.gate = read_json(run.slo_report_json)
        except RunFolderError as exc:
            data.problems.append(f"SLO report: {exc}")
    if data.series is not None and data.phases:
        try:
            data.comparison = _comparison(run, data.phases)
        except Exception as exc:  # the comparison is one section; the rest of the report still renders
            data.problems.append(f"statistical comparison: {exc}")
    spans = read_spans(run)
    data.span_count = len(spans)
    data.traces = slowest_traces(spans, data.phases, trace_count)
    logs = read_logs(run)
    data.log_count = len(logs)
    data.log_rows = log_summary(logs, data.phases)
    try:
        data.load_summary = read_summary(run.load_dir)
        data.phase_stats = phase_request_stats(read_requests(run.load_dir), data.phases)
    except (FileNotFoundError, ValueError, OSError) as exc:
        data.problems.append(f"load results: {exc}")
    return data
