"""The gate: judge every SLO over the judged windows of a source, plus time to detect and time to recover.

Each judged window is decided by the sequential rule (slo/sequential.py) walking the window's events on
the scrape grid: `met`, `breached` or `inconclusive`, with the SLI's interval and, when undecided, the
events still needed. Verdict per SLO: breached if any judged window breached; met only if every judged
window is met; otherwise no data (a window without events) or inconclusive. Verdict of the gate:
breached if any SLO breached (exit 1), else cannot judge if any SLO had no data or was inconclusive
(exit 2), else met (0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from slo.maths import (
    Judgement,
    Status,
    judge,
    time_to_detect,
    time_to_recover,
    window_count,
    window_path,
    worst_status,
)
from slo.noise import NoiseCheck, check_window
from slo.promql import sum_increase_at
from slo.sequential import (
    DecisionRule,
    RuleError,
    RuleSettings,
    events_needed,
    first_crossing,
    sli_interval,
)
from slo.sources import DEFAULT_JUDGED_PHASES, EventSeries, Source, SourceError, Window
from slo.spec import SLO

EXIT_MET, EXIT_BREACHED, EXIT_CANNOT_JUDGE = 0, 1, 2
DEFAULT_RECOVERY_WINDOW_S = 30.0
# A recovery window is short; demanding the full minimum would leave rare journeys "never recovered".
RECOVERY_MIN_EVENTS = 5
PARTIAL_WINDOW = "the window starts before the collected data"


@dataclass
class WindowResult:
    window: str
    start: float
    end: float
    status: Status
    good: float
    total: float
    sli: float | None
    burn_rate: float | None
    budget_consumed: float | None
    reason: str
    judged: bool
    sli_low: float | None = None  # the anytime-valid (1 - alpha) interval of the SLI
    sli_high: float | None = None
    events_needed: float | None = None  # more events to decide at the observed rate (None: never)
    seconds_needed: float | None = None  # the same at the window's event rate
    decided_after_s: float | None = None  # seconds into the window when the rule decided

    @classmethod
    def of(cls, w: Window, j: Judgement, judged: bool) -> WindowResult:
        return cls(
            w.name,
            w.start,
            w.end,
            j.status,
            j.good,
            j.total,
            j.sli,
            j.burn_rate,
            j.budget_consumed,
            j.reason,
            judged,
        )


@dataclass
class SloResult:
    name: str
    display_name: str
    journey: str | None
    source: str
    kind: str
    target: float
    threshold_s: float | None
    period_s: int
    critical: bool
    min_events: int
    file: str
    status: Status
    rule: dict[str, Any]  # method, zone, alpha, beta (slo/sequential.py)
    windows: list[WindowResult]
    overall: WindowResult | None  # the span of all judged windows together
    time_to_detect_s: float | None = None
    time_to_recover_s: float | None = None
    detection_note: str = ""
    time_to_page_s: float | None = None  # fault start -> first page delivered (slo/pages.py, run folders)
    page_note: str = ""
    notes: list[str] = field(default_factory=list)
    promql: dict[str, str] = field(default_factory=dict)


@dataclass
class GateReport:
    source: str
    judged_windows: list[str]
    windows: list[Window]
    slos: list[SloResult]
    status: Status
    exit_code: int
    errors: list[str] = field(default_factory=list)
    # SLOs left out on purpose, each {"name", "reason"}: every report lists them (never silently)
    not_judged: list[dict[str, str]] = field(default_factory=list)
    noise: list[dict[str, Any]] = field(default_factory=list)  # the noise guard per window (slo/noise.py)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "exit_code": self.exit_code,
            "source": self.source,
            "judged_windows": self.judged_windows,
            "windows": [asdict(w) for w in self.windows],
            "errors": self.errors,
            "slos": [asdict(s) for s in self.slos],
            "not_judged": self.not_judged,
            "noise": self.noise,
        }


def exit_code_for(status: Status) -> int:
    return {
        "met": EXIT_MET,
        "breached": EXIT_BREACHED,
        "nodata": EXIT_CANNOT_JUDGE,
        "inconclusive": EXIT_CANNOT_JUDGE,
        "unreliable": EXIT_CANNOT_JUDGE,
    }[status]


@dataclass(frozen=True)
class RuleOverride:
    """Command-line settings of the decision rule that replace every SLO file's (None: keep the file's)."""

    zone: tuple[float, float] | None = None
    alpha: float | None = None
    beta: float | None = None

    def apply(self, settings: RuleSettings) -> RuleSettings:
        return settings.override(self.zone, self.alpha, self.beta)


def select_windows(windows: Sequence[Window], judged: Sequence[str] | None) -> tuple[list[Window], list[str]]:
    """The windows to judge: the named ones, else the experiment phases after warm-up, else all."""
    names = [w.name for w in windows]
    if judged:
        unknown = [j for j in judged if j not in names]
        if unknown:
            raise SourceError(f"no phase named {', '.join(unknown)}; phases here: {', '.join(names)}")
        return [w for w in windows if w.name in judged], list(judged)
    default = [w for w in windows if w.name in DEFAULT_JUDGED_PHASES]
    chosen = default or list(windows)
    return chosen, [w.name for w in chosen]


def evaluate(
    slos: Sequence[SLO],
    source: Source,
    windows: Sequence[Window],
    judged: Sequence[str] | None = None,
    recovery_window_s: float = DEFAULT_RECOVERY_WINDOW_S,
    min_events: int | None = None,
    rule_override: RuleOverride | None = None,
) -> GateReport:
    """Judge every SLO. Raises SourceError / PrometheusError when the source cannot be read at all.
    `min_events` only sets how many events a recovery window needs (the verdicts are the sequential
    rule's); `rule_override` replaces the SLO files' zone, alpha and beta."""
    if not windows:
        raise SourceError("nothing to judge: no time window or phase given")
    _, judged_names = select_windows(windows, judged)
    source.prepare(slos)
    override = rule_override or RuleOverride()
    noise = {w.name: noise_check(source, w) for w in windows}
    results = [
        _evaluate_one(
            slo, source, windows, judged_names, recovery_window_s, min_events, override.apply(slo.rule)
        )
        for slo in slos
    ]
    for result in results:
        guard_latency(result, noise)
    status = worst_status([r.status for r in results])
    report = GateReport(
        source.description, judged_names, list(windows), results, status, exit_code_for(status)
    )
    report.noise = [noise[w.name].to_dict() for w in windows]
    return report


def noise_check(source: Source, window: Window) -> NoiseCheck:
    samples = source.instruments(window)
    return check_window(
        window.name,
        samples.get("noise:host_cpu_busy"),
        samples.get("noise:host_cpu_waiting"),
        samples.get("noise:load_cpu"),
    )


def guard_latency(result: SloResult, noise: dict[str, NoiseCheck]) -> None:
    """A latency verdict from a window whose instruments were saturated is `unreliable` (exit 2), with
    the reason: neither its pass nor its breach is reported as a fact about the shop."""
    if result.kind != "latency":
        return
    for row in result.windows:
        check = noise.get(row.window)
        if check is None or check.reliable or row.status not in ("met", "breached"):
            continue
        row.reason = f"unreliable (the rule said {row.status}): {check.reason()}"
        row.status = "unreliable"
    judged = [r for r in result.windows if r.judged]
    status, notes = _verdict(judged)
    if status != result.status:
        result.status = status
        result.notes = notes
        if result.overall is not None:
            result.overall.status = status


def _fmt_events(n: float) -> str:
    return f"{n:,.0f}"


def judge_window(
    rule: DecisionRule, slo: SLO, ev: EventSeries, w: Window, judged: bool, partial: bool
) -> WindowResult:
    """One window: its counts, the sequential decision on its path, the SLI interval, what is missing."""
    good = window_count(ev.grid, ev.good, w.start, w.end)
    total = window_count(ev.grid, ev.total, w.start, w.end)
    bad = max(0.0, total - good)
    j = judge(good, total, slo.target, 1, w.seconds, slo.period_s)  # the numbers; the status is below
    if total <= 0 or partial:
        reason = PARTIAL_WINDOW if partial and total > 0 else j.reason
        return WindowResult.of(
            w, Judgement("nodata", good, total, j.sli, j.burn_rate, j.budget_consumed, reason), judged
        )
    times, total_path = window_path(ev.grid, ev.total, w.start, w.end)
    _, good_path = window_path(ev.grid, ev.good, w.start, w.end)
    crossing = first_crossing(rule, total_path, np.clip(total_path - good_path, 0.0, total_path))
    low, high = sli_interval(rule, total, bad)
    row = WindowResult.of(
        w, Judgement(crossing.decision, good, total, j.sli, j.burn_rate, j.budget_consumed, ""), judged
    )
    row.sli_low, row.sli_high = low, high
    if crossing.index is not None:
        row.decided_after_s = float(times[crossing.index] - w.start)
        row.events_needed = 0.0
        row.reason = (
            f"{crossing.decision} after {_fmt_events(crossing.total)} events "
            f"({_fmt_events(crossing.bad)} bad), {row.decided_after_s:.0f} s into the window"
        )
        return row
    needed = events_needed(rule, total, bad)
    rate = total / w.seconds if w.seconds > 0 else 0.0
    if math.isfinite(needed):
        row.events_needed = needed
        row.seconds_needed = needed / rate if rate > 0 else None
        more = f"about {_fmt_events(needed)} more events" + (
            f" (~{row.seconds_needed:.0f} s more at {rate:.1f}/s)" if row.seconds_needed is not None else ""
        )
    else:
        more = "no number of events at this bad-event rate (it sits inside the indifference zone)"
    row.reason = (
        f"inconclusive: {_fmt_events(total)} events ({_fmt_events(bad)} bad) do not decide at "
        f"alpha={rule.alpha:g}, beta={rule.beta:g}; needs {more}"
    )
    return row


def _overall(
    judged: Sequence[WindowResult], slo: SLO, rule: DecisionRule, status: Status
) -> WindowResult | None:
    """All judged windows together, for the table's summary row: their events summed (windows need not
    be adjacent) with the SLO's verdict; the interval is over the summed counts."""
    if not judged:
        return None
    good, total = sum(r.good for r in judged), sum(r.total for r in judged)
    seconds = sum(r.end - r.start for r in judged)
    j = judge(good, total, slo.target, 1, seconds, slo.period_s)
    name = "+".join(r.window for r in judged)
    row = WindowResult(
        name,
        min(r.start for r in judged),
        max(r.end for r in judged),
        status,
        j.good,
        j.total,
        j.sli,
        j.burn_rate,
        j.budget_consumed,
        j.reason,
        True,
    )
    if total > 0:
        row.sli_low, row.sli_high = sli_interval(rule, total, max(0.0, total - good))
    pending = [r for r in judged if r.status == "inconclusive"]
    if pending:
        known = [r.events_needed for r in pending if r.events_needed is not None]
        row.events_needed = max(known) if len(known) == len(pending) else None
        secs = [r.seconds_needed for r in pending if r.seconds_needed is not None]
        row.seconds_needed = max(secs) if len(secs) == len(pending) else None
    else:
        row.events_needed = 0.0
    return row


