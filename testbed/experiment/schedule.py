"""The phase schedule of a run, pure: durations from the experiment and the user's overrides, the hard
timeout, where a run is now, phase boundaries from the journal or from the phase gauge, and the tooling
overhead arithmetic. No I/O and no clocks: times come in as arguments."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sample_shop.basics import parse_iso
from testbed.experiment.catalog import PHASE_KEYS, PHASES
from testbed.runfolder import Phase

# Before the first phase: `chaos run` starts, checks the steady state, sets policies and starts the load.
START_ALLOWANCE_S = 60.0
# After the last phase: the after-method hypothesis, the rollbacks and stopping the load.
END_ALLOWANCE_S = 60.0
# On top of the above, a share of the planned phases (the hypothesis probes slow down on a loaded machine).
SLACK_SHARE = 0.25


@dataclass(frozen=True)
class PhasePlan:
    """Seconds per phase, in order."""

    durations: tuple[tuple[str, float], ...]

    @property
    def total_s(self) -> float:
        return sum(seconds for _, seconds in self.durations)

    def seconds(self, phase: str) -> float | None:
        return dict(self.durations).get(phase)

    def config_values(self) -> dict[str, float]:
        """The configuration entries (`warmup_s`, ...) handed to `chaos run`."""
        return {PHASE_KEYS[name]: seconds for name, seconds in self.durations}

    def position(self, phase: str) -> int:
        """1-based index of the phase in the plan (0 when it is not planned)."""
        names = [name for name, _ in self.durations]
        return names.index(phase) + 1 if phase in names else 0

    def next_phase(self, phase: str) -> str | None:
        names = [name for name, _ in self.durations]
        i = names.index(phase) if phase in names else -1
        return names[i + 1] if 0 <= i < len(names) - 1 else None


def plan_phases(durations: Mapping[str, float], overrides: Mapping[str, float | None]) -> PhasePlan:
    """The experiment's phase durations with the user's overrides (None = keep the experiment's)."""
    unknown = [name for name in overrides if name not in PHASES]
    if unknown:
        raise ValueError(f"unknown phase(s) {', '.join(unknown)}; phases are {', '.join(PHASES)}")
    plan = []
    for name in PHASES:
        seconds = overrides.get(name)
        if seconds is None:
            seconds = durations.get(name)
        if seconds is None:
            continue
        if not seconds > 0:
            raise ValueError(f"the {name} phase must last more than 0 s, got {seconds:g}")
        plan.append((name, float(seconds)))
    return PhasePlan(tuple(plan))


def hard_timeout_s(plan: PhasePlan) -> float:
    """How long a run may take in all before it is interrupted (and then rolled back)."""
    return plan.total_s + START_ALLOWANCE_S + END_ALLOWANCE_S + SLACK_SHARE * plan.total_s


def overhead_s(wall_s: float, plan: PhasePlan) -> float:
    """Tooling overhead: the wall time of a run minus the phases it was configured to hold."""
    return wall_s - plan.total_s


@dataclass(frozen=True)
class Position:
    """Where a running experiment is, for the progress display."""

    phase: str | None  # None before the first phase and after the last
    index: int  # 1-based position of the phase in the plan (0: none)
    count: int
    elapsed_s: float  # in this phase
    left_s: float | None  # planned time left in this phase
    run_left_s: float | None  # planned time left until the end of the last phase
    next_phase: str | None


def position(plan: PhasePlan, phase: str | None, phase_started: float | None, now: float) -> Position:
    """The current phase (as last seen) and its start -> elapsed and planned time left."""
    count = len(plan.durations)
    if phase is None or phase_started is None or plan.seconds(phase) is None:
        return Position(phase, 0, count, 0.0, None, None, None)
    elapsed = max(0.0, now - phase_started)
    planned = plan.seconds(phase) or 0.0
    left = max(0.0, planned - elapsed)
    index = plan.position(phase)
    later = sum(seconds for _, seconds in plan.durations[index:])
    return Position(phase, index, count, elapsed, left, left + later, plan.next_phase(phase))


# --------------------------------------------------------------------------------------------------
# Phase boundaries
# --------------------------------------------------------------------------------------------------


def journal_extension(journal: Mapping[str, Any], name: str = "chaosshop") -> dict[str, Any]:
    for item in journal.get("extensions") or []:
        if isinstance(item, dict) and item.get("name") == name:
            return item
    return {}


def phases_from_journal(journal: Mapping[str, Any], fallback_end: float) -> list[Phase]:
    """The phases the chaosshop control recorded in the journal. A phase left open (an interrupted run)
    ends at `fallback_end`; unknown names and unreadable entries are dropped."""
    out = []
    for entry in journal_extension(journal).get("phases") or []:
        if not isinstance(entry, dict) or entry.get("name") not in PHASES:
            continue
        try:
            start = parse_iso(entry["start"])
            end = parse_iso(entry["end"]) if entry.get("end") else fallback_end
        except (KeyError, TypeError, ValueError):
            continue
        if end > start:
            out.append(Phase(str(entry["name"]), start, end))
    return out


def phases_from_gauge(
    series: Sequence[tuple[Mapping[str, str], Iterable[float], Iterable[float]]],
    *,
    not_before: float,
) -> list[Phase]:
    """Phases from `testbed_experiment_phase` samples (labels, timestamps, values): each phase from its
    first sample at 1 to the first 0 after it (or its last 1). A fallback when the journal is missing;
    accurate to a scrape interval. Only this run's phases count: a phase that was already on before
    `not_before` (the run's start; the samples reach back a staleness lookback, into whatever ran on the
    stack before) is another run's, and is left out."""
    out = []
    for labels, timestamps, values in series:
        name = labels.get("phase")
        if name not in PHASES:
            continue
        pairs = sorted(zip(timestamps, values, strict=True))
        ones = [t for t, v in pairs if v >= 1]
        if not ones:
            continue
        start = ones[0]
        if start < not_before:
            continue
        after = [t for t, v in pairs if t > start and v < 1]
        end = after[0] if after else ones[-1]
        if end > start:
            out.append(Phase(str(name), float(start), float(end)))
    return sorted(out, key=lambda p: p.start)


def check_phases(phases: Sequence[Phase], plan: PhasePlan) -> list[str]:
    """What is wrong with recorded phases for judging: missing planned phases, overlaps."""
    problems = []
    names = [p.name for p in phases]
    for name, _ in plan.durations:
        if name not in names:
            problems.append(f"the {name} phase never started")
    for a, b in itertools.pairwise(phases):
        if b.start < a.end - 1e-3:
            problems.append(f"phases {a.name} and {b.name} overlap")
    return problems
