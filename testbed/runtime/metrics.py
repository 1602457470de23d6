"""The supervisor's own /metrics: experiment phases (for dashboard annotations) and restarts, with the
names and labels of the topology."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from sample_shop.topology import EXPERIMENT_PHASE, PROCESS_RESTARTS
from testbed.runtime.base import ReplicaProcess

PHASES: tuple[str, ...] = ("warmup", "baseline", "fault", "recovery")
PHASE_STATES: tuple[str, ...] = ("start", "end")


@dataclass
class PhaseEvent:
    experiment: str
    phase: str
    state: str
    at: float


class PhaseBoard:
    """Which experiment phases are running now: 1 from `start` to `end`, then 0."""

    def __init__(self) -> None:
        self._values: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self.events: list[PhaseEvent] = []

    def record(self, experiment: str, phase: str, state: str) -> PhaseEvent:
        if state not in PHASE_STATES:
            raise ValueError(f"state must be one of {', '.join(PHASE_STATES)}, got {state!r}")
        event = PhaseEvent(experiment, phase, state, time.time())
        with self._lock:
            self._values[(experiment, phase)] = 1.0 if state == "start" else 0.0
            self.events.append(event)
        return event

    def values(self) -> dict[tuple[str, str], float]:
        with self._lock:
            return dict(self._values)


class _SupervisorCollector:
    def __init__(self, phases: PhaseBoard, replicas: Callable[[], list[ReplicaProcess]]) -> None:
        self._phases = phases
        self._replicas = replicas

    def collect(self) -> Iterable[Metric]:
        phase = GaugeMetricFamily(
            EXPERIMENT_PHASE.name, EXPERIMENT_PHASE.help, labels=list(EXPERIMENT_PHASE.labels)
        )
        for (experiment, name), value in sorted(self._phases.values().items()):
            phase.add_metric([experiment, name], value)
        yield phase
        restarts = CounterMetricFamily(
            PROCESS_RESTARTS.name, PROCESS_RESTARTS.help, labels=list(PROCESS_RESTARTS.labels)
        )
        for r in self._replicas():
            restarts.add_metric([r.service, str(r.replica)], float(r.restarts))
        yield restarts


class SupervisorMetrics:
    def __init__(self, phases: PhaseBoard, replicas: Callable[[], list[ReplicaProcess]]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_SupervisorCollector(phases, replicas))  # type: ignore[arg-type]

    def render(self) -> bytes:
        return generate_latest(self.registry)
