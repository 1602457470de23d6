"""Experiment phases as a Prometheus gauge (`testbed_experiment_phase`), for the standalone fault controller
on kind, where it is the control API that experiments post their phases to. The local supervisor keeps its
own board (testbed/runtime/metrics.py) with the same names, labels and states."""

from __future__ import annotations

import threading
import time
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from sample_shop.topology import EXPERIMENT_PHASE

PHASES: tuple[str, ...] = ("warmup", "baseline", "fault", "recovery")
PHASE_STATES: tuple[str, ...] = ("start", "end")


class PhaseBoard:
    """1 from a phase's `start` to its `end`, then 0 (kept, so a dashboard sees the end too)."""

    def __init__(self) -> None:
        self._values: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def record(self, experiment: str, phase: str, state: str) -> dict[str, Any]:
        if phase not in PHASES or state not in PHASE_STATES:
            raise ValueError(f"phase must be one of {PHASES} and state one of {PHASE_STATES}")
        with self._lock:
            self._values[(experiment, phase)] = 1.0 if state == "start" else 0.0
        return {"experiment": experiment, "phase": phase, "state": state, "at": time.time()}

    def collect(self) -> Any:
        family = GaugeMetricFamily(
            EXPERIMENT_PHASE.name, EXPERIMENT_PHASE.help, labels=list(EXPERIMENT_PHASE.labels)
        )
        with self._lock:
            for (experiment, phase), value in sorted(self._values.items()):
                family.add_metric([experiment, phase], value)
        yield family

    def render(self) -> bytes:
        return generate_latest(self.registry)
