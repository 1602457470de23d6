"""The supervisor's own /metrics: experiment phases (for dashboard annotations) and restarts, with the
names and labels of the topology. The phase board is the fault controller's (`sample_shop.faultd.phases`),
so the local supervisor and the standalone controller on kind export phases the same way."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric

from sample_shop.faultd.phases import PHASE_STATES, PHASES, PhaseBoard
from sample_shop.faultd.processes import ReplicaProcess
from sample_shop.topology import PROCESS_RESTARTS

__all__ = ["PHASES", "PHASE_STATES", "PhaseBoard", "SupervisorMetrics"]


class _Collector:
    def __init__(self, phases: PhaseBoard, replicas: Callable[[], list[ReplicaProcess]]) -> None:
        self._phases = phases
        self._replicas = replicas

    def collect(self) -> Iterable[Metric]:
        yield from self._phases.collect()
        restarts = CounterMetricFamily(
            PROCESS_RESTARTS.name, PROCESS_RESTARTS.help, labels=list(PROCESS_RESTARTS.labels)
        )
        for r in self._replicas():
            restarts.add_metric([r.service, str(r.replica)], float(r.restarts))
        yield restarts


class SupervisorMetrics:
    def __init__(self, phases: PhaseBoard, replicas: Callable[[], list[ReplicaProcess]]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(phases, replicas))

    def render(self) -> bytes:
        return generate_latest(self.registry)
