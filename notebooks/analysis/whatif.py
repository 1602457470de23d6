"""The SLOs under other objectives and periods, pure: the run's event counts (slo.sources.EventSeries) in,
tables out. Every number comes from slo.maths (SLI, burn rate, budget consumed, judgement, sliding
windows, time to detect) and slo.windows (the burn-rate alert windows scaled to a period).

- `budget_grid`: per target and period, each phase's SLI, burn rate, budget consumed and judgement, and
  the judged phases together (as the gate sums them). The SLO's own target and period reproduce the
  gate's numbers in slo/report.json.
- `alert_grid`: when the multiwindow multi-burn-rate alerts of each (target, period) would have fired
  after the fault started, from the exact event counts (Prometheus' rate() extrapolates, and evaluates
  rules once a second: the gate's time to detect may differ by a scrape or two). A window reaching back
  before the collected data is not judged (the events before are unknown), so long periods' alerts
  say "longer than the collected data" rather than guessing.
- `latency_threshold_grid`: the client-side latency SLI under other thresholds, from the load
  generator's per-request record (the stored Prometheus series hold only the SLOs' own buckets).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from sample_shop import topology
from sample_shop.basics import parse_duration
from slo.maths import burn_rate, judge, sli, sliding_sli, time_to_detect, window_count
from slo.sources import DEFAULT_JUDGED_PHASES, EventSeries
from slo.spec import SLO
from slo.windows import burn_rate_windows
from testbed.runfolder import Phase

DEFAULT_TARGETS = (0.9, 0.95, 0.99, 0.995, 0.999)
DEFAULT_PERIODS = ("1h", "1d", "7d", "28d")
JUDGED = "judged"  # the judged phases together


def window_counts(ev: EventSeries, phases: Sequence[Phase]) -> pd.DataFrame:
    """Good and total events and seconds of each phase (as the gate counts them)."""
    rows = [
        {
            "window": p.name,
            "good": window_count(ev.grid, ev.good, p.start, p.end),
            "total": window_count(ev.grid, ev.total, p.start, p.end),
            "seconds": p.seconds,
        }
        for p in phases
    ]
    return pd.DataFrame(rows, columns=["window", "good", "total", "seconds"])


def hardest_hit(slos: Sequence[SLO], events: Mapping[str, EventSeries], window: Phase) -> SLO | None:
    """The SLO with the highest burn rate at its own target in `window` (None when none had events)."""
    best: tuple[float, SLO] | None = None
    for slo in slos:
        ev = events[slo.name]
        good = window_count(ev.grid, ev.good, window.start, window.end)
        total = window_count(ev.grid, ev.total, window.start, window.end)
        value = sli(good, total)
        if value is not None and (best is None or burn_rate(value, slo.target) > best[0]):
            best = (burn_rate(value, slo.target), slo)
    return best[1] if best else None


def budget_grid(
    slo: SLO,
    ev: EventSeries,
    phases: Sequence[Phase],
    targets: Sequence[float] = DEFAULT_TARGETS,
    periods: Sequence[str] = DEFAULT_PERIODS,
    judged: Sequence[str] = DEFAULT_JUDGED_PHASES,
) -> pd.DataFrame:
    """One row per (target, period, window): good, total, SLI, burn rate, budget consumed, status."""
    counts = window_counts(ev, phases)
    # as the gate: the judged phases, else every window (a run without experiment phases)
    together = counts[counts["window"].isin(judged)]
    together = together if not together.empty else counts
    if not together.empty:
        summed = {"window": JUDGED, **together[["good", "total", "seconds"]].sum().to_dict()}
        counts = pd.concat([counts, pd.DataFrame([summed])], ignore_index=True)
    rows = []
    for target in targets:
        for period in periods:
            period_s = parse_duration(period)
            for w in counts.itertuples(index=False):
                j = judge(w.good, w.total, target, slo.min_events, w.seconds, period_s)
                rows.append(
                    {
                        "target": target,
                        "period": period,
                        "window": w.window,
                        "good": w.good,
                        "total": w.total,
                        "sli": j.sli,
                        "burn_rate": j.burn_rate,
                        "budget_consumed": j.budget_consumed,
                        "status": j.status,
                    }
                )
    return pd.DataFrame(rows)


def detection_times(
    ev: EventSeries,
    target: float,
    period_s: float,
    fault: Phase,
    until: float,
    scrape_interval_s: float = topology.SCRAPE_INTERVAL_S,
) -> list[dict[str, object]]:
    """Per burn-rate alert condition of (target, period): its windows, factor and the seconds from the
    fault's start until both its windows burn faster than the factor (None: it would not have fired, or
    - with a note - its long window reaches back before the collected data, so nobody can tell)."""
    budget = 1.0 - target
    out = []
    for w in burn_rate_windows(period_s, budget, scrape_interval_s):
        long_ratio, _ = sliding_sli(ev.grid, ev.good, ev.total, w.long_s)
        short_ratio, _ = sliding_sli(ev.grid, ev.good, ev.total, w.short_s)
        threshold = w.threshold(budget)
        # Events before the collected data are unknown: a window reaching back before them is not judged.
        known = ev.grid - w.long_s >= ev.grid[0] - 1e-9
        with np.errstate(invalid="ignore"):  # NaN (no events in a window) never fires
            firing = known & (1.0 - long_ratio > threshold) & (1.0 - short_ratio > threshold)
        span = (ev.grid >= fault.start) & (ev.grid <= until)
        unknown = not known[span].any()
        out.append(
            {
                "severity": w.severity,
                "long_s": w.long_s,
                "short_s": w.short_s,
                "factor": w.factor,
                "detect_s": time_to_detect(ev.grid, firing, fault.start, until),
                "note": f"{w.long_s} s window is longer than the collected data" if unknown else "",
            }
        )
    return out


def alert_grid(
    ev: EventSeries,
    fault: Phase,
    until: float,
    targets: Sequence[float] = DEFAULT_TARGETS,
    periods: Sequence[str] = DEFAULT_PERIODS,
    scrape_interval_s: float = topology.SCRAPE_INTERVAL_S,
) -> pd.DataFrame:
    """One row per (target, period, alert condition) with its time to detect the fault."""
    rows = [
        {"target": target, "period": period, **row}
        for target in targets
        for period in periods
        for row in detection_times(ev, target, parse_duration(period), fault, until, scrape_interval_s)
    ]
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame["detect_s"] = frame["detect_s"].astype(float)  # None (never fired) -> NaN
    return frame


def window_order(phases: Sequence[Phase]) -> list[str]:
    """Column order for the grids: the phases in run order, then the judged phases together."""
    return [*(p.name for p in phases), JUDGED]


def first_alert(alerts: pd.DataFrame) -> pd.DataFrame:
    """Per (target, period): the earliest page and ticket detection (seconds; NaN when none fires)."""
    table = alerts.pivot_table(
        index=["target", "period"], columns="severity", values="detect_s", aggfunc="min", dropna=False
    )
    return table.reindex(columns=["page", "ticket"])


def latency_threshold_grid(
    requests: pd.DataFrame,
    phases: Sequence[Phase],
    thresholds_s: Sequence[float],
    target: float,
    journey: str,
    min_events: int = 10,
    period_s: float = 3600.0,
) -> pd.DataFrame:
    """Client-side latency SLI of one journey (share of requests answered within the threshold) per
    phase and threshold, judged at `target`. Requests shaped by overview.with_phases."""
    mine = requests[requests["slo_journey"] == journey]
    rows = []
    for threshold in thresholds_s:
        for p in phases:
            latency = mine.loc[mine["phase"] == p.name, "response_time_ms"].to_numpy(dtype=float)
            good = float((latency <= threshold * 1000.0).sum())
            j = judge(good, float(len(latency)), target, min_events, p.seconds, period_s)
            rows.append(
                {
                    "threshold_s": threshold,
                    "window": p.name,
                    "total": len(latency),
                    "sli": j.sli,
                    "burn_rate": j.burn_rate,
                    "status": j.status,
                }
            )
    return pd.DataFrame(rows)
