"""Live confidence: has the running phase decided every SLO yet?

While an experiment runs, the `hold` action of a phase run `--until-confident` asks this every couple of
seconds. It judges the phase so far exactly as the gate will judge the finished phase afterwards (the
same `evaluate`, the same sequential rule walking the same scrape-grid samples from the phase's start),
so the phase ends when the gate's verdict is settled: the first crossing of the rule's boundary is final,
and a longer window only adds samples after it.

The latest status is written to `experiment-confidence.json` in the state folder, for the progress line
of `testbed experiment run` (events so far and events still needed per critical SLO).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sample_shop.basics import write_json_atomic
from slo.gate import CannotJudge, check_live, measurable
from slo.sources import Window
from slo.spec import SLO, SpecError, load_slos

CONFIDENCE_FILE = "experiment-confidence.json"
# settled for a confident hold: decided, or measured on a saturated machine (waiting longer cannot help)
DECIDED = ("met", "breached", "unreliable")


@dataclass(frozen=True)
class SloProgress:
    name: str
    critical: bool
    status: str  # met, breached, inconclusive, nodata
    events: float
    bad: float
    events_needed: float | None  # None: no number of events decides at the observed rate
    seconds_needed: float | None


@dataclass(frozen=True)
class Confidence:
    """Where one phase stands: every SLO's verdict so far."""

    experiment: str
    phase: str
    start: float
    at: float
    slos: list[SloProgress] = field(default_factory=list)
    error: str = ""  # the last judging attempt failed (Prometheus busy, ...); not decided then

    @property
    def decided(self) -> bool:
        return not self.error and bool(self.slos) and all(s.status in DECIDED for s in self.slos)

    @property
    def pending(self) -> list[SloProgress]:
        return [s for s in self.slos if s.status not in DECIDED]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "decided": self.decided}


def judged_slos(client_metrics_scraped: bool, where: str) -> list[SLO]:
    """The SLOs the gate will judge on this stack (the same selection as `slo.gate.check_run`)."""
    try:
        slos = load_slos()
    except SpecError as exc:
        raise CannotJudge(str(exc)) from None
    chosen, _ = measurable(slos, client_metrics_scraped=client_metrics_scraped, where=where)
    return chosen


def phase_confidence(
    experiment: str,
    prometheus_url: str,
    phase: str,
    start: float,
    slos: Sequence[SLO],
    now: float | None = None,
) -> Confidence:
    """Judge [start, now] of the live Prometheus as the phase `phase`. Never raises for a Prometheus
    problem: the status says `error` (and is not decided), so a hiccup only makes the phase run longer."""
    now = time.time() if now is None else now
    if now - start < 1.0:
        return Confidence(experiment, phase, start, now, error="the phase has just begun")
    try:
        report = check_live(
            prometheus_url,
            start,
            now,
            slos=list(slos),
            windows=[Window(phase, start, now)],
            phases=[phase],
            timeout_s=5.0,
        )
    except CannotJudge as exc:
        return Confidence(experiment, phase, start, now, error=str(exc))
    progress = []
    for result in report.slos:
        window = next((w for w in result.windows if w.window == phase), None)
        if window is None:
            continue
        progress.append(
            SloProgress(
                result.name,
                result.critical,
                window.status,
                window.total,
                max(0.0, window.total - window.good),
                window.events_needed,
                window.seconds_needed,
            )
        )
    return Confidence(experiment, phase, start, now, progress)


def write_confidence(state_dir: Path, status: Confidence) -> None:
    write_json_atomic(Path(state_dir) / CONFIDENCE_FILE, status.to_dict())


def read_confidence(state_dir: Path, experiment: str, since: float) -> dict[str, Any] | None:
    """The latest status written for `experiment` at or after `since` (None: none, or an older run's)."""
    try:
        data = json.loads((Path(state_dir) / CONFIDENCE_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("experiment") != experiment:
        return None
    at = data.get("at")
    return data if isinstance(at, int | float) and at >= since else None
