"""The gate: judge every SLO over the judged windows of a source, plus time to detect and time to recover.

Verdict per SLO: the worst of its judged windows (breached > nodata > met). Verdict of the gate:
breached if any SLO breached (exit 1), else cannot judge if any SLO had no data (exit 2), else met (0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from slo.maths import Judgement, Status, judge, time_to_detect, time_to_recover, window_count, worst_status
from slo.promql import sum_increase_at
from slo.sources import DEFAULT_JUDGED_PHASES, Source, SourceError, Window
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
        }


def exit_code_for(status: Status) -> int:
    return {"met": EXIT_MET, "breached": EXIT_BREACHED, "nodata": EXIT_CANNOT_JUDGE}[status]


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
    strict: bool = False,
) -> GateReport:
    """Judge every SLO. Raises SourceError / PrometheusError when the source cannot be read at all.
    `strict`: every judged window needs enough events on its own (default: a window with too few events
    is reported but the SLO is judged over all judged windows together, see `_verdict`)."""
    if not windows:
        raise SourceError("nothing to judge: no time window or phase given")
    _, judged_names = select_windows(windows, judged)
    source.prepare(slos)
    results = [
        _evaluate_one(slo, source, windows, judged_names, recovery_window_s, min_events, strict)
        for slo in slos
    ]
    status = worst_status([r.status for r in results])
    return GateReport(source.description, judged_names, list(windows), results, status, exit_code_for(status))


def _overall(judged: Sequence[WindowResult], slo: SLO, need: int) -> WindowResult | None:
    """All judged windows together: their events summed (windows need not be adjacent)."""
    if not judged:
        return None
    good, total = sum(r.good for r in judged), sum(r.total for r in judged)
    seconds = sum(r.end - r.start for r in judged)
    j = judge(good, total, slo.target, need, seconds, slo.period_s)
    partial = [r for r in judged if r.reason == PARTIAL_WINDOW]
    if partial and j.status != "nodata":
        j = Judgement("nodata", good, total, j.sli, j.burn_rate, j.budget_consumed, PARTIAL_WINDOW)
    name = "+".join(r.window for r in judged)
    return WindowResult(
        name,
        min(r.start for r in judged),
        max(r.end for r in judged),
        j.status,
        j.good,
        j.total,
        j.sli,
        j.burn_rate,
        j.budget_consumed,
        j.reason,
        True,
    )


def _verdict(
    judged: Sequence[WindowResult], overall: WindowResult | None, strict: bool
) -> tuple[Status, list[str]]:
    """Breached when any judged window (or all of them together) breaches. Otherwise met when all judged
    windows together hold enough events and meet the objective; a single window with too few events
    (a rare journey in a short phase) is then reported in the notes instead of blocking the gate.
    With `strict`, every judged window must be judgeable on its own. Anything else: no data."""
    if overall is None:
        return "nodata", ["no window to judge"]
    statuses = [r.status for r in judged]
    thin = [r for r in judged if r.status == "nodata"]
    notes = [f"{r.window}: {r.reason}" for r in thin]
    if "breached" in statuses or overall.status == "breached":
        return "breached", notes
    if strict:
        return worst_status([*statuses, overall.status]), notes
    if overall.status == "met" and thin:
        notes.append(f"judged over {overall.window} together: {overall.total:g} events")
    return overall.status, notes


def _evaluate_one(
    slo: SLO,
    source: Source,
    windows: Sequence[Window],
    judged: Sequence[str],
    recovery_window_s: float,
    min_events: int | None,
    strict: bool,
) -> SloResult:
    ev = source.events(slo)
    need = slo.min_events if min_events is None else min_events
    rows: list[WindowResult] = []
    for w in windows:
        good = window_count(ev.grid, ev.good, w.start, w.end)
        total = window_count(ev.grid, ev.total, w.start, w.end)
        j = judge(good, total, slo.target, need, w.seconds, slo.period_s)
        if w.start < source.span.start - 1e-6 and j.status != "nodata":
            # Events before the data begin are unknown: judging a partly covered window could pass wrongly.
            j = Judgement(
                "nodata",
                good,
                total,
                j.sli,
                j.burn_rate,
                j.budget_consumed,
                PARTIAL_WINDOW,
            )
        rows.append(WindowResult.of(w, j, w.name in judged))
    judged_rows = [r for r in rows if r.judged]
    overall = _overall(judged_rows, slo, need)
    status, notes = _verdict(judged_rows, overall, strict)
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
