"""The experiment at a glance, pure: what shoppers saw over time (the load generator's record of every
request), per-phase figures, the gateway's side from the collected Prometheus series, and the SLO table
of the gate's report."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from sample_shop import topology
from slo.evaluate import SloResult, WindowResult
from slo.report import objective_text
from testbed.report.data import phase_request_stats
from testbed.report.traces import phase_at
from testbed.runfolder import Phase

OTHER_JOURNEY = "other"
PERCENTILES = (50, 95, 99)
_ROUTE_JOURNEY = {
    (method, route): journey
    for journey, routes in topology.JOURNEY_ROUTES.items()
    for method, route in routes
}


def slo_journey(method: str, route: str) -> str:
    """The SLO journey (topology.JOURNEY_ROUTES) of a request, `other` when it belongs to none."""
    return _ROUTE_JOURNEY.get((method, route), OTHER_JOURNEY)


def with_phases(
    frame: pd.DataFrame, phases: Sequence[Phase], origin: float, time_column: str = "t"
) -> pd.DataFrame:
    """Adds `elapsed` (seconds since `origin`), `phase` (categorical in run order, NaN outside every
    phase) and, for request records, `slo_journey`."""
    times = frame[time_column].astype(float)
    names = [phase_at(phases, t) for t in times]
    order = list(dict.fromkeys(p.name for p in phases))
    out = frame.assign(elapsed=times - origin, phase=pd.Categorical(names, categories=order, ordered=True))
    if {"method", "name"} <= set(frame.columns):
        out["slo_journey"] = [slo_journey(m, n) for m, n in zip(frame["method"], frame["name"], strict=True)]
    return out


def over_time(requests: pd.DataFrame, bin_s: float = 2.0) -> pd.DataFrame:
    """Requests binned by `elapsed` (from `with_phases`): count, throughput, failures, error ratio and
    latency percentiles per bin, indexed by the bin's start. Empty bins inside the span are kept
    (zero throughput, no ratio, no latency): a gap in traffic is part of the story."""
    if bin_s <= 0:
        raise ValueError("bin length must be positive")
    columns = ["requests", "rps", "failures", "error_ratio", *(f"p{q}_ms" for q in PERCENTILES)]
    if requests.empty:
        return pd.DataFrame(columns=columns, dtype=float)
    bins = np.floor(requests["elapsed"].to_numpy(dtype=float) / bin_s) * bin_s
    grouped = requests.assign(bin=bins, failed=~requests["ok"].astype(bool)).groupby("bin")
    latency = grouped["response_time_ms"]
    frame = pd.DataFrame(
        {
            "requests": grouped.size(),
            "failures": grouped["failed"].sum(),
            **{f"p{q}_ms": latency.quantile(q / 100) for q in PERCENTILES},
        }
    )
    full = np.arange(bins.min(), bins.max() + bin_s / 2, bin_s)
    frame = frame.reindex(full)
    frame[["requests", "failures"]] = frame[["requests", "failures"]].fillna(0)
    frame["rps"] = frame["requests"] / bin_s
    with np.errstate(divide="ignore", invalid="ignore"):
        frame["error_ratio"] = np.where(frame["requests"] > 0, frame["failures"] / frame["requests"], np.nan)
    frame.index.name = "elapsed_s"
    return frame[columns]


def phase_summary(requests: pd.DataFrame, phases: Sequence[Phase]) -> pd.DataFrame:
    """Per phase: requests, failures, error ratio, throughput, p50/p95/p99 (the report's own figures)."""
    rows = phase_request_stats(requests, phases)
    columns = ["phase", "requests", "failures", "error_ratio", "rps", "p50_ms", "p95_ms", "p99_ms"]
    return pd.DataFrame(rows, columns=columns).set_index("phase")


def journey_phase_summary(requests: pd.DataFrame) -> pd.DataFrame:
    """Per SLO journey and phase (from `with_phases`): requests, error ratio, p50 and p95 latency."""
    inside = requests[requests["phase"].notna()]
    grouped = inside.groupby(["slo_journey", "phase"], observed=True)
    frame = pd.DataFrame(
        {
            "requests": grouped.size(),
            "error_ratio": grouped["ok"].apply(lambda ok: 1.0 - ok.astype(float).mean()),
            "p50_ms": grouped["response_time_ms"].median(),
            "p95_ms": grouped["response_time_ms"].quantile(0.95),
        }
    )
    return frame.sort_index()


def journeys_over_time(requests: pd.DataFrame, bin_s: float, column: str) -> pd.DataFrame:
    """One `over_time` column (e.g. p95_ms, error_ratio) per SLO journey: index seconds, a column each."""
    wide = {j: over_time(group, bin_s)[column] for j, group in requests.groupby("slo_journey", sort=True)}
    return pd.DataFrame(wide)


def series_wide(series: pd.DataFrame, query: str, labels: Sequence[str], origin: float) -> pd.DataFrame:
    """One query of series.parquet as a wide frame: index seconds since `origin`, one column per series
    named by its `labels` values joined with ' → ' (e.g. a plot query per journey). Empty when the run
    did not collect that query."""
    rows = series[series["query"] == query]
    if rows.empty:
        return pd.DataFrame()
    parsed = {text: json.loads(text) if text else {} for text in rows["labels"].unique()}
    keys = [" → ".join(str(parsed[text].get(name, "")) for name in labels) for text in rows["labels"]]
    wide = rows.assign(key=keys, elapsed=rows["t"] - origin).pivot_table(
        index="elapsed", columns="key", values="value", aggfunc="mean", observed=True
    )
    wide.columns.name = " → ".join(labels)
    return wide


# --------------------------------------------------------------------------------------------------
# The SLO gate's report (slo/report.json)
# --------------------------------------------------------------------------------------------------


def _window(data: dict[str, Any]) -> WindowResult:
    return WindowResult(**{k: data.get(k) for k in WindowResult.__dataclass_fields__})


def slo_results(report: dict[str, Any]) -> list[SloResult]:
    """report.json's SLOs back as slo.evaluate.SloResult (unknown fields ignored)."""
    out = []
    for item in report["slos"]:
        fields = {k: item.get(k) for k in SloResult.__dataclass_fields__ if k in item}
        fields["windows"] = [_window(w) for w in item.get("windows", [])]
        fields["overall"] = _window(item["overall"]) if item.get("overall") else None
        out.append(SloResult(**fields))
    return out


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.2f}%"


def slo_table(report: dict[str, Any]) -> pd.DataFrame:
    """One row per SLO: objective, SLI (events) per window, budget used by the judged windows, time to
    detect and recover, verdict - the gate's numbers, not recomputed."""
    rows = []
    for s in slo_results(report):
        row: dict[str, Any] = {"SLO": s.name, "objective": objective_text(s), "critical": s.critical}
        for w in s.windows:
            row[w.window] = f"{_pct(w.sli)} ({w.total:g})"
        row["budget used"] = _pct(s.overall.budget_consumed if s.overall else None)
        row["detect s"] = s.time_to_detect_s
        row["recover s"] = s.time_to_recover_s
        row["verdict"] = s.status
        rows.append(row)
    return pd.DataFrame(rows).set_index("SLO")
