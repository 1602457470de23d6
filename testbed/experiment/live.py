"""What the progress display shows while an experiment runs: the phase (from the phase gauge the chaosshop
control sets), throughput, error ratio and p95 latency as shoppers see them, the SLO burning fastest and
the burn-rate alerts firing. Read from Prometheus (slo.prom, the one Prometheus client) every couple of
seconds; `summarize` and `format_line` are pure."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from slo.prom import Prometheus, PrometheusError
from testbed.experiment import queries
from testbed.experiment.schedule import Position

Vector = Sequence[tuple[dict[str, str], float]]


@dataclass(frozen=True)
class LiveSample:
    phase: str | None = None
    rps: float | None = None
    error_ratio: float | None = None
    p95_s: float | None = None
    retries_rps: float | None = None  # calls between services retried per second (resilience at work)
    worst_slo: str | None = None
    worst_sli: float | None = None
    worst_burn: float | None = None
    alerts: tuple[str, ...] = field(default_factory=tuple)
    error: str | None = None  # Prometheus could not answer (shown, not fatal while running)
    confidence: str | None = None  # a confident hold's progress (confidence_text), when one runs


def _scalar(vector: Vector) -> float | None:
    for _, value in vector:
        if math.isfinite(value):
            return value
    return None


def summarize(
    phase: Vector,
    rps: Vector,
    failed: Vector,
    p95: Vector,
    slo_error: Vector,
    budget: Vector,
    alerts: Vector,
    retries: Vector = (),
) -> LiveSample:
    """Instant-query results -> one LiveSample (pure)."""
    current = next((labels.get("phase") for labels, value in phase if value >= 1), None)
    total = _scalar(rps)
    bad = _scalar(failed) or 0.0
    budgets = {labels.get("slo", ""): value for labels, value in budget if value > 0}
    worst: tuple[float, str, float] | None = None
    for labels, err in slo_error:
        name = labels.get("slo", "")
        if not math.isfinite(err) or name not in budgets:
            continue
        burn = err / budgets[name]
        if worst is None or burn > worst[0]:
            worst = (burn, name, 1.0 - err)
    firing = sorted({labels.get("slo") or labels.get("alertname", "?") for labels, _ in alerts})
    return LiveSample(
        phase=current,
        rps=total,
        error_ratio=(bad / total) if total else None,
        p95_s=_scalar(p95),
        retries_rps=_scalar(list(retries)),
        worst_slo=worst[1] if worst else None,
        worst_sli=worst[2] if worst else None,
        worst_burn=worst[0] if worst else None,
        alerts=tuple(firing),
    )


def sample(prom: Prometheus, experiment_id: str) -> LiveSample:
    try:
        return summarize(
            prom.instant(queries.live_phase_query(experiment_id)),
            prom.instant(queries.LIVE_RPS),
            prom.instant(queries.LIVE_FAILED_RPS),
            prom.instant(queries.LIVE_P95),
            prom.instant(queries.LIVE_SLO_ERROR),
            prom.instant(queries.LIVE_SLO_BUDGET),
            prom.instant(queries.LIVE_ALERTS),
            prom.instant(queries.LIVE_RETRIES),
        )
    except PrometheusError as exc:
        return LiveSample(error=str(exc).split(". ")[0])


def confidence_text(status: Mapping[str, Any] | None) -> str | None:
    """The progress of a phase held until confident, from slo/confidence.py's status: per critical SLO
    the events so far and the events still needed, and how many SLOs are decided (pure)."""
    if not status or not isinstance(status.get("slos"), list):
        return None
    slos = [s for s in status["slos"] if isinstance(s, dict)]
    if not slos:  # the phase has just begun: no SLO has an event in it yet
        return "deciding: no events in this phase yet"
    decided = [s for s in slos if s.get("status") in ("met", "breached")]
    parts = [f"decided {len(decided)}/{len(slos)}"]
    for s in slos:
        if not s.get("critical"):
            continue
        events = f"{s.get('events', 0):.0f} ev"
        if s.get("status") in ("met", "breached"):
            parts.append(f"{s['name']} {s['status']} ({events})")
        else:
            needed = s.get("events_needed")
            parts.append(f"{s['name']} {events}, needs {'?' if needed is None else f'~{needed:.0f}'}")
    return " ".join(parts[:1]) + (": " + "; ".join(parts[1:]) if parts[1:] else "")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.1f}%"


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = round(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


def phase_text(pos: Position) -> str:
    if pos.phase is None:
        return "starting (steady-state check, load start)"
    text = f"{pos.phase} ({pos.index}/{pos.count}) {_clock(pos.left_s)} left"
    return text + (f", then {pos.next_phase}" if pos.next_phase else "")


def metrics_text(s: LiveSample) -> str:
    if s.error:
        return f"metrics unavailable: {s.error}"
    parts = [
        f"rps {s.rps:.1f}" if s.rps is not None else "rps -",
        f"errors {_pct(s.error_ratio)}",
        f"p95 {s.p95_s * 1000:.0f} ms" if s.p95_s is not None else "p95 -",
    ]
    if s.retries_rps:
        parts.append(f"retries {s.retries_rps:.1f}/s")
    if s.worst_slo and s.worst_burn:
        parts.append(f"worst SLO {s.worst_slo} {_pct(s.worst_sli)} (burn {s.worst_burn:.1f}x)")
    elif s.worst_slo:
        parts.append("SLOs: no error budget burning")
    if s.alerts:
        parts.append(f"alerts: {', '.join(s.alerts[:3])}" + (" ..." if len(s.alerts) > 3 else ""))
    if s.confidence:
        parts.append(s.confidence)
    return "  ".join(parts)


def format_line(elapsed_s: float, pos: Position, s: LiveSample) -> str:
    """One progress line (logs, CI): elapsed time, phase and time left, live numbers."""
    return f"{_clock(elapsed_s):>6}  {phase_text(pos)}  |  {metrics_text(s)}"
