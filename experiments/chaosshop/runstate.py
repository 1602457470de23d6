"""What one `chaos run` process knows about its experiment, shared by the control, the actions and the
probes (they run in the same process): the phases so far, the load this experiment started, the faults it
injected. Reset by the control at the start of each experiment."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from load.control import LoadHandle


@dataclass
class Phase:
    name: str
    start: float  # epoch seconds
    end: float | None = None

    def to_dict(self) -> dict[str, Any]:
        from sample_shop.basics import utc_iso

        return {
            "name": self.name,
            "start": utc_iso(self.start),
            "end": utc_iso(self.end) if self.end else None,
        }


@dataclass
class RunState:
    experiment: str = "experiment"
    phases: list[Phase] = field(default_factory=list)
    load: LoadHandle | None = None
    load_started_at: float | None = None
    load_stopped_at: float | None = None
    load_summary: dict[str, Any] | None = None
    injected: list[dict[str, Any]] = field(default_factory=list)
    stage: str = "idle"  # idle, hypothesis-before, method, rollbacks, after
    failed_actions: list[str] = field(default_factory=list)
    journal: dict[str, Any] | None = None
    cleanup: dict[str, Any] | None = None
    configuration: dict[str, Any] = field(default_factory=dict)  # for cleanup_control, which gets none
    confidence: dict[str, dict[str, Any]] = field(
        default_factory=dict
    )  # phase -> last status of a confident hold

    @property
    def current_phase(self) -> Phase | None:
        return self.phases[-1] if self.phases and self.phases[-1].end is None else None

    def start_phase(self, name: str, now: float | None = None) -> tuple[Phase | None, Phase]:
        """End the current phase (returned first) and start `name`."""
        now = time.time() if now is None else now
        ended = self.end_phase(now)
        phase = Phase(name, now)
        self.phases.append(phase)
        return ended, phase

    def end_phase(self, now: float | None = None) -> Phase | None:
        current = self.current_phase
        if current is not None:
            current.end = time.time() if now is None else now
        return current


RUN = RunState()


def reset(experiment: str) -> RunState:
    global RUN
    RUN = RunState(experiment=experiment)
    return RUN


def current() -> RunState:
    return RUN
