"""Planning an experiment: per SLO and phase, how many events (and seconds at a measured event rate) the
sequential rule needs to decide, if the shop is healthy and if it is broken. Pure: rates in, plan out;
`testbed experiment plan` measures the rates (a short load run or the last run folder) and prints this.

The numbers are Wald's approximation of the average number of events to a decision at a fixed bad-event
rate p (slo/sequential.py `events_needed` from zero events): the distance to the boundary the evidence
drifts towards divided by the drift per event. Three rates are planned for:
- `clean`: no bad event at all (burn rate 0), the fastest `met`;
- `healthy`: the zone's low edge (burn rate 0.5 by default), the slowest `met` the rule promises;
- `broken`: the zone's high edge (burn rate 2 by default), the slowest `breached` it promises.
Any rate further out decides sooner; rates inside the zone decide later, or not at all (no promise there).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from slo.sequential import DecisionRule, events_needed


@dataclass(frozen=True)
class Outlook:
    """One assumed bad-event rate and what it takes to decide at it."""

    case: str  # clean | healthy | broken
    burn_rate: float
    decision: str  # the verdict the rule reaches at this rate (met or breached)
    events: float  # average events to that verdict (math.inf: never)
    seconds: float | None  # at the phase's event rate (None: no rate known)


@dataclass(frozen=True)
class PhasePlan:
    phase: str
    length_s: float  # the experiment's configured phase length
    events_per_s: float | None  # measured rate of this SLO's events (None: none measured)
    outlooks: list[Outlook]

    @property
    def events_in_phase(self) -> float | None:
        return None if self.events_per_s is None else self.events_per_s * self.length_s

    @property
    def decides_in_time(self) -> bool:
        """Every outlook decides within the phase's length, on average."""
        return all(o.seconds is not None and o.seconds <= self.length_s for o in self.outlooks)

    @property
    def length_needed_s(self) -> float | None:
        """The phase length that decides every outlook on average (None: no rate, or never)."""
        secs = [o.seconds for o in self.outlooks]
        if any(s is None or not math.isfinite(s) for s in secs):
            return None
        return max(s for s in secs if s is not None)


@dataclass(frozen=True)
class SloPlan:
    name: str
    display_name: str
    critical: bool
    target: float
    rule: dict[str, Any]
    phases: list[PhasePlan] = field(default_factory=list)


def outlooks(rule: DecisionRule, events_per_s: float | None) -> list[Outlook]:
    """The clean, healthy and broken cases for one rule at one event rate."""
    cases = (("clean", 0.0, "met"), ("healthy", rule.zone_low, "met"), ("broken", rule.zone_high, "breached"))
    out = []
    for case, burn, decision in cases:
        events = events_needed(rule, 0.0, 0.0, rate=burn * rule.budget)
        seconds = None
        if events_per_s is not None and events_per_s > 0:
            seconds = events / events_per_s if math.isfinite(events) else math.inf
        out.append(Outlook(case, burn, decision, events, seconds))
    return out


def plan_slo(
    name: str,
    display_name: str,
    critical: bool,
    rule: DecisionRule,
    phase_lengths: Mapping[str, float],
    rates: Mapping[str, float | None],
    phases: Sequence[str],
) -> SloPlan:
    """One SLO's plan over the judged `phases` (their lengths from the experiment, rates per phase)."""
    return SloPlan(
        name,
        display_name,
        critical,
        rule.target,
        rule.describe(),
        [
            PhasePlan(phase, phase_lengths[phase], rates.get(phase), outlooks(rule, rates.get(phase)))
            for phase in phases
            if phase in phase_lengths
        ],
    )


def plan_json(plans: Sequence[SloPlan]) -> list[dict[str, Any]]:
    """The plans as JSON-ready dicts (infinity written as null with `never: true`)."""

    def num(x: float | None) -> float | None:
        return None if x is None or not math.isfinite(x) else round(x, 3)

    return [
        {
            "slo": p.name,
            "display_name": p.display_name,
            "critical": p.critical,
            "target": p.target,
            "rule": p.rule,
            "phases": [
                {
                    "phase": ph.phase,
                    "length_s": ph.length_s,
                    "events_per_s": num(ph.events_per_s),
                    "events_in_phase": num(ph.events_in_phase),
                    "decides_in_time": ph.decides_in_time,
                    "length_needed_s": num(ph.length_needed_s),
                    "outlooks": [
                        {
                            "case": o.case,
                            "burn_rate": o.burn_rate,
                            "decision": o.decision,
                            "events": num(o.events),
                            "seconds": num(o.seconds),
                            "never": not math.isfinite(o.events),
                        }
                        for o in ph.outlooks
                    ],
                }
                for ph in p.phases
            ],
        }
        for p in plans
    ]