def _verdict(judged: Sequence[WindowResult]) -> tuple[Status, list[str]]:
    """Breached when any judged window breached; met only when every judged window is met. Otherwise
    no data when a window had no events, else inconclusive: both exit 2, never a pass."""
    if not judged:
        return "nodata", ["no window to judge"]
    statuses = [r.status for r in judged]
    notes = [
        f"{r.window}: {r.reason}" for r in judged if r.status in ("nodata", "inconclusive", "unreliable")
    ]
    if "breached" in statuses:
        return "breached", notes
    return worst_status(statuses), notes


def _evaluate_one(
    slo: SLO,
    source: Source,
    windows: Sequence[Window],
    judged: Sequence[str],
    recovery_window_s: float,
    min_events: int | None,
    settings: RuleSettings,
) -> SloResult:
    ev = source.events(slo)
    need = slo.min_events if min_events is None else min_events
    try:
        rule = settings.rule(slo.target)
    except RuleError as exc:
        raise SourceError(f"the decision rule for {slo.name} (target {slo.target:g}): {exc}") from None
    rows = [
        judge_window(rule, slo, ev, w, w.name in judged, w.start < source.span.start - 1e-6) for w in windows
    ]
    judged_rows = [r for r in rows if r.judged]
    status, notes = _verdict(judged_rows)
    overall = _overall(judged_rows, slo, rule, status)
    result = SloResult(
        name=slo.name,
        display_name=slo.display_name,
        journey=slo.journey,
        source=slo.source,
        kind=slo.kind,
        target=slo.target,
        threshold_s=slo.threshold_s,
        period_s=slo.period_s,
        critical=slo.critical,
        min_events=need,
        file=slo.file,
        status=status,
        rule={**rule.describe(), "clean_events_to_meet": rule.clean_events_to_meet()},
        windows=rows,
        overall=overall,
        notes=notes,
    )
    if overall is not None:
        # The PromQL that reproduces the judged numbers in the Prometheus UI (modulo extrapolation).
        seconds = max(1, round(overall.end - overall.start))
        result.promql = {
            role: sum_increase_at(sel, seconds, overall.end)
            for role, sel in (("good", slo.good), ("bad", slo.bad), ("total", slo.total))
            if sel is not None
        }
    fault = next((w for w in windows if w.name == "fault"), None)
    if fault is not None:
        until = source.span.end
        alerts = source.alerts(slo)
        if alerts is None:
            result.detection_note = "no burn-rate rule output for this SLO in Prometheus (rules not loaded?)"
        else:
            result.time_to_detect_s = time_to_detect(alerts.times, alerts.firing, fault.start, until)
            if result.time_to_detect_s is None:
                result.detection_note = "no burn-rate alert fired"
        affected = any(r.status == "breached" for r in rows if r.window in ("fault", "recovery"))
        if not affected:
            result.detection_note = (result.detection_note + "; " if result.detection_note else "") + (
                "not affected by the fault: no recovery to time"
            )
            return result
        result.time_to_recover_s = time_to_recover(
            ev.grid,
            ev.good,
            ev.total,
            fault.end,
            until,
            recovery_window_s,
            slo.target,
            min(need, RECOVERY_MIN_EVENTS),
        )
    return result
