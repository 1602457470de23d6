"""The parts that watch the stack from outside and always run beside it when installed: node_exporter
(the host) and, with its webhook receiver, Alertmanager (pages). Unlike the optional extras (Jaeger, Loki,
Grafana: never installable here) they are declared system packages that `make setup` installs, so a
missing one is a note that points to `testbed doctor`, not a silent gap. Pure but for the PATH lookup."""

from __future__ import annotations

from dataclasses import dataclass, field

from testbed.runtime import alertmanager, nodeexporter
from testbed.runtime.extras import ExtraPlan
from testbed.runtime.layout import PortPlan, StateLayout


@dataclass
class Observers:
    plans: list[ExtraPlan] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def running(self, name: str) -> ExtraPlan | None:
        return next((p for p in self.plans if p.name == name), None)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.plans)


def plan_observers(layout: StateLayout, ports: PortPlan, path: str | None = None) -> Observers:
    out = Observers()
    binary = nodeexporter.find_node_exporter(path)
    if binary is None:
        out.notes.append(nodeexporter.ABSENT_NOTE)
    else:
        out.plans.append(nodeexporter.node_exporter_plan(binary, ports))
    binary = alertmanager.find_alertmanager(path)
    if binary is None:
        out.notes.append(alertmanager.ABSENT_NOTE)
    else:
        out.plans += alertmanager.alertmanager_plans(binary, layout, ports)
    return out
